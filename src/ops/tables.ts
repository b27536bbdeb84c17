/**
 * Tables: what `dip tables` and `GET /tables` list. A merge-on-read table (CDC current state)
 * counts its merged rows; the changes in its delta files not merged yet are `pendingChanges`,
 * not rows. A silver table with delete files counts the rows readers see.
 */
import type { TableInfo } from '../catalog/types.js';
import type { Lake } from '../lake/lake.js';
import { isMerged, morRowCount } from '../lake/deletes.js';
import { mergeOnReadKey } from '../lake/merge.js';

export type TableSummary = TableInfo & { pendingChanges?: number };

/** One table's rows as readers see them: a CDC current-state table's deltas are changes, not rows. */
export async function summarizeTable(lake: Lake, table: TableInfo): Promise<TableSummary> {
  const files = await lake.catalog.liveFiles(table.name);
  // A silver table's delete files hold keys, not rows: the rows are those readers see.
  if (isMerged(files)) return { ...table, rows: morRowCount(files) };
  if (!mergeOnReadKey(files)) return table;
  const pending = files.filter((f) => f.meta['cdc'] === 'delta').reduce((n, f) => n + f.rows, 0);
  return { ...table, rows: table.rows - pending, pendingChanges: pending };
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
