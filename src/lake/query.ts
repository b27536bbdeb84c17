import type { AsOf, TableInfo } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from './lake.js';
import { splitTableName } from './paths.js';
import { isMerged, morRowsSql } from './deletes.js';
import { latestRowsSql, mergeOnReadKey } from './merge.js';
import { parquetScan, rawScan } from './scan.js';
import { ident } from './sql.js';
import { rawEnvelopesSql } from './raw-read.js';

export interface QueryResult {
  columns: { name: string; type: string }[];
  rows: Record<string, unknown>[];
  /** The commit the tables were read at. */
  commit: number | undefined;
}

/**
 * Makes every committed table queryable as `<zone>.<table>` (a view over exactly the files
 * live at the chosen commit), so SQL only ever sees committed data.
 */
export async function attachTables(
  lake: Lake,
  asOf?: AsOf,
): Promise<{ commit: number | undefined; tables: TableInfo[] }> {
  // Every table is read at one commit, so a commit landing meanwhile is wholly in or out.
  const commit = await lake.catalog.resolveAsOf(asOf ?? {});
  if (asOf?.commit !== undefined) {
    // A commit that does not exist yet is a typo or a copy from another catalog, not "the head".
    const head = await lake.catalog.resolveAsOf({});
    if (head === undefined || asOf.commit > head) {
      throw new DipError(
        'not_found',
        `no commit ${asOf.commit}: the head (newest commit) is ${head === undefined ? 'none yet (nothing was ever committed)' : `commit ${head}`}`,
      );
    }
  }
  if (asOf && commit === undefined) {
    throw new DipError(
      'not_found',
      `no commit at or before ${asOf.commit !== undefined ? `commit ${asOf.commit}` : asOf.at?.toISOString()}`,
    );
  }
  if (asOf && commit !== undefined) await assertReadable(lake, commit);
  const tables = await lake.catalog.listTables();
  const zones = new Set(tables.map((t) => t.zone));
  for (const zone of zones) await lake.engine.run(`CREATE SCHEMA IF NOT EXISTS ${ident(zone)}`);
  for (const t of tables) {
    const [zone, name] = splitTableName(t.name);
    const files = await lake.catalog.liveFiles(t.name, commit);
    const schema = (await lake.catalog.schemaAt(t.name, commit))?.schema;
    const view = `${ident(zone)}.${ident(name)}`;
    if (!schema && files.length === 0) {
      await lake.engine.run(`DROP VIEW IF EXISTS ${view}`);
      continue;
    }
    // A silver table with a key: its upserts less the rows later delete files name.
    const merged = isMerged(files) ? morRowsSql((p) => lake.storage.uri(p), files) : undefined;
    if (merged) {
      await lake.engine.run(`CREATE OR REPLACE VIEW ${view} AS ${merged}`);
      continue;
    }
    // Raw envelopes are derived from each file's metadata (the stored-as-arrived form).
    const sql =
      zone === 'raw' && files.length > 0
        ? rawEnvelopesSql(lake, files)
        : scanSql(
            lake,
            t.format,
            files.map((f) => f.path),
            schema?.columns ?? [],
          );
    const key = mergeOnReadKey(files);
    await lake.engine.run(
      `CREATE OR REPLACE VIEW ${view} AS ${key && files.length ? latestRowsSql(`(${sql})`, key) : sql}`,
    );
  }
  await attachViews(lake, tables, commit);
  return { commit, tables };
}

/** Catalog state holding the SELECT of each view model (gold models materialized as views). */
export const VIEW_STATE_PIPELINE = '_views';
export const VIEW_STATE_SOURCE = 'gold';

/**
 * Views defined by gold view models replace the empty relation of their table; a view reading
 * another view is created once that one is (a few passes, in any order).
 */
async function attachViews(lake: Lake, tables: TableInfo[], commit: number | undefined): Promise<void> {
  const views = (await lake.catalog.listStates(VIEW_STATE_PIPELINE)).filter(
    (s) => s.source === VIEW_STATE_SOURCE && tables.some((t) => t.name === `gold.${s.stream}`),
  );
  let pending = [];
  for (const v of views) {
    if (commit !== undefined && (await lake.catalog.schemaAt(`gold.${v.stream}`, commit)) === undefined) continue;
    pending.push({ name: v.stream, sql: String((v.value as { sql?: unknown }).sql ?? '') });
  }
  for (let pass = 0; pending.length > 0 && pass <= pending.length; pass++) {
    const failed: typeof pending = [];
    for (const v of pending) {
      try {
        await lake.engine.run(`CREATE OR REPLACE VIEW gold.${ident(v.name)} AS ${v.sql}`);
      } catch {
        failed.push(v);
      }
    }
    pending = failed;
  }
}

/** SQL reading a set of lake files; an empty set reads as an empty relation of the schema. */
export function scanSql(
  lake: Lake,
  format: 'parquet' | 'ndjson',
  paths: string[],
  columns: { name: string; type: string }[],
): string {
  if (paths.length === 0) {
    const cols = columns.length
      ? columns.map((c) => `CAST(NULL AS ${c.type}) AS ${ident(c.name)}`).join(', ')
      : 'NULL AS no_columns';
    return `SELECT ${cols} WHERE false`;
  }
  const uris = paths.map((p) => lake.storage.uri(p));
  return `SELECT * FROM ${format === 'parquet' ? parquetScan(uris) : rawScan(uris)}`;
}

export async function query(lake: Lake, sql: string, asOf?: AsOf): Promise<QueryResult> {
  const { commit } = await attachTables(lake, asOf);
  try {
    const result = await lake.engine.table(sql);
    return { ...result, commit };
  } catch (err) {
    throw new DipError('input', `query failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Refuses commits whose snapshot gc has already thinned out. */
export async function assertReadable(lake: Lake, commit: number): Promise<void> {
  const horizon = await lake.catalog.historyHorizon();
  if (commit < horizon) {
    throw new DipError(
      'not_found',
      `commit ${commit} is older than the kept history: gc expired files removed before commit ${horizon} (dip gc --retention); the oldest commit that can be read or restored is ${horizon}`,
    );
  }
}
