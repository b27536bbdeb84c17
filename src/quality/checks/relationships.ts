import { ident, lit } from '../../lake/sql.js';
import { columnCheckName, neverNull, resolveColumn, shownSql, valueSql } from './shared.js';
import type { RowCheckKind } from './types.js';

/** The `relationships` check (row level): its default name, its compilation to SQL over a row. */
export const relationshipsCheck: RowCheckKind<'relationships'> = {
  type: 'relationships',
  level: 'row',
  defaultName: (check) => columnCheckName(check),
  async compile(where, check, refRelation) {
    const col = resolveColumn(where, check.column);
    const c = ident(col.name);
    const ref = await refRelation(check.to, check.field);
    // IN (subquery) is planned as a MARK hash join (the referenced side is the build side). The
    // referenced values are cast to the column type (a no-op when the types agree), so a VARCHAR
    // key can reference an integer one and vice versa instead of failing to bind.
    const refValues = `SELECT TRY_CAST(${ident(check.field)} AS ${col.type}) FROM ${ref}`;
    return {
      columns: [col.name],
      failSql: neverNull(`${c} IS NOT NULL AND NOT coalesce(${c} IN (${refValues}), false)`),
      reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not in ${check.to}.${check.field}`)})`,
      valueSql: valueSql(col),
    };
  },
};
