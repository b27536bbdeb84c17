/**
 * Surrogate keys of dimensions: a stable 63-bit hash of the natural key (and, for SCD2, the
 * version's start), or a sequence whose values are kept across rebuilds (a row keeps the key
 * the previous build gave it; new rows continue after the largest). Every dimension with a
 * surrogate key also holds the unknown member (-1: a fact's natural key found no row) and the
 * not-applicable member (-2: the fact has no natural key).
 */
import type { SurrogateKeyConfig } from '../config/gold.js';
import { ident } from '../lake/sql.js';

export const UNKNOWN_MEMBER = -1;
export const NOT_APPLICABLE_MEMBER = -2;

const asText = (c: string) => `coalesce(CAST(${c} AS VARCHAR), chr(0))`;

/** The stable hash key of a row: 63 bits of the MD5 of its natural key (and version start). */
export function hashKeySql(columns: readonly string[]): string {
  return `CAST(md5_number_upper(concat_ws(chr(31), ${columns.map(asText).join(', ')})) >> 1 AS BIGINT)`;
}

/**
 * `rows` (a SELECT) with the surrogate key column first and the member rows added. `previous`
 * is a relation of the dimension as last built (sequence keys carried over by `identity`).
 */
export function withSurrogateKey(
  rows: string,
  sk: SurrogateKeyConfig,
  identity: readonly string[],
  previous: string | undefined,
): string {
  const key = ident(sk.name);
  const members = `SELECT * FROM (SELECT ${UNKNOWN_MEMBER}::BIGINT AS ${key} UNION ALL SELECT ${NOT_APPLICABLE_MEMBER}::BIGINT AS ${key})`;
  if (sk.strategy === 'hash') {
    return `SELECT ${hashKeySql(identity.map(ident))} AS ${key}, * FROM (${rows}) UNION ALL BY NAME ${members}`;
  }
  const on = identity.map((c) => `p.${ident(c)} IS NOT DISTINCT FROM r.${ident(c)}`).join(' AND ');
  const prev = previous
    ? `(SELECT ${key}, ${identity.map(ident).join(', ')} FROM ${previous} WHERE ${key} >= 0)`
    : undefined;
  if (!prev) {
    return `SELECT row_number() OVER (ORDER BY ${identity.map(ident).join(', ')}) AS ${key}, * FROM (${rows}) UNION ALL BY NAME ${members}`;
  }
  return `SELECT coalesce(_sk_old, (SELECT coalesce(max(${key}), 0) FROM ${prev}) + row_number() OVER (PARTITION BY _sk_old IS NULL ORDER BY ${identity.map((c) => `r.${ident(c)}`).join(', ')})) AS ${key}, r.* EXCLUDE (_sk_old)
    FROM (SELECT r.*, p.${key} AS _sk_old FROM (${rows}) AS r LEFT JOIN ${prev} AS p ON ${on}) AS r
    UNION ALL BY NAME ${members}`;
}
