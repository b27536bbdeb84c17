import type { Command } from 'commander';
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
      const { resetStreamStates, streamStates } = await import('../../ops/state.js');
      const rows = await withLake(global, (lake) =>
        (opts.reset ? resetStreamStates : streamStates)(lake, name, opts.stream),
      );
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
