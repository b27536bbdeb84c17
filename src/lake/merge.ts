import type { NewFile } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from './lake.js';
import { parquetScan } from './scan.js';
import { writeLakeFile } from './write-file.js';
import { ident, litList } from './sql.js';
import { CDC_COLUMNS } from './zone-schemas.js';

/**
 * Merge-on-read tables (CDC current-state tables): every file carries the key in this meta
 * field, and readers keep the latest row per key by change position, without deleted rows.
 * Writers then add a unit's changes as a small delta file instead of rewriting the table.
 */
export const MERGE_KEY_META = 'merge_key';

export function mergeOnReadKey(files: readonly { meta: Record<string, unknown> }[]): string[] | undefined {
  for (const f of files) {
    const key = f.meta[MERGE_KEY_META];
    if (Array.isArray(key) && key.length > 0) return key.map(String);
  }
  return undefined;
}

/**
 * The rows a merge-on-read table holds: the latest change per key, deleted keys gone; with
 * `keepDeleted`, deletions stay as rows (merging deltas, which must still hide older rows).
 */
export function latestRowsSql(
  relation: string,
  key: readonly string[],
  options: { keepDeleted?: boolean } = {},
): string {
  const deleted = options.keepDeleted ? '' : ` AND NOT coalesce(${ident(CDC_COLUMNS.deleted)}, false)`;
  return `SELECT * EXCLUDE (_dip_rank) FROM (
    SELECT *, row_number() OVER (PARTITION BY ${key.map(ident).join(', ')} ORDER BY ${ident(CDC_COLUMNS.lsn)} DESC, ${ident(CDC_COLUMNS.seq)} DESC) AS _dip_rank
    FROM ${relation}
  ) WHERE _dip_rank = 1${deleted}`;
}

/** A relation of a table's files: as read, or for merge-on-read files the latest row per key. */
export function liveRowsSql(scan: string, files: readonly { meta: Record<string, unknown> }[]): string {
  const key = mergeOnReadKey(files);
  return key ? `(${latestRowsSql(scan, key)})` : scan;
}

export interface MergeInput {
  source: string;
  table: string;
  primaryKey: string[];
  deletedColumn?: string | undefined;
  /** SQL condition on incoming rows that take no part in the merge (e.g. TRUNCATE markers of a change log). */
  skipRows?: string | undefined;
  /** Paths (storage-relative) of the table's live files, oldest first. */
  current: string[];
  /** Locations DuckDB reads the new batch's files from (local paths or storage URIs), in read order. */
  incoming: string[];
  runId: string;
  /** Extra facts recorded on the merged file. */
  meta?: Record<string, unknown>;
}

/**
 * Upsert by primary key: the latest record per key wins (incoming over current, later files
 * over earlier ones, later rows over earlier rows); keys whose latest record is marked deleted
 * disappear. Writes the whole merged table as one new file (copy-on-write).
 */
export async function mergeFiles(lake: Lake, m: MergeInput): Promise<NewFile | undefined> {
  if (m.primaryKey.length === 0) {
    throw new DipError('config', `bronze.${m.table}: write_disposition merge needs primary_key on the stream`);
  }
  const incoming = m.incoming;
  const files = [...m.current.map((p) => lake.storage.uri(p)), ...incoming];
  const scan = parquetScan(files, ['filename=true', 'file_row_number=true']);
  const columns = (await lake.engine.describe(`SELECT * FROM ${scan}`)).map((c) => c.name);
  for (const k of [...m.primaryKey, ...(m.deletedColumn ? [m.deletedColumn] : [])]) {
    if (!columns.includes(k)) {
      throw new DipError(
        'config',
        `bronze.${m.table}: merge column "${k}" is not a column of the data (columns: ${columns.filter((c) => !c.startsWith('_dip_') && c !== 'filename' && c !== 'file_row_number').join(', ')})`,
      );
    }
  }
  const pk = m.primaryKey.map(ident).join(', ');
  const skip = m.skipRows ? `AND NOT coalesce((${m.skipRows}), false)` : '';
  const nullKeys = await lake.engine.all(
    `SELECT _dip_source_file AS file, count(*) AS n FROM ${parquetScan(incoming)}
     WHERE (${m.primaryKey.map((k) => `${ident(k)} IS NULL`).join(' OR ')}) ${skip} GROUP BY 1 ORDER BY 1`,
  );
  if (nullKeys.length > 0) {
    const where = nullKeys.map((r) => `${String(r['n'])} in ${String(r['file'])}`).join(', ');
    const total = nullKeys.reduce((n, r) => n + Number(r['n']), 0);
    throw new DipError(
      'input',
      `bronze.${m.table}: ${total} incoming records have no value for primary key (${m.primaryKey.join(', ')}) (${where}); merge cannot place them`,
    );
  }
  const deleted = m.deletedColumn ? `AND NOT coalesce(TRY_CAST(${ident(m.deletedColumn)} AS BOOLEAN), false)` : '';
  return writeLakeFile(
    lake,
    `SELECT * EXCLUDE (filename, file_row_number, _dip_rank) FROM (
      SELECT *, row_number() OVER (PARTITION BY ${pk} ORDER BY list_position(${litList(files)}, filename) DESC, file_row_number DESC) AS _dip_rank
      FROM ${scan} WHERE true ${skip}
    ) WHERE _dip_rank = 1 ${deleted}
    ORDER BY ${pk}`,
    { zone: 'bronze', source: m.source, table: m.table },
    { run_id: m.runId, merged_from: files.length, ...m.meta },
  );
}
