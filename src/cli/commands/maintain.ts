import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { parseDuration } from '../../core/time.js';
import { collectGarbage, rollbackTable } from '../../lake/maintenance.js';
import { compactTables } from '../../ops/compact.js';
import { withLake, type GlobalOptions } from '../context.js';
import { formatBytes, formatCount, printJson } from '../output.js';

function duration(text: string, flag: string): number {
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new DipError('input', `${flag} "${text}": expected a duration such as 30s, 15m, 12h or 7d`);
  return ms;
}

function size(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!m) throw new DipError('input', `${flag} "${text}": expected a size such as 64MB`);
  const unit = (m[2] ?? 'B').toUpperCase().replace('IB', 'B');
  const mult: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  return Number(m[1]) * (mult[unit] ?? 1);
}

export function registerMaintenance(program: Command): void {
  program
    .command('gc')
    .description('delete files no commit references, and files removed from tables longer ago than the retention')
    .option('--retention <duration>', 'keep removed files (time travel) this long', '7d')
    .option(
      '--grace <duration>',
      'leave unreferenced files younger than this (a writer may be about to commit them)',
      '1h',
    )
    .option('--dry-run', 'only report what would be deleted')
    .action(async (opts: { retention: string; grace: string; dryRun?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const result = await withLake(global, (lake) =>
        collectGarbage(lake, {
          retentionMs: duration(opts.retention, '--retention'),
          orphanGraceMs: duration(opts.grace, '--grace'),
          dryRun: Boolean(opts.dryRun),
        }),
      );
      if (global.json) return printJson(result);
      const verb = opts.dryRun ? 'would delete' : 'deleted';
      process.stdout.write(
        `gc ${verb} ${formatCount(result.deleted.length)} files (${formatBytes(result.bytesFreed)}): ${result.orphanFiles} unreferenced, ${result.expiredFiles} past retention, ${result.stagingFiles} staging leftovers\n`,
      );
    });

  program
    .command('compact')
    .description(
      "rewrite each table's small files into one, in one commit; a silver table merged on read gets its changes folded into a new base",
    )
    .argument('[tables...]', 'tables to compact (default: all Parquet tables)')
    .option('--small <size>', 'files below this size are compacted', '64MB')
    .option('--dry-run', 'only report what would be compacted')
    .action(async (names: string[], opts: { small: string; dryRun?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const results = await withLake(global, (lake) =>
        compactTables(lake, names, { smallFileBytes: size(opts.small, '--small'), dryRun: Boolean(opts.dryRun) }),
      );
      if (global.json) return printJson(results);
      for (const r of results) {
        process.stdout.write(
          r.inputFiles === 0
            ? `${r.table}: nothing to compact\n`
            : `${r.table}: ${r.inputFiles} files, ${formatCount(r.rows)} rows → 1 file${r.commit ? ` (commit ${r.commit.id})` : ' (dry run)'}\n`,
        );
      }
    });

  program
    .command('rollback')
    .description('make a table hold exactly what it held at an earlier commit (recorded as a new commit)')
    .argument('<table>', 'e.g. bronze.orders')
    .requiredOption('--to <commit>', 'the commit id to restore')
    .action(async (table: string, opts: { to: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      if (!/^\d+$/.test(opts.to))
        throw new DipError('input', `--to "${opts.to}": expected a commit id (see dip describe ${table})`);
      const commit = await withLake(global, (lake) => rollbackTable(lake, table, Number(opts.to)));
      if (global.json) return printJson(commit);
      process.stdout.write(`${table} rolled back to commit ${opts.to} as commit ${commit.id}\n`);
    });
}
