/**
 * Tables: what `dip tables`, `dip status`, `dip describe` and `GET /tables` list. A
 * merge-on-read table (CDC current state) counts the rows readers see: its merged base with the
 * changes of its delta files applied (the latest change per key, deleted keys gone), counted by
 * a query when deltas exist and remembered per head commit. How many changes wait in deltas to
 * be merged is `pendingChanges` (not rows). A silver table with delete files counts the rows
 * readers see.
 */
import type { TableInfo } from '../catalog/types.js';
import type { Lake } from '../lake/lake.js';
import { isMerged, morRowCount } from '../lake/deletes.js';
import { latestRowsSql, mergeOnReadKey } from '../lake/merge.js';
import { parquetScan } from '../lake/scan.js';

export type TableSummary = TableInfo & { pendingChanges?: number };

/** True row counts of merge-on-read tables by lake, per table at its head commit. */
const counted = new WeakMap<Lake, Map<string, { head: number | null; rows: number }>>();

/** One table's rows as readers see them: a CDC current-state table's deltas are changes, not rows. */
export async function summarizeTable(lake: Lake, table: TableInfo): Promise<TableSummary> {
  const files = await lake.catalog.liveFiles(table.name);
  // A silver table's delete files hold keys, not rows: the rows are those readers see.
  if (isMerged(files)) return { ...table, rows: morRowCount(files) };
  const key = mergeOnReadKey(files);
  if (!key) return table;
  const deltas = files.filter((f) => f.meta['cdc'] === 'delta');
  const pending = deltas.reduce((n, f) => n + f.rows, 0);
  // A base without deltas holds exactly the current rows (merging drops deleted keys).
  if (pending === 0) return { ...table, rows: table.rows, pendingChanges: 0 };
  const cache = counted.get(lake) ?? new Map<string, { head: number | null; rows: number }>();
  counted.set(lake, cache);
  const known = cache.get(table.name);
  if (known && known.head === table.headCommit) return { ...table, rows: known.rows, pendingChanges: pending };
  const scan = `SELECT * FROM ${parquetScan(files.map((f) => lake.storage.uri(f.path)))}`;
  const [row] = await lake.engine.all(`SELECT count(*) AS n FROM (${latestRowsSql(`(${scan})`, key)})`);
  const rows = Number(row?.['n'] ?? 0);
  cache.set(table.name, { head: table.headCommit, rows });
  return { ...table, rows, pendingChanges: pending };
}

/** Every committed table, in catalog order. */
export async function listTables(lake: Lake): Promise<TableSummary[]> {
  const out: TableSummary[] = [];
  for (const t of await lake.catalog.listTables()) out.push(await summarizeTable(lake, t));
  return out;
}

/** One table by `zone.table`, or undefined (the caller words the error). */
export async function findTable(lake: Lake, name: string): Promise<TableSummary | undefined> {
  const table = await lake.catalog.getTable(name);
  return table ? summarizeTable(lake, table) : undefined;
}

/** The names of every table, for "no table …" errors. */
export async function tableNames(lake: Lake): Promise<string[]> {
  return (await lake.catalog.listTables()).map((t) => t.name);
}
