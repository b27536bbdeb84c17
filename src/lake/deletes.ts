/**
 * Merge-on-read by delete files (silver tables with a key and their child tables). A table is a
 * base file plus, per build, an upsert file (the rows the build added or changed) and a delete
 * file (the key values whose earlier rows it replaced or deleted), both tagged with the build's
 * sequence number. A delete file hides the rows with its key values in files of a LOWER sequence
 * only, so a build's own upserts stay visible. Compaction writes the merged rows as a new base.
 *
 * Deleted keys leave tombstones (delete entries with `_dip_tombstone` true, their winning sort
 * values and first/last arrival), so a later build weighs a late older version, or a key coming
 * back, against the deletion exactly as a full rebuild over every bronze row would. Full builds
 * and compactions keep the live tombstones in a `tombstones` file, which hides nothing.
 */
import { mergeOnReadKey, latestRowsSql } from './merge.js';
import { parquetScan } from './scan.js';
import { ident } from './sql.js';

/** File meta fields of a merge-on-read table. */
export const MOR_META = {
  /** 'base' | 'upsert' | 'delete' */
  role: 'mor',
  /** The build that wrote the file (base: 0 or the build's, compaction: 0). */
  seq: 'mor_seq',
  /** Delete files: the columns their rows name (the key; `_dip_parent_id` in child tables). */
  on: 'mor_on',
  /** Delete files: how many live rows the file hides (its rows for a key, more for children). */
  hides: 'mor_hides',
  /** Delete and tombstones files whose entries have the `_dip_tombstone` column (keyed silver tables). */
  tombstones: 'mor_tombstones',
} as const;

export type MorRole = 'base' | 'upsert' | 'delete' | 'tombstones';

/** Column of delete entries: true when the key was deleted (a tombstone), false when its row was replaced. */
export const TOMBSTONE = '_dip_tombstone';

/** What the reading functions need of a file: where it is and its meta. */
export interface MorFile {
  path: string;
  rows: number;
  meta?: Record<string, unknown> | undefined;
}

export function morRole(f: MorFile): MorRole | undefined {
  const r = f.meta?.[MOR_META.role];
  return r === 'base' || r === 'upsert' || r === 'delete' || r === 'tombstones' ? r : undefined;
}

/** Files holding rows (not delete entries or tombstones). */
function isDataFile(f: MorFile): boolean {
  const role = morRole(f);
  return role !== 'delete' && role !== 'tombstones';
}

/** Whether readers must merge: the table has delete files or tombstones (which are not rows). */
export function isMerged(files: readonly MorFile[]): boolean {
  return files.some((f) => !isDataFile(f));
}

export function morSeq(f: MorFile): number {
  const s = f.meta?.[MOR_META.seq];
  return typeof s === 'number' ? s : 0;
}

export function isDeleteFile(f: MorFile): boolean {
  return morRole(f) === 'delete';
}

/** Whether the table holds changes not compacted yet (upsert or delete files). */
export function hasDeltas(files: readonly MorFile[]): boolean {
  return files.some((f) => morRole(f) === 'upsert' || morRole(f) === 'delete');
}

/** The sequence number of the next build: one above every file's. */
export function nextMorSeq(files: readonly MorFile[]): number {
  return files.reduce((n, f) => Math.max(n, morSeq(f)), 0) + 1;
}

/** Rows delete files hide. */
function hidden(f: MorFile): number {
  const h = f.meta?.[MOR_META.hides];
  return typeof h === 'number' ? h : f.rows;
}

/** The rows readers see: data rows less those the delete files hide (each hides live rows only). */
export function morRowCount(files: readonly MorFile[]): number {
  return files.reduce((n, f) => n + (isDeleteFile(f) ? -hidden(f) : morRole(f) === 'tombstones' ? 0 : f.rows), 0);
}

/** Rows in upsert files and rows hidden by delete files: the work a compaction would fold in. */
export function deltaRows(files: readonly MorFile[]): { delta: number; base: number; builds: number } {
  let delta = 0;
  let base = 0;
  const builds = new Set<number>();
  for (const f of files) {
    const role = morRole(f);
    if (role === 'upsert' || role === 'delete') {
      delta += role === 'delete' ? hidden(f) : f.rows;
      builds.add(morSeq(f));
    } else if (role !== 'tombstones') base += f.rows;
  }
  return { delta, base, builds: builds.size };
}

/**
 * The relation of a merge-on-read table's rows: per sequence number, its data files less the
 * rows whose key a later delete file names (anti join, NULL keys equal), unioned by name. With
 * no delete file it is the plain scan. `uri` maps a storage path to what DuckDB reads.
 */
export function morRowsSql(uri: (path: string) => string, files: readonly MorFile[]): string | undefined {
  const data = files.filter(isDataFile);
  if (data.length === 0) return undefined;
  const deletes = files.filter(isDeleteFile);
  const seqs = [...new Set(data.map(morSeq))].sort((a, b) => a - b);
  const terms = seqs.map((seq) => {
    const scan = parquetScan(data.filter((f) => morSeq(f) === seq).map((f) => uri(f.path)));
    const later = deletes.filter((d) => morSeq(d) > seq);
    if (later.length === 0) return `SELECT * FROM ${scan}`;
    const on = deleteColumns(later);
    const cols = on.map(ident).join(', ');
    const cond = on.map((c) => `_t.${ident(c)} IS NOT DISTINCT FROM _d.${ident(c)}`).join(' AND ');
    return `SELECT _t.* FROM ${scan} AS _t ANTI JOIN (SELECT DISTINCT ${cols} FROM ${parquetScan(later.map((d) => uri(d.path)))}) AS _d ON ${cond}`;
  });
  return terms.length === 1 ? (terms[0] as string) : terms.map((t) => `(${t})`).join(' UNION ALL BY NAME ');
}

function deleteColumns(deletes: readonly MorFile[]): string[] {
  const on = deletes[0]?.meta?.[MOR_META.on];
  return Array.isArray(on) ? on.map(String) : ['_dip_id'];
}

/**
 * A FROM-able relation of the rows a table holds, whatever its layout: merge-on-read by delete
 * files, a CDC current-state table (latest change per key), or its files as they are.
 */
export function tableRowsSql(uri: (path: string) => string, files: readonly MorFile[]): string {
  if (isMerged(files)) return `(${morRowsSql(uri, files) ?? 'SELECT NULL AS no_columns WHERE false'})`;
  const scan = parquetScan(files.map((f) => uri(f.path)));
  const key = mergeOnReadKey(files.map((f) => ({ meta: f.meta ?? {} })));
  return key ? `(${latestRowsSql(scan, key)})` : scan;
}

/** Meta of a file a merge-on-read table's build or compaction writes. */
export function morMeta(
  role: MorRole,
  seq: number,
  extra: { on?: readonly string[]; hides?: number; tombstones?: boolean } = {},
): Record<string, unknown> {
  return {
    [MOR_META.role]: role,
    [MOR_META.seq]: seq,
    ...(extra.on ? { [MOR_META.on]: [...extra.on] } : {}),
    ...(extra.hides !== undefined ? { [MOR_META.hides]: extra.hides } : {}),
    ...(extra.tombstones ? { [MOR_META.tombstones]: true } : {}),
  };
}

/**
 * The current entry of each key in `keys` (a relation of the key columns): its visible row
 * (`dataColumns` of it, `_tomb` false) or its tombstone (the delete entry's columns, `_tomb`
 * true); keys with neither are absent. The latest entry by (sequence, row over delete entry)
 * decides, so only the rows and entries of those keys are read, never the table.
 */
export function currentEntriesSql(
  uri: (path: string) => string,
  files: readonly MorFile[],
  key: readonly string[],
  dataColumns: readonly string[],
  keys: string,
): string {
  const on = key.map((c) => `c.${ident(c)} IS NOT DISTINCT FROM k.${ident(c)}`).join(' AND ');
  const terms: string[] = [];
  const data = files.filter(isDataFile);
  for (const seq of [...new Set(data.map(morSeq))]) {
    const scan = parquetScan(data.filter((f) => morSeq(f) === seq).map((f) => uri(f.path)));
    terms.push(
      `SELECT ${dataColumns.map((c) => `c.${ident(c)}`).join(', ')}, ${seq} AS _seq, 2 AS _prio, false AS _tomb FROM ${scan} AS c SEMI JOIN ${keys} AS k ON ${on}`,
    );
  }
  for (const f of files.filter((x) => !isDataFile(x))) {
    terms.push(
      `SELECT c.* EXCLUDE (${TOMBSTONE}), ${morSeq(f)} AS _seq, 1 AS _prio, c.${TOMBSTONE} AS _tomb FROM ${parquetScan([uri(f.path)])} AS c SEMI JOIN ${keys} AS k ON ${on}`,
    );
  }
  const all = terms.map((t) => `(${t})`).join(' UNION ALL BY NAME ');
  return `SELECT * EXCLUDE (_e, _seq, _prio) FROM (
    SELECT *, row_number() OVER (PARTITION BY ${key.map(ident).join(', ')} ORDER BY _seq DESC, _prio DESC) AS _e FROM (${all})
  ) WHERE _e = 1 AND (_prio = 2 OR _tomb)`;
}

/**
 * The live tombstones of a table (deleted keys no later row brought back), as the columns of
 * its delete entries; undefined when its delete files keep none (child tables).
 */
export function liveTombstonesSql(uri: (path: string) => string, files: readonly MorFile[]): string | undefined {
  const entries = files.filter((f) => !isDataFile(f) && f.meta?.[MOR_META.tombstones] === true);
  if (entries.length === 0) return undefined;
  const key = deleteColumns(entries);
  const keys = `(SELECT DISTINCT ${key.map(ident).join(', ')} FROM ${parquetScan(entries.map((f) => uri(f.path)))} WHERE ${TOMBSTONE})`;
  return `SELECT * EXCLUDE (_tomb), true AS ${TOMBSTONE} FROM (${currentEntriesSql(uri, files, key, key, keys)}) WHERE _tomb`;
}
