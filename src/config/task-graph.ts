/**
 * A pipeline's task graph, derived from what each step reads and writes: `ingest.<source>`
 * writes the bronze tables of its streams, `silver.<table>` reads its bronze table (and joined
 * or checked tables) and writes silver.<table>, custom tasks declare inputs/outputs. A task runs
 * after every task writing a table it reads, and after its explicit `depends_on`.
 */
import type { ProjectConfig, PipelineConfig, SourceConfig } from './schema.js';
import type { CustomTaskConfig, RetryConfig } from './orchestrate.js';
import { ConfigError } from '../core/errors.js';
import { durationMs } from '../core/time.js';
import { declaredBy } from '../sources/connectors.js';
import type { RetryPolicy } from '../core/retry-policy.js';
import { goldModelInputs } from './gold.js';

export type TaskKind =
  | { kind: 'ingest'; source: string }
  | { kind: 'silver'; table: string }
  | { kind: 'gold'; model: string }
  | { kind: 'reconcile'; source: string }
  | { kind: 'shell'; command: string; env: Record<string, string> }
  | { kind: 'module'; module: string; export: string }
  | { kind: 'load'; destination: string; table: string; target: string };

export interface TaskDef {
  name: string;
  run: TaskKind;
  deps: string[];
  inputs: string[];
  outputs: string[];
  pool: string | null;
  retry: RetryPolicy;
}

export interface PipelineDag {
  pipeline: string;
  /** In a topological order (every task after its upstreams). */
  tasks: TaskDef[];
}

const DEFAULT_RETRY: RetryConfig = { attempts: 3, delay: '10s', backoff: 2, max_delay: '10m', jitter: true };

export function retryPolicy(config: RetryConfig | undefined, timeout: string | undefined, where: string): RetryPolicy {
  const r = config ?? DEFAULT_RETRY;
  return {
    attempts: r.attempts,
    delayMs: durationMs(r.delay, `${where}.retries.delay`),
    factor: r.backoff,
    maxDelayMs: durationMs(r.max_delay, `${where}.retries.max_delay`),
    jitter: r.jitter ? 0.5 : 0,
    timeoutMs: timeout === undefined ? undefined : durationMs(timeout, `${where}.timeout`),
  };
}

/** The bronze tables a source writes; `complete` is false when database table patterns add more at run time. */
export function sourceBronzeTables(source: SourceConfig): { names: string[]; complete: boolean } {
  const declared = declaredBy(source);
  return { names: [...new Set(declared.tables.map((t) => `bronze.${t.table}`))], complete: declared.complete };
}

const qualify = (table: string, zone: string): string => (table.includes('.') ? table : `${zone}.${table}`);

/**
 * A config error of the task graph: the message as shown today (`<dotted path>: <reason>`), and
 * the path into dip.yaml and the reason, so the loader can point at the file and line.
 */
function graphError(shownPath: string, path: (string | number)[], reason: string): ConfigError {
  return new ConfigError(`${shownPath}: ${reason}`, { details: { path, reason } });
}

export function pipelineDag(project: ProjectConfig, name: string): PipelineDag {
  const pipeline = Object.hasOwn(project.pipelines, name) ? project.pipelines[name] : undefined;
  if (!pipeline)
    throw new ConfigError(
      `no pipeline named "${name}" (pipelines: ${Object.keys(project.pipelines).join(', ') || 'none'})`,
    );
  const where = `pipelines.${name}`;
  const tasks = derivedTasks(pipeline, where);
  const derivedNames = new Set(tasks.map((t) => t.name));
  const openEnded = Object.entries(pipeline.sources)
    .filter(([, s]) => !sourceBronzeTables(s).complete)
    .map(([n]) => `ingest.${n}`);

  for (const [taskName, cfg] of Object.entries(pipeline.tasks)) {
    const at = `${where}.tasks.${taskName}`;
    if ('shell' in cfg || 'module' in cfg) {
      if (derivedNames.has(taskName) || /^(ingest|silver|gold|reconcile)\./.test(taskName)) {
        throw graphError(
          at,
          ['pipelines', name, 'tasks', taskName],
          'the names ingest.<source>, silver.<table> and gold.<model> belong to derived tasks; give a custom task another name',
        );
      }
      if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(taskName))
        throw graphError(at, ['pipelines', name, 'tasks', taskName], 'a task name uses letters, digits, _, . and -');
      tasks.push(customTask(taskName, cfg, pipeline, at, ['pipelines', name, 'tasks', taskName]));
    } else {
      const task = tasks.find((t) => t.name === taskName);
      if (!task)
        throw graphError(
          at,
          ['pipelines', name, 'tasks', taskName],
          `no task ${taskName} in this pipeline; settings need a derived task (${[...derivedNames].join(', ') || 'none'}) or a shell/module task`,
        );
      task.deps.push(...cfg.depends_on);
      task.pool = cfg.pool ?? task.pool;
      task.retry = retryPolicy(cfg.retries ?? pipeline.retries, cfg.timeout ?? pipeline.timeout, at);
    }
  }

  tasks.push(...loadTasks(project, tasks, pipeline, where));
  const writers = new Map<string, string[]>();
  for (const t of tasks) for (const out of t.outputs) writers.set(out, [...(writers.get(out) ?? []), t.name]);
  const names = new Set(tasks.map((t) => t.name));
  for (const t of tasks) {
    for (const input of t.inputs) {
      const producers = writers.get(input) ?? (input.startsWith('bronze.') ? openEnded : []);
      t.deps.push(...producers.filter((p) => p !== t.name));
    }
    for (const d of t.deps) {
      if (!names.has(d)) {
        throw graphError(
          `${where}.tasks.${t.name}.depends_on`,
          ['pipelines', name, 'tasks', t.name, 'depends_on'],
          `no task ${d} in this pipeline (tasks: ${[...names].join(', ')})`,
        );
      }
    }
    t.deps = [...new Set(t.deps)];
    if (t.pool !== null && !project.pools[t.pool]) {
      throw graphError(
        `${where}.tasks.${t.name}.pool`,
        ['pipelines', name, 'tasks', t.name, 'pool'],
        `no pool ${t.pool}; declare it under pools: (have: ${Object.keys(project.pools).join(', ') || 'none'})`,
      );
    }
  }
  return { pipeline: name, tasks: topological(tasks, where, pipeline, name) };
}

function derivedTasks(pipeline: PipelineConfig, where: string): TaskDef[] {
  const retry = retryPolicy(pipeline.retries, pipeline.timeout, where);
  const tasks: TaskDef[] = Object.entries(pipeline.sources).map(([source, cfg]) => ({
    name: `ingest.${source}`,
    run: { kind: 'ingest', source },
    deps: [],
    inputs: [],
    outputs: sourceBronzeTables(cfg).names,
    pool: null,
    retry,
  }));
  // A gateway source with reconciled endpoints: `reconcile.<source>` runs first, so what it
  // fills lands in the same run's ingest.
  for (const [source, cfg] of Object.entries(pipeline.sources)) {
    const endpoints =
      cfg.type === 'gateway' ? Object.values(cfg.endpoints as Record<string, { reconcile?: unknown }>) : [];
    if (!endpoints.some((e) => e.reconcile)) continue;
    tasks.push({
      name: `reconcile.${source}`,
      run: { kind: 'reconcile', source },
      deps: [],
      inputs: [],
      outputs: [],
      pool: null,
      retry,
    });
    tasks.find((t) => t.name === `ingest.${source}`)?.deps.push(`reconcile.${source}`);
  }
  for (const [table, cfg] of Object.entries(pipeline.silver)) {
    const reads = [
      qualify(cfg.from, 'bronze'),
      ...cfg.joins
        .map((j) => j.table)
        .filter((t): t is string => typeof t === 'string')
        .map((t) => qualify(t, 'silver')),
    ];
    for (const c of cfg.checks) if (c.type === 'relationships') reads.push(qualify(c.to, 'silver'));
    tasks.push({
      name: `silver.${table}`,
      run: { kind: 'silver', table },
      deps: [],
      inputs: reads.filter((t) => t !== `silver.${table}`),
      outputs: [`silver.${table}`],
      pool: null,
      retry,
    });
  }
  // Gold models: after every task writing a table they read (silver, other gold models).
  for (const [model, cfg] of Object.entries(pipeline.gold ?? {})) {
    tasks.push({
      name: `gold.${model}`,
      run: { kind: 'gold', model },
      deps: [],
      inputs: goldModelInputs(model, cfg),
      outputs: [`gold.${model}`],
      pool: null,
      retry,
    });
  }
  return tasks;
}

/** `load.<destination>.<target>`: a destination table whose lake table this pipeline writes, loaded after it. */
function loadTasks(
  project: ProjectConfig,
  tasks: readonly TaskDef[],
  pipeline: PipelineConfig,
  where: string,
): TaskDef[] {
  const written = new Set(tasks.flatMap((t) => t.outputs));
  const retry = retryPolicy(pipeline.retries, pipeline.timeout, where);
  const out: TaskDef[] = [];
  for (const [destination, entry] of Object.entries(project.destinations ?? {})) {
    for (const t of entry.tables) {
      if (!written.has(t.table)) continue;
      const target = `${t.schema ? `${t.schema}.` : ''}${t.target ?? t.table.split('.').slice(1).join('.')}`;
      out.push({
        name: `load.${destination}.${target}`,
        run: { kind: 'load', destination, table: t.table, target },
        deps: [],
        inputs: [t.table],
        outputs: [],
        pool: null,
        retry,
      });
    }
  }
  return out;
}

function customTask(
  name: string,
  cfg: CustomTaskConfig,
  pipeline: PipelineConfig,
  at: string,
  path: (string | number)[],
): TaskDef {
  for (const [key, list] of [
    ['inputs', cfg.inputs],
    ['outputs', cfg.outputs],
  ] as const) {
    list.forEach((t, i) => {
      if (!/^(raw|bronze|silver|gold)\.[A-Za-z_][A-Za-z0-9_]*$/.test(t))
        throw graphError(
          at,
          [...path, key, i],
          `table "${t}" must be written zone.table (bronze, silver or gold), e.g. silver.orders`,
        );
    });
  }
  return {
    name,
    run:
      'shell' in cfg
        ? { kind: 'shell', command: cfg.shell, env: cfg.env }
        : { kind: 'module', module: cfg.module, export: cfg.export },
    deps: [...cfg.depends_on],
    inputs: cfg.inputs,
    outputs: cfg.outputs,
    pool: cfg.pool ?? null,
    retry: retryPolicy(cfg.retries ?? pipeline.retries, cfg.timeout ?? pipeline.timeout, at),
  };
}

function topological(tasks: TaskDef[], where: string, pipeline: PipelineConfig, name: string): TaskDef[] {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const state = new Map<string, 'visiting' | 'done'>();
  const order: TaskDef[] = [];
  const visit = (t: TaskDef, path: string[]): void => {
    const s = state.get(t.name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(t.name)), t.name];
      // Point at a task of the cycle that dip.yaml declares (a custom task or a derived task's settings), else a silver table of it.
      const declared = cycle.find((c) => Object.hasOwn(pipeline.tasks, c));
      const silver = cycle.find(
        (c) => c.startsWith('silver.') && Object.hasOwn(pipeline.silver, c.slice('silver.'.length)),
      );
      const gold = cycle.find(
        (c) => c.startsWith('gold.') && Object.hasOwn(pipeline.gold ?? {}, c.slice('gold.'.length)),
      );
      const at =
        declared !== undefined
          ? ['pipelines', name, 'tasks', declared]
          : silver !== undefined
            ? ['pipelines', name, 'silver', silver.slice('silver.'.length)]
            : gold !== undefined
              ? ['pipelines', name, 'gold', gold.slice('gold.'.length)]
              : ['pipelines', name];
      throw graphError(where, at, `tasks form a cycle: ${cycle.join(' → ')}`);
    }
    state.set(t.name, 'visiting');
    for (const d of t.deps) visit(byName.get(d) as TaskDef, [...path, t.name]);
    state.set(t.name, 'done');
    order.push(t);
  };
  for (const t of tasks) visit(t, []);
  return order;
}
