import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import type { AsOf } from '../../catalog/types.js';
import { withLake, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';
import { printJson, renderCsv, renderTable } from '../output.js';

export function parseAsOf(text: string | undefined): AsOf | undefined {
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return { commit: Number(text) };
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) {
    throw new DipError(
      'input',
      `--as-of "${text}": expected a commit id (e.g. 12) or an ISO timestamp (e.g. 2026-11-22T10:00:00Z)`,
    );
  }
  return { at };
}

export function registerQuery(program: Command): void {
  program
    .command('query')
    .description('run SQL (DuckDB) over committed tables: raw.<t>, bronze.<t>, quarantine.<t>')
    .argument('<sql>', 'the query')
    .option('--as-of <commit|timestamp>', 'read tables as they were at a commit id or time')
    .option('--format <format>', 'table | csv | json', 'table')
    .option('--limit <n>', 'rows to print in table format', '200')
    .action(async (sql: string, opts: { asOf?: string; format: string; limit: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const format = global.json ? 'json' : opts.format;
      const limit = wholeNumber(opts.limit, '--limit', 1);
      if (!['table', 'csv', 'json'].includes(format))
        throw new DipError('input', `--format ${format}: expected table, csv or json`);
      const { runQuery } = await import('../../ops/query.js');
      const result = await withLake(global, (lake) => runQuery(lake, sql, parseAsOf(opts.asOf)));
      const names = result.columns.map((c) => c.name);
      if (format === 'json') return printJson(result.rows);
      const rows = result.rows.map((r) => names.map((n) => r[n]));
      if (format === 'csv') {
        process.stdout.write(`${renderCsv(names, rows)}\n`);
        return;
      }
      process.stdout.write(`${renderTable(names, rows.slice(0, limit))}\n`);
      const more = rows.length > limit ? ` (showing ${limit}; use --format csv for all)` : '';
      process.stdout.write(
        `(${rows.length} row${rows.length === 1 ? '' : 's'}${more}${opts.asOf !== undefined && result.commit !== undefined ? `, as of commit ${result.commit}` : ''})\n`,
      );
    });
}
