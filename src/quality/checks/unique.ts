import { ident, lit } from '../../lake/sql.js';
import { MAX_SAMPLES, countedMessage, fmtCount, sampleText } from '../report.js';
import { columnList, columnsCheckName, configError, resolveColumn } from './shared.js';
import type { TableCheckKind } from './types.js';

/** The `unique` check (table level): its default name, its compilation (config validated against the table) and its evaluation over the written table. */
export const uniqueCheck: TableCheckKind<'unique'> = {
  type: 'unique',
  level: 'table',
  defaultName: (check) => columnsCheckName(check),
  compile(where, check) {
    const names = columnList(check);
    if (!names.length) throw configError(where, 'set column or columns');
    return names.map((n) => resolveColumn(where, n).name);
  },
  async evaluate(engine, relationSql, check, _cfg, _ctx, _rowCount) {
    const { table, name } = check;
    const keys = check.columns.map(ident);
    const isNull = keys.map((k) => `${k} IS NULL`).join(' OR ');
    const shown =
      keys.length === 1
        ? `concat(${lit(`${check.columns[0]} = `)}, coalesce(CAST(${keys[0]} AS VARCHAR), 'NULL'))`
        : `concat(${lit(`(${check.columns.join(', ')}) = (`)}, concat_ws(', ', ${keys.map((k) => `coalesce(CAST(${k} AS VARCHAR), 'NULL')`).join(', ')}), ')')`;
    const sql = `SELECT coalesce(sum(_dq_n), 0) AS n,
        coalesce(sum(_dq_n) FILTER (WHERE _dq_dup), 0) AS failed,
        count(*) FILTER (WHERE _dq_dup) AS groups,
        arg_max(_dq_s, _dq_n, ${MAX_SAMPLES}) FILTER (WHERE _dq_dup) AS samples
      FROM (SELECT _dq_n, _dq_dup, CASE WHEN _dq_dup THEN concat(${shown}, ' (', _dq_n, ' rows)') END AS _dq_s
            FROM (SELECT ${keys.join(', ')}, count(*) AS _dq_n, count(*) > 1 AND NOT (${isNull}) AS _dq_dup
                  FROM ${relationSql} GROUP BY ${keys.join(', ')}))`;
    const [row] = await engine.all(sql);
    const evaluated = Number(row?.['n'] ?? 0);
    const failed = Number(row?.['failed'] ?? 0);
    const groups = Number(row?.['groups'] ?? 0);
    const raw = row?.['samples'];
    const samples = Array.isArray(raw) ? raw.map(String) : [];
    const detail = groups
      ? `${fmtCount(groups)} duplicated ${groups === 1 ? 'value' : 'values'}: ${sampleText(samples, groups)}`
      : '';
    return {
      evaluated,
      failed,
      samples,
      message: countedMessage(table, name, 'rows', evaluated, failed, check.mostly, detail, check.minRows ?? 0),
    };
  },
};
