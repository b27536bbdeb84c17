import { lit } from '../../lake/sql.js';
import { neverNull, shownSql } from './shared.js';
import type { RowCheckKind, SilverColumn } from './types.js';

/** Silver columns named in a SQL expression (outside string literals), in order of appearance. */
function referencedColumns(expression: string, columns: readonly SilverColumn[]): SilverColumn[] {
  const stripped = expression.replace(/'(?:[^']|'')*'/g, "''");
  const found = new Map<string, SilverColumn>();
  for (const m of stripped.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)) {
    const quoted = m[1];
    const col =
      quoted !== undefined
        ? columns.find((c) => c.name === quoted.replaceAll('""', '"'))
        : (columns.find((c) => c.name === m[2]) ??
          columns.find((c) => c.name.toLowerCase() === (m[2] ?? '').toLowerCase()));
    if (col && !found.has(col.name)) found.set(col.name, col);
  }
  return [...found.values()].slice(0, 8);
}

/** The `expression` check (row level): its default name, its compilation to SQL over a row. */
export const expressionCheck: RowCheckKind<'expression'> = {
  type: 'expression',
  level: 'row',
  defaultName: (_check, expressionNo) => `expression_${expressionNo}`,
  compile(where, check) {
    const cols = referencedColumns(check.expression, where.columns);
    const values = cols.length
      ? `concat_ws(', ', ${cols.map((c) => `${lit(`${c.name} = `)} || ${shownSql(c)}`).join(', ')})`
      : undefined;
    return {
      columns: cols.map((c) => c.name),
      failSql: neverNull(`NOT (${check.expression})`),
      reasonSql: values
        ? `concat(${lit(`not met: ${check.expression} (`)}, ${values}, ')')`
        : lit(`not met: ${check.expression}`),
      valueSql: values ?? 'CAST(NULL AS VARCHAR)',
    };
  },
};
