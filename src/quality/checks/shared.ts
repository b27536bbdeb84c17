import { ConfigError } from '../../core/errors.js';
import { ident } from '../../lake/sql.js';
import { verdict } from '../report.js';
import { coarseKind as typeKind } from '../../lake/duck-types.js';
import type { CompiledTableCheck, SilverColumn, Where } from './types.js';

/** Helpers the check kinds share: config errors naming table and check, column lookup, values shown in reasons. */
export function configError(where: Where, text: string, details: Record<string, unknown> = {}): ConfigError {
  return new ConfigError(`${where.table}: check ${where.check}: ${text}`, {
    details: { table: where.table, check: where.check, ...details },
  });
}

export function resolveColumn(where: Where, name: string): SilverColumn {
  const col =
    where.columns.find((c) => c.name === name) ??
    where.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  if (col) return col;
  const known = where.columns.map((c) => c.name);
  throw configError(where, `unknown column "${name}" (columns: ${known.length ? known.join(', ') : 'none'})`, {
    column: name,
    columns: known,
  });
}

export function columnList(check: { column?: string | undefined; columns?: string[] | undefined }): string[] {
  const names = [...(check.column !== undefined ? [check.column] : []), ...(check.columns ?? [])];
  return [...new Set(names)];
}

export const MAX_SHOWN = 80;

/** SQL VARCHAR of a column's value for reasons: text quoted, long values clipped, NULL as NULL. */
export function shownSql(col: SilverColumn): string {
  const v = `CAST(${ident(col.name)} AS VARCHAR)`;
  const clipped = `CASE WHEN length(${v}) > ${MAX_SHOWN} THEN left(${v}, ${MAX_SHOWN - 1}) || '…' ELSE ${v} END`;
  const quoted = typeKind(col.type) === 'text' ? `'''' || ${clipped} || ''''` : clipped;
  return `coalesce(${quoted}, 'NULL')`;
}

export function valueSql(col: SilverColumn): string {
  return `CAST(${ident(col.name)} AS VARCHAR)`;
}

export function neverNull(sql: string): string {
  return `coalesce(${sql}, false)`;
}

export function shownValue(v: string | number | boolean): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** `passed` or `failed`, as the check's `mostly` judges one failed item. */
export function outcomeWord(check: CompiledTableCheck, failed: number): string {
  return verdict(1, failed, check.mostly).passed ? 'passed' : 'failed';
}

/** `<type>_<column>`: the default name of a check on one column. */
export function columnCheckName(check: { type: string; column: string }): string {
  return `${check.type}_${check.column}`;
}

/** `<type>_<columns joined by _>`, or the type alone: the default name of a check on column or columns. */
export function columnsCheckName(check: {
  type: string;
  column?: string | undefined;
  columns?: string[] | undefined;
}): string {
  const cols = columnList(check);
  return cols.length ? `${check.type}_${cols.join('_')}` : check.type;
}

/** The column as text for pattern checks: text columns as they are, others cast to VARCHAR. */
export function textSql(col: SilverColumn): string {
  return typeKind(col.type) === 'text' ? ident(col.name) : `CAST(${ident(col.name)} AS VARCHAR)`;
}
