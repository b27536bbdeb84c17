/**
 * Incremental reads of streams without a primary key. Their position is the cursor alone, so
 * `cursor > last` would lose, for good, rows that share the last cursor value and commit after
 * the run read it. Instead the position also keeps, for the last cursor value, how many rows
 * of each content hash (every column read) have landed; the next run re-reads that value
 * inclusively and lands only the rows beyond those counts. Identical rows are counted, not
 * collapsed: a third copy of a row landed twice still lands once.
 */
import { DipError } from '../../core/errors.js';

/** Rows at the last cursor value already landed: content hash (16 hex digits) → count. */
export type TieCounts = Record<string, number>;

const HASH = /^[0-9a-f]{16}$/;

/** A saved tie count, checked before any of it reaches SQL; undefined for positions saved before ties were kept. */
export function savedTies(value: unknown, where: string): TieCounts | undefined {
  if (value === undefined || value === null) return undefined;
  const ok =
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.entries(value).every(([h, n]) => HASH.test(h) && Number.isSafeInteger(n) && (n as number) > 0);
  if (!ok) {
    throw new DipError(
      'config',
      `${where}: the saved position's "tied" is not a map of 16-hex-digit row hashes to counts; reset the stream's state to read it from the start`,
    );
  }
  return value as TieCounts;
}

/** Whether rows at the last cursor value now outnumber, for some content, those already landed. */
export function hasNewTies(now: TieCounts, landed: TieCounts): boolean {
  return Object.entries(now).some(([h, n]) => n > (landed[h] ?? 0));
}

/** Query-result rows `{h, n}` → counts. */
export function tieCounts(rows: readonly { h: unknown; n: unknown }[]): TieCounts {
  const out: TieCounts = {};
  for (const r of rows) out[String(r.h)] = Number(r.n);
  return out;
}

/** `SELECT h, n`: how many rows of each content hash hold cursor = the value, under the stream's conditions. */
export function tieCountSql(hash: string, from: string, where: string): string {
  return `SELECT ${hash} AS h, count(*) AS n FROM ${from} WHERE ${where} GROUP BY ${hash}`;
}

/**
 * The rows at the last cursor value not landed yet: per content hash, those past the landed
 * count (identical rows are interchangeable, so which copies is immaterial).
 */
export function newTiesSql(o: {
  /** The stream's columns by name, in order. */
  names: string;
  /** The stream's SELECT list (columns rendered as text, named). */
  selectList: string;
  hash: string;
  from: string;
  /** The stream's conditions and cursor = the last value. */
  where: string;
  landed: TieCounts;
}): string {
  const entries = Object.entries(o.landed);
  const landed = entries.length
    ? `CASE _dip_h ${entries.map(([h, n]) => `WHEN '${h}' THEN ${n}`).join(' ')} ELSE 0 END`
    : '0';
  return `SELECT ${o.names} FROM (SELECT ${o.selectList}, ${o.hash} AS _dip_h, row_number() OVER (PARTITION BY ${o.hash}) AS _dip_n FROM ${o.from} WHERE ${o.where}) AS _dip_t WHERE _dip_n > ${landed}`;
}
