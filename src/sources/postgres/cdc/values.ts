/**
 * Change events carry each value as the server's text output; the snapshot reads the same
 * columns through COPY with a few columns rendered for DuckDB (selectExpression). These turn
 * event text into that same form, so a value reads identically from the snapshot and the stream.
 */
import { parse as parseArray } from 'postgres-array';
import type { ValueConverter } from '../../database/change-batch.js';
import type { DbColumn } from '../../database/types.js';

const NUMERIC = /^(SMALLINT|INTEGER|BIGINT|FLOAT|DOUBLE|DECIMAL)/;

/** bytea hex output (\x0aff) to DuckDB BLOB text (\x0a\xff). */
function byteaText(text: string): string {
  const hex = text.startsWith('\\x') ? text.slice(2) : text;
  let out = '';
  for (let i = 0; i < hex.length; i += 2) out += `\\x${hex.slice(i, i + 2)}`;
  return out;
}

/** An array literal ({1,2,NULL}, {"a b",c}) as the JSON array_to_json would give. */
function arrayJson(text: string, elementType: string): string {
  const element = (v: string | null): string => {
    if (v === null) return 'null';
    if (NUMERIC.test(elementType)) return v;
    if (elementType === 'BOOLEAN') return v === 't' ? 'true' : 'false';
    if (elementType === 'JSON') return v;
    return JSON.stringify(v);
  };
  const render = (value: unknown): string =>
    Array.isArray(value) ? `[${value.map(render).join(',')}]` : element(value as string | null);
  return render(parseArray(text, (v) => v));
}

/** The conversion a column's event text needs, or undefined when the text is already right. */
export function converterFor(column: DbColumn): ValueConverter | undefined {
  if (column.lakeType === 'BLOB') return byteaText;
  if (column.sourceType.endsWith('[]')) {
    const elementType = column.lakeType.endsWith('[]')
      ? column.lakeType.slice(0, -2)
      : /^jsonb?\[\]$/.test(column.sourceType)
        ? 'JSON'
        : 'VARCHAR';
    return (text) => arrayJson(text, elementType);
  }
  return undefined;
}
