import { ident, lit } from '../../lake/sql.js';
import { coarseKind as typeKind } from '../../lake/duck-types.js';
import { columnCheckName, configError, neverNull, resolveColumn, shownSql, shownValue, valueSql } from './shared.js';
import type { RowCheckKind, SilverColumn, Where } from './types.js';

function acceptedLiteral(where: Where, col: SilverColumn, v: string | number | boolean): string {
  const kind = typeKind(col.type);
  if (kind === 'text') return lit(String(v));
  if (kind === 'numeric') {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n))
      throw configError(where, `value ${shownValue(v)} is not a number, but column ${col.name} is ${col.type}`, {
        column: col.name,
      });
    return String(n);
  }
  if (kind === 'boolean' && typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  return `TRY_CAST(${lit(String(v))} AS ${col.type})`;
}

/** The `accepted_values` check (row level): its default name, its compilation to SQL over a row. */
export const acceptedValuesCheck: RowCheckKind<'accepted_values'> = {
  type: 'accepted_values',
  level: 'row',
  defaultName: (check) => columnCheckName(check),
  compile(where, check) {
    const col = resolveColumn(where, check.column);
    const c = ident(col.name);
    const values = check.values.map((v) => acceptedLiteral(where, col, v));
    const listed =
      check.values.slice(0, 10).map(shownValue).join(', ') +
      (check.values.length > 10 ? `, … (${check.values.length} values)` : '');
    return {
      columns: [col.name],
      failSql: neverNull(`${c} IS NOT NULL AND NOT coalesce(${c} IN (${values.join(', ')}), false)`),
      reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not one of ${listed}`)})`,
      valueSql: valueSql(col),
    };
  },
};
