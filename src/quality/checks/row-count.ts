import { fmtCount } from '../report.js';
import { configError, outcomeWord } from './shared.js';
import type { TableCheckKind } from './types.js';

/** The `row_count` check (table level): its default name, its compilation (config validated against the table) and its evaluation over the written table. */
export const rowCountCheck: TableCheckKind<'row_count'> = {
  type: 'row_count',
  level: 'table',
  defaultName: (check) => check.type,
  compile(where, check) {
    if (check.min === undefined && check.max === undefined) throw configError(where, 'set min, max or both');
    if (check.min !== undefined && check.max !== undefined && check.min > check.max)
      throw configError(where, `min ${check.min} is greater than max ${check.max}`);
    return [];
  },
  async evaluate(_engine, _relationSql, check, cfg, _ctx, rowCount) {
    const { table, name } = check;
    const n = await rowCount();
    const low = cfg.min !== undefined && n < cfg.min;
    const high = cfg.max !== undefined && n > cfg.max;
    const expected =
      cfg.min !== undefined && cfg.max !== undefined
        ? `between ${fmtCount(cfg.min)} and ${fmtCount(cfg.max)}`
        : cfg.min !== undefined
          ? `at least ${fmtCount(cfg.min)}`
          : `at most ${fmtCount(cfg.max ?? 0)}`;
    const failed = low || high ? 1 : 0;
    return {
      evaluated: 1,
      failed,
      samples: failed ? [`${fmtCount(n)} rows`] : [],
      message: `${table}: ${name} ${outcomeWord(check, failed)}: ${fmtCount(n)} rows, expected ${expected}`,
    };
  },
};
