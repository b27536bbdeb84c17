import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { pipelineNamed } from '../../pipeline/pipelines.js';
import { withLake, type GlobalOptions } from '../context.js';
import { printJson, renderTable } from '../output.js';

/**
 * `dip state`: what each stream of a pipeline remembers between runs (incremental cursors,
 * CDC positions, API partitions), and `--reset` to forget it so the next run starts over.
 */
export function registerState(program: Command): void {
  program
    .command('state')
    .description(
      "show a pipeline's stream states (cursors, CDC positions); --reset forgets them so the next run reads from the start",
    )
    .argument('<pipeline>')
    .option('--stream <names...>', 'only these streams')
    .option(
      '--reset',
      'forget the state of the chosen streams (committed as a state-only commit; history keeps the old value)',
    )
    .action(async (name: string, opts: { stream?: string[]; reset?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const rows = await withLake(global, async (lake) => {
        pipelineNamed(lake.project, name);
        const all = (await lake.catalog.listStates(name)).filter((s) => s.value !== null && s.stream !== '_source');
        const chosen = opts.stream ? all.filter((s) => opts.stream?.includes(s.stream)) : all;
        const unknown = (opts.stream ?? []).filter((s) => !all.some((a) => a.stream === s));
        if (unknown.length)
          throw new DipError(
            'not_found',
            `no saved state for stream ${unknown.join(', ')} of ${name} (streams with state: ${all.map((s) => s.stream).join(', ') || '(none)'})`,
          );
        if (opts.reset && chosen.length) {
          await lake.catalog.commit({
            runId: 'state-reset',
            operation: 'state',
            tables: [],
            state: chosen.map((s) => ({ pipeline: name, source: s.source, stream: s.stream, value: null })),
            summary: { pipeline: name, reset: chosen.map((s) => `${s.source}.${s.stream}`) },
          });
        }
        return chosen;
      });
      if (global.json) return printJson(rows.map((r) => ({ ...r, reset: Boolean(opts.reset) })));
      process.stdout.write(
        `${renderTable(
          ['source', 'stream', 'state', 'commit'],
          rows.map((r) => [r.source, r.stream, JSON.stringify(r.value), r.commitId]),
        )}\n`,
      );
      if (opts.reset)
        process.stdout.write(`reset ${rows.length} stream state(s); the next run reads them from the start\n`);
    });
}
