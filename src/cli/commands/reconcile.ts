import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { withLake, type GlobalOptions } from '../context.js';
import { printJson, renderTable } from '../output.js';

/**
 * `dip reconcile <pipeline> [stream]`: compares a callback stream (a gateway endpoint with
 * `reconcile`) with the API listing of the same objects, fills what callbacks missed and prints
 * the report; `--reports` only shows the recorded ones. Exits non-zero when a miss rate passed
 * its threshold (after filling and recording).
 */
export function registerReconcile(program: Command): void {
  program
    .command('reconcile')
    .description(
      'compare callback streams with the API listing of the same objects, land what callbacks missed, report expected/received/missing/late/filled',
    )
    .argument('<pipeline>')
    .argument('[stream]', 'one gateway stream (default: every stream with reconcile)')
    .option('--window <duration>', "how far back by update time (default: the stream's reconcile.window)")
    .option('--from <time>', 'window start, ISO 8601 (instead of --window)')
    .option('--to <time>', 'window end, ISO 8601 (default now)')
    .option('--reports', 'show the recorded reports instead of reconciling')
    .action(
      async (
        pipeline: string,
        stream: string | undefined,
        opts: { window?: string; from?: string; to?: string; reports?: boolean },
        cmd: Command,
      ) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const { reconcile, reconcileReports } = await import('../../ops/reconcile.js');
        const reports = await withLake(global, (lake) =>
          opts.reports
            ? reconcileReports(lake, pipeline, stream)
            : reconcile(lake, pipeline, stream, { window: opts.window, from: opts.from, to: opts.to }),
        );
        if (global.json) printJson(reports);
        else
          process.stdout.write(
            `${renderTable(
              ['stream', 'window', 'expected', 'received', 'missing', 'late', 'filled', 'miss rate', 'at'],
              reports.map((r) => [
                `${r.source}.${r.stream}`,
                `${r.from} .. ${r.to}`,
                r.expected,
                r.received,
                r.missing,
                r.late,
                r.filled,
                `${(r.miss_rate * 100).toFixed(2)}%${r.alert ? ' (over threshold)' : ''}`,
                r.at,
              ]),
            )}\n`,
          );
        const over = opts.reports ? [] : reports.filter((r) => r.alert);
        if (over.length)
          throw new DipError(
            'quality',
            `reconcile: miss rate over threshold for ${over.map((r) => `${r.source}.${r.stream} (${(r.miss_rate * 100).toFixed(2)}% > ${(r.threshold * 100).toFixed(2)}%)`).join(', ')}; ${over.reduce((n, r) => n + r.filled, 0)} object(s) filled, landed by the next dip run`,
          );
      },
    );
}
