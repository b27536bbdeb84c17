import { ident, lit } from '../../lake/sql.js';
import { coarseKind as typeKind } from '../../lake/duck-types.js';
import { columnCheckName, configError, neverNull, resolveColumn, shownSql, valueSql } from './shared.js';
import type { RowCheckKind, SilverColumn, Where } from './types.js';

/** A range bound as SQL comparable with the column, and as text for messages. */
function boundSql(where: Where, col: SilverColumn, which: 'min' | 'max', bound: number | string): string {
  const kind = typeKind(col.type);
  if (kind === 'numeric') {
    const n = typeof bound === 'number' ? bound : bound.trim() === '' ? NaN : Number(bound);
    if (!Number.isFinite(n))
      throw configError(
        where,
        `${which} ${JSON.stringify(bound)} is not a number, but column ${col.name} is ${col.type}`,
        { column: col.name },
      );
    return String(n);
  }
  if (typeof bound === 'number') {
    throw configError(
      where,
      `${which} ${bound} is a number, but column ${col.name} is ${col.type}; give the bound as text${kind === 'temporal' ? ' such as 2024-01-01' : ''}`,
      {
        column: col.name,
      },
    );
  }
  if (kind === 'temporal' && !/^\d{4}-\d{2}-\d{2}/.test(bound.trim()) && !/^\d{2}:\d{2}/.test(bound.trim())) {
    throw configError(
      where,
      `${which} "${bound}" is not an ISO date or timestamp (such as 2024-01-01 or 2024-01-01T00:00:00Z), as column ${col.name} (${col.type}) needs`,
      {
        column: col.name,
      },
    );
  }
  return `CAST(${lit(bound)} AS ${col.type})`;
}

/** The `range` check (row level): its default name, its compilation to SQL over a row. */
export const rangeCheck: RowCheckKind<'range'> = {
  type: 'range',
  level: 'row',
  defaultName: (check) => columnCheckName(check),
  compile(where, check) {
    const col = resolveColumn(where, check.column);
    if (check.min === undefined && check.max === undefined)
      throw configError(where, 'set min, max or both', { column: col.name });
    const c = ident(col.name);
    const ex = check.exclusive;
    const low =
      check.min === undefined ? undefined : `${c} ${ex ? '<=' : '<'} ${boundSql(where, col, 'min', check.min)}`;
    const high =
      check.max === undefined ? undefined : `${c} ${ex ? '>=' : '>'} ${boundSql(where, col, 'max', check.max)}`;
    const lowText = ` is ${ex ? 'not above exclusive' : 'below'} min ${String(check.min)}`;
    const highText = ` is ${ex ? 'not below exclusive' : 'above'} max ${String(check.max)}`;
    const prefix = `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, `;
    let reasonSql: string;
    if (low && high) reasonSql = `${prefix}CASE WHEN ${low} THEN ${lit(lowText)} ELSE ${lit(highText)} END)`;
    else reasonSql = `${prefix}${lit(low ? lowText : highText)})`;
    return {
      columns: [col.name],
      failSql: neverNull([low, high].filter((x) => x !== undefined).join(' OR ')),
      reasonSql,
      valueSql: valueSql(col),
    };
  },
};
