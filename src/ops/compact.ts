/**
 * Compaction: what `dip compact` and `POST /tables/:name/compact` run. A silver table merged on
 * read (upsert and delete files) is folded into a new base file; any other Parquet table has its
 * small files rewritten as one. Each table is one commit.
 */
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { compactTable, type CompactResult } from '../lake/maintenance.js';
import { tableNames } from './tables.js';

export interface CompactOptions {
  /** Files below this many bytes are packed together (tables not merged on read). */
  smallFileBytes: number;
  dryRun?: boolean;
}

/** Compacts the named tables (default: every Parquet table), in order; each result names its commit. */
export async function compactTables(
  lake: Lake,
  names: readonly string[] | undefined,
  options: CompactOptions,
): Promise<CompactResult[]> {
  const all = await lake.catalog.listTables();
  if (names?.length) {
    const unknown = names.filter((n) => !all.some((t) => t.name === n));
    if (unknown.length)
      throw new DipError(
        'not_found',
        `no table named ${unknown.join(', ')} (tables: ${(await tableNames(lake)).join(', ') || '(none yet)'}); name it as zone.table, e.g. silver.orders`,
      );
  }
  const tables = names?.length ? [...names] : all.filter((t) => t.format === 'parquet').map((t) => t.name);
  const out: CompactResult[] = [];
  for (const t of tables) out.push(await compactTable(lake, t, options));
  return out;
}
