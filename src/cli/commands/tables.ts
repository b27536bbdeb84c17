import type { Command } from 'commander';
import type { TableSummary } from '../../ops/tables.js';
import { withLake, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';
import { formatBytes, formatCount, printJson, renderTable } from '../output.js';

/** A table's rows; a CDC current-state table says how many changes its deltas hold, not merged yet. */
export function rowsText(t: TableSummary): string {
  return t.pendingChanges
    ? `${formatCount(t.rows)} (${formatCount(t.pendingChanges)} changes not merged yet)`
    : formatCount(t.rows);
}

export function registerTables(program: Command): void {
  program
    .command('tables')
    .description(
      'list committed tables with rows as readers see them (CDC current tables: with the changes not merged yet applied), files, size and schema version',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { listTables } = await import('../../ops/tables.js');
      const tables = await withLake(global, listTables);
      if (global.json) return printJson(tables);
      process.stdout.write(
        `${renderTable(
          ['table', 'rows', 'files', 'size', 'schema', 'head commit'],
          tables.map((t) => [
            t.name,
            rowsText(t),
            formatCount(t.files),
            formatBytes(t.bytes),
            t.schemaVersion === null ? '' : `v${t.schemaVersion}`,
            t.headCommit,
          ]),
        )}\n`,
      );
    });

  program
    .command('describe')
    .description('show a table: columns, schema versions and snapshots (commits)')
    .argument('<table>', 'e.g. bronze.orders')
    .option('--commits <n>', 'how many recent snapshots to list', '20')
    .action(async (name: string, opts: { commits: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const limit = wholeNumber(opts.commits, '--commits', 1);
      const { describeTable } = await import('../../ops/describe.js');
      const info = await withLake(global, (lake) => describeTable(lake, name, { commits: limit }));
      if (global.json) return printJson(info);
      const { table, versions, commits } = info;
      const current = versions[versions.length - 1];
      process.stdout.write(
        `${table.name} · ${table.zone} · ${table.format} · ${formatCount(table.rows)} rows${table.pendingChanges ? ` (${formatCount(table.pendingChanges)} changes not merged yet)` : ''} in ${table.files} files (${formatBytes(table.bytes)})\n`,
      );
      if (table.primaryKey.length) process.stdout.write(`primary key: ${table.primaryKey.join(', ')}\n`);
      const model = info.model;
      if (model) {
        process.stdout.write(
          `model: ${model.kind}${model.materialized ? ` (${model.materialized})` : ''} in pipeline ${model.pipeline}${model.description ? ` · ${model.description}` : ''}\n`,
        );
        process.stdout.write(`inputs (lineage): ${model.inputs.join(', ') || 'none (generated)'}\n`);
        process.stdout.write(
          `\ncolumns:\n${renderTable(
            ['column', 'type', 'description'],
            model.columns.map((c) => [c.name, c.type ?? '(not built yet)', c.description ?? '']),
          )}\n`,
        );
      } else if (current) {
        process.stdout.write(`\ncolumns (schema v${current.version}):\n`);
        process.stdout.write(
          `${renderTable(
            ['column', 'type'],
            current.schema.columns.map((c) => [c.name, c.type]),
          )}\n`,
        );
      }
      process.stdout.write('\nschema versions:\n');
      let prev: Map<string, string> | undefined;
      for (const v of versions) {
        const cols = new Map(v.schema.columns.map((c) => [c.name, c.type]));
        const diff = prev
          ? [...cols].flatMap(([n, t]) =>
              !prev?.has(n) ? [`+${n} ${t}`] : prev.get(n) !== t ? [`${n} ${prev.get(n)} → ${t}`] : [],
            )
          : [`${cols.size} columns`];
        process.stdout.write(
          `  v${v.version}  commit ${v.commitId}  ${v.createdAt.toISOString()}  ${diff.join(', ') || '(same columns)'}\n`,
        );
        prev = cols;
      }
      process.stdout.write('\nsnapshots (newest first):\n');
      process.stdout.write(
        `${renderTable(
          ['commit', 'time', 'operation', 'run', 'summary'],
          commits.map((c) => [c.id, c.committedAt.toISOString(), c.operation, c.runId ?? '', summaryText(c.summary)]),
        )}\n`,
      );
    });
}

function summaryText(s: Record<string, unknown>): string {
  const parts: string[] = [];
  if (s['rows'] !== undefined) parts.push(`${String(s['rows'])} rows`);
  if (s['quarantined']) parts.push(`${String(s['quarantined'])} quarantined`);
  if (Array.isArray(s['inputs'])) parts.push(`${s['inputs'].length} inputs`);
  if (s['inputFiles'] !== undefined) parts.push(`${String(s['inputFiles'])} files compacted`);
  if (s['toCommit'] !== undefined) parts.push(`to commit ${String(s['toCommit'])}`);
  if (s['rawFiles'] !== undefined) parts.push(`${String(s['rawFiles'])} raw files replayed`);
  return parts.join(', ');
}
