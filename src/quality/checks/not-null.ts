import { ident, lit } from '../../lake/sql.js';
import { columnList, columnsCheckName, configError, resolveColumn } from './shared.js';
import type { RowCheckKind } from './types.js';

/** The `not_null` check (row level): its default name, its compilation to SQL over a row. */
export const notNullCheck: RowCheckKind<'not_null'> = {
  type: 'not_null',
  level: 'row',
  defaultName: (check) => columnsCheckName(check),
  compile(where, check) {
    const names = columnList(check);
    if (!names.length) throw configError(where, 'set column or columns');
    const cols = names.map((n) => resolveColumn(where, n));
    const nulls = cols.map((c) => `${ident(c.name)} IS NULL`);
    return {
      columns: cols.map((c) => c.name),
      failSql: nulls.length === 1 ? `(${nulls[0]})` : `(${nulls.join(' OR ')})`,
      reasonSql:
        cols.length === 1
          ? lit(`${cols[0]?.name} is null`)
          : `concat_ws(', ', ${cols.map((c) => `CASE WHEN ${ident(c.name)} IS NULL THEN ${lit(`${c.name} is null`)} END`).join(', ')})`,
      valueSql: 'CAST(NULL AS VARCHAR)',
    };
  },
};
