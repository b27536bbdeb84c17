import { ident, lit } from '../../lake/sql.js';
import { textSql, columnCheckName, neverNull, resolveColumn, shownSql, valueSql } from './shared.js';
import type { RowCheckKind } from './types.js';

/** The `regex` check (row level): its default name, its compilation to SQL over a row. */
export const regexCheck: RowCheckKind<'regex'> = {
  type: 'regex',
  level: 'row',
  defaultName: (check) => columnCheckName(check),
  compile(where, check) {
    const col = resolveColumn(where, check.column);
    const v = textSql(col);
    return {
      columns: [col.name],
      failSql: neverNull(
        `${ident(col.name)} IS NOT NULL AND NOT coalesce(regexp_full_match(${v}, ${lit(check.pattern)}), false)`,
      ),
      reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` does not match ${check.pattern}`)})`,
      valueSql: valueSql(col),
    };
  },
};
