/**
 * Checks across the whole project that one key's schema cannot make, run when the project is
 * loaded so that every `dip` command refuses the mistake before touching data, with the file
 * and line like any other config error:
 * - two pipelines writing the same bronze or silver table (their rows would mix);
 * - a silver `from:` naming a bronze table no pipeline writes;
 * - pipeline triggers that form a cycle (each run would trigger the next, forever), or name a
 *   pipeline that does not exist;
 * - a pipeline's task graph: cycles, unknown `depends_on`, unknown pools, misnamed tasks.
 */
import { ConfigError } from '../core/errors.js';
import { pipelineDag } from './task-graph.js';
import { declaredBy } from '../sources/connectors.js';
import { dottedPath, type IssueTarget, type Locator } from './issues.js';
import type { PipelineConfig, ProjectConfig } from './schema.js';

type Segment = string | number;

export interface ProjectIssue {
  path: Segment[];
  target: IssueTarget;
  message: string;
}

interface Writer {
  pipeline: string;
  path: Segment[];
}

export function projectIssues(config: ProjectConfig, locate?: Locator, file?: string): ProjectIssue[] {
  const where = (path: Segment[]): string => {
    const pos = locate?.(path, 'key');
    return pos && file ? `${dottedPath(path)}, ${file}:${pos.line}` : dottedPath(path);
  };
  return [
    ...sharedTables(config, where),
    ...silverSources(config),
    ...triggerIssues(config),
    ...taskGraphIssues(config),
  ];
}

/** The bronze tables a pipeline's streams write, each with where it is declared; `complete` is false with database table patterns. */
function bronzeWriters(name: string, pipeline: PipelineConfig): { tables: Map<string, Segment[]>; complete: boolean } {
  const tables = new Map<string, Segment[]>();
  let complete = true;
  const add = (table: string, path: Segment[]) => {
    if (!tables.has(table)) tables.set(table, path);
  };
  for (const [sourceName, source] of Object.entries(pipeline.sources)) {
    const declared = declaredBy(source);
    complete &&= declared.complete;
    for (const t of declared.tables) add(`bronze.${t.table}`, ['pipelines', name, 'sources', sourceName, ...t.path]);
  }
  return { tables, complete };
}

function sharedTables(config: ProjectConfig, where: (path: Segment[]) => string): ProjectIssue[] {
  const issues: ProjectIssue[] = [];
  const writers = new Map<string, Writer>();
  const claim = (table: string, writer: Writer) => {
    const first = writers.get(table);
    if (!first) return void writers.set(table, writer);
    if (first.pipeline === writer.pipeline) return;
    issues.push({
      path: writer.path,
      target: 'key',
      message: `table ${table} is written by two pipelines, ${first.pipeline} (${where(first.path)}) and ${writer.pipeline}: their rows would mix in one table; give one of them another table name`,
    });
  };
  for (const [name, pipeline] of Object.entries(config.pipelines)) {
    for (const [table, path] of bronzeWriters(name, pipeline).tables) claim(table, { pipeline: name, path });
    for (const table of Object.keys(pipeline.silver))
      claim(`silver.${table}`, { pipeline: name, path: ['pipelines', name, 'silver', table] });
    for (const model of Object.keys(pipeline.gold ?? {}))
      claim(`gold.${model}`, { pipeline: name, path: ['pipelines', name, 'gold', model] });
  }
  return issues;
}

function silverSources(config: ProjectConfig): ProjectIssue[] {
  const all = new Set<string>();
  const byPipeline = new Map<string, string[]>();
  for (const [name, pipeline] of Object.entries(config.pipelines)) {
    const { tables, complete } = bronzeWriters(name, pipeline);
    if (!complete) return []; // table patterns: the tables are known only once the database is asked
    byPipeline.set(name, [...tables.keys()]);
    for (const t of tables.keys()) all.add(t);
    for (const task of Object.values(pipeline.tasks)) if ('outputs' in task) for (const t of task.outputs) all.add(t);
  }
  const issues: ProjectIssue[] = [];
  for (const [name, pipeline] of Object.entries(config.pipelines)) {
    for (const [table, cfg] of Object.entries(pipeline.silver)) {
      const from = cfg.from.startsWith('bronze.') ? cfg.from : `bronze.${cfg.from}`;
      if (all.has(from)) continue;
      issues.push({
        path: ['pipelines', name, 'silver', table, 'from'],
        target: 'value',
        message: `${cfg.from} is not a bronze table of this pipeline (its streams land in: ${byPipeline.get(name)?.join(', ') || 'none'}) nor of any other`,
      });
    }
  }
  return issues;
}

function triggerIssues(config: ProjectConfig): ProjectIssue[] {
  const issues: ProjectIssue[] = [];
  const names = Object.keys(config.pipelines);
  // An edge upstream → downstream: a successful run of upstream starts one of downstream.
  const downstream = new Map<string, { to: string; index: number }[]>();
  for (const [name, pipeline] of Object.entries(config.pipelines)) {
    pipeline.triggers.forEach((t, index) => {
      if (!('pipeline' in t)) return;
      if (!Object.hasOwn(config.pipelines, t.pipeline)) {
        issues.push({
          path: ['pipelines', name, 'triggers', index, 'pipeline'],
          target: 'value',
          message: `no pipeline ${t.pipeline} to run after (pipelines: ${names.join(', ')})`,
        });
        return;
      }
      downstream.set(t.pipeline, [...(downstream.get(t.pipeline) ?? []), { to: name, index }]);
    });
  }
  const state = new Map<string, 'visiting' | 'done'>();
  const reported = new Set<string>();
  const visit = (node: string, path: string[]): void => {
    state.set(node, 'visiting');
    for (const edge of downstream.get(node) ?? []) {
      const s = state.get(edge.to);
      if (s === 'visiting') {
        const cycle = [...path.slice(path.indexOf(edge.to)), node, edge.to];
        const key = [...new Set(cycle)].sort().join(',');
        if (!reported.has(key)) {
          reported.add(key);
          issues.push({
            path: ['pipelines', edge.to, 'triggers', edge.index, 'pipeline'],
            target: 'value',
            message: `pipeline triggers form a cycle: ${cycle.join(' → ')} (each successful run would start the next, forever)`,
          });
        }
      } else if (s !== 'done') visit(edge.to, [...path, node]);
    }
    state.set(node, 'done');
  };
  for (const name of names) if (!state.has(name)) visit(name, []);
  return issues;
}

function taskGraphIssues(config: ProjectConfig): ProjectIssue[] {
  const issues: ProjectIssue[] = [];
  for (const name of Object.keys(config.pipelines)) {
    try {
      pipelineDag(config, name);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const path = Array.isArray(err.details['path'])
        ? (err.details['path'] as Segment[])
        : ['pipelines', name, 'tasks'];
      const reason = typeof err.details['reason'] === 'string' ? err.details['reason'] : err.message;
      issues.push({ path, target: 'key', message: reason });
    }
  }
  return issues;
}
