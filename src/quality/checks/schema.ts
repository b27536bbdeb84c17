import { MAX_SAMPLES, countedMessage } from '../report.js';
import { typeMatches } from '../../lake/duck-types.js';
import type { TableCheckKind } from './types.js';

/** The `schema` check (table level): its default name, its compilation (config validated against the table) and its evaluation over the written table. */
export const schemaCheck: TableCheckKind<'schema'> = {
  type: 'schema',
  level: 'table',
  defaultName: (check) => check.type,
  compile() {
    return [];
  },
  async evaluate(_engine, _relationSql, check, cfg, ctx, _rowCount) {
    const { table, name } = check;
    const problems: string[] = [];
    let evaluated = 0;
    const find = (n: string) =>
      ctx.columns.find((c) => c.name === n) ?? ctx.columns.find((c) => c.name.toLowerCase() === n.toLowerCase());
    const required = new Set<string>();
    for (const [colName, expected] of Object.entries(cfg.columns)) {
      evaluated++;
      const col = find(colName);
      if (!col) {
        problems.push(`missing column ${colName} (${expected})`);
        continue;
      }
      required.add(col.name);
      if (!typeMatches(expected, col.type)) problems.push(`${col.name} is ${col.type}, expected ${expected}`);
    }
    if (cfg.exact) {
      for (const col of ctx.columns) {
        if (required.has(col.name) || col.name.startsWith('_dip_')) continue;
        evaluated++;
        problems.push(`unexpected column ${col.name} (${col.type})`);
      }
    }
    const failed = problems.length;
    return {
      evaluated,
      failed,
      samples: problems.slice(0, MAX_SAMPLES),
      message: failed
        ? countedMessage(table, name, 'columns', evaluated, failed, check.mostly, problems.join('; '))
        : `${table}: ${name} passed: ${evaluated} ${evaluated === 1 ? 'column' : 'columns'} as expected${cfg.exact ? ' and no others' : ''}`,
    };
  },
};
