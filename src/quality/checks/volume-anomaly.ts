import { volumeAnomaly } from '../anomaly.js';
import { fmtCount } from '../report.js';
import { configError, outcomeWord } from './shared.js';
import type { TableCheckKind } from './types.js';

/** The `volume_anomaly` check (table level): its default name, its compilation (config validated against the table) and its evaluation over the written table. */
export const volumeAnomalyCheck: TableCheckKind<'volume_anomaly'> = {
  type: 'volume_anomaly',
  level: 'table',
  defaultName: (check) => check.type,
  compile(where, check) {
    if (check.window < check.min_history) {
      throw configError(
        where,
        `window ${check.window} is smaller than min_history ${check.min_history}, so the check could never judge`,
      );
    }
    return [];
  },
  async evaluate(_engine, _relationSql, check, cfg, ctx, _rowCount) {
    const { table, name } = check;
    const v = volumeAnomaly(ctx.newRows, ctx.history, {
      max_z: cfg.max_z,
      min_history: cfg.min_history,
      window: cfg.window,
    });
    const failed = v.passed ? 0 : 1;
    return {
      evaluated: v.judged ? 1 : 0,
      failed,
      samples: failed ? [`${fmtCount(ctx.newRows)} new rows`] : [],
      message: `${table}: ${name} ${outcomeWord(check, failed)}: ${v.message}`,
    };
  },
};
