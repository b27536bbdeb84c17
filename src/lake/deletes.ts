/**
 * Merge-on-read by delete files (silver tables with a key and their child tables). A table is a
 * base file plus, per build, an upsert file (the rows the build added or changed) and a delete
 * file (the key values whose earlier rows it replaced or deleted), both tagged with the build's
 * sequence number. A delete file hides the rows with its key values in files of a LOWER sequence
 * only, so a build's own upserts stay visible. Compaction writes the merged rows as a new base.
 */
import type { NewFile } from '../catalog/types.js';
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
} as const;

export type MorRole = 'base' | 'upsert' | 'delete';

/** What the reading functions need of a file: where it is and its meta. */
export interface MorFile {
  path: string;
  rows: number;
  meta?: Record<string, unknown> | undefined;
}

export function morRole(f: MorFile): MorRole | undefined {
  const r = f.meta?.[MOR_META.role];
  return r === 'base' || r === 'upsert' || r === 'delete' ? r : undefined;
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
  return files.reduce((n, f) => n + (isDeleteFile(f) ? -hidden(f) : f.rows), 0);
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
    } else base += f.rows;
  }
  return { delta, base, builds: builds.size };
}

/**
 * The relation of a merge-on-read table's rows: per sequence number, its data files less the
 * rows whose key a later delete file names (anti join, NULL keys equal), unioned by name. With
 * no delete file it is the plain scan. `uri` maps a storage path to what DuckDB reads.
 */
export function morRowsSql(uri: (path: string) => string, files: readonly MorFile[]): string | undefined {
  const data = files.filter((f) => !isDeleteFile(f));
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
  if (files.some(isDeleteFile)) return `(${morRowsSql(uri, files) ?? 'SELECT NULL AS no_columns WHERE false'})`;
  const scan = parquetScan(files.map((f) => uri(f.path)));
  const key = mergeOnReadKey(files.map((f) => ({ meta: f.meta ?? {} })));
  return key ? `(${latestRowsSql(scan, key)})` : scan;
}

/** Meta of a file a merge-on-read table's build or compaction writes. */
export function morMeta(
  role: MorRole,
  seq: number,
  extra: { on?: readonly string[]; hides?: number } = {},
): Record<string, unknown> {
  return {
    [MOR_META.role]: role,
    [MOR_META.seq]: seq,
    ...(extra.on ? { [MOR_META.on]: [...extra.on] } : {}),
    ...(extra.hides !== undefined ? { [MOR_META.hides]: extra.hides } : {}),
  };
}

/** A new file with its meta (for reading a build's result before it is committed). */
export function asMorFile(f: NewFile): MorFile {
  return { path: f.path, rows: f.rows, meta: f.meta };
}
