import type { Command } from 'commander';
import { withLake, type GlobalOptions } from '../context.js';
import { formatBytes, formatCount, printJson, renderTable } from '../output.js';

export function registerLoad(program: Command): void {
  program
    .command('load')
    .description(
      'load lake tables into the destinations declared in dip.yaml (replace, append or merge), exactly once: only lake commits after the one the destination recorded',
    )
    .argument('[destination]', 'one destination (default: all)')
    .option('--table <table>', 'only this lake table, e.g. silver.orders')
    .action(async (destination: string | undefined, opts: { table?: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { loadDestinations } = await import('../../ops/load.js');
      const reports = await withLake(global, (lake) => loadDestinations(lake, { destination, table: opts.table }));
      if (global.json) return printJson(reports);
      const rows = reports.flatMap((r) =>
        r.tables.map((t) => [
          r.destination,
          t.table,
          t.target,
          t.mode,
          t.loaded ? formatCount(t.rows) : 'nothing new',
          formatCount(t.deleted),
          formatBytes(t.bytes),
          t.commit === null ? '' : String(t.commit),
        ]),
      );
      process.stdout.write(
        `${renderTable(['destination', 'table', 'target', 'mode', 'rows', 'deleted', 'bytes', 'lake commit'], rows)}\n`,
      );
    });
}
