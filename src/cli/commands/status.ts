import type { Command } from 'commander';
import { processAlive } from '../../core/process.js';
import { listTables } from '../../ops/tables.js';
import { withLake, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';
import { formatBytes, formatCount, printJson, renderTable } from '../output.js';
import { rowsText } from './tables.js';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('recent runs, tables with row counts, and the last error')
    .option('--runs <n>', 'how many recent runs', '10')
    .action(async (opts: { runs: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const status = await withLake(global, async (lake) => {
        await lake.catalog.markCrashedRuns(processAlive);
        const runs = await lake.catalog.listRuns({ limit: wholeNumber(opts.runs, '--runs', 1) });
        const lastFailure = (await lake.catalog.listRuns({ limit: 200 })).find(
          (r) => r.status === 'failed' || r.status === 'crashed',
        );
        return {
          project: lake.project.config.project,
          lake: lake.storage.location,
          catalog: lake.catalog.kind,
          runs,
          tables: await listTables(lake),
          lastFailure,
        };
      });
      if (global.json) return printJson(status);
      process.stdout.write(`project ${status.project} · lake ${status.lake} · catalog ${status.catalog}\n\nruns:\n`);
      process.stdout.write(
        `${renderTable(
          ['run', 'pipeline', 'status', 'started', 'duration', 'rows', 'quarantined'],
          status.runs.map((r) => {
            const streams = Object.values(r.stats.streams);
            return [
              r.id,
              r.pipeline,
              r.status,
              r.startedAt.toISOString(),
              r.endedAt ? `${((r.endedAt.getTime() - r.startedAt.getTime()) / 1000).toFixed(1)} s` : '',
              formatCount(streams.reduce((n, s) => n + s.rows, 0)),
              formatCount(streams.reduce((n, s) => n + s.quarantined, 0)),
            ];
          }),
        )}\n\ntables:\n`,
      );
      process.stdout.write(
        `${renderTable(
          ['table', 'rows', 'files', 'size'],
          status.tables.map((t) => [t.name, rowsText(t), formatCount(t.files), formatBytes(t.bytes)]),
        )}\n`,
      );
      if (status.lastFailure) {
        const f = status.lastFailure;
        process.stdout.write(
          `\nlast error (${f.status} run ${f.id} of ${f.pipeline}, ${f.startedAt.toISOString()}):\n  ${f.error ?? ''}\n${f.cause ? `  cause: ${f.cause}\n` : ''}`,
        );
      }
    });
}
