import { durationMs } from '../../core/time.js';
import { ident } from '../../lake/sql.js';
import { INSTANT_TYPES as INSTANT, splitType } from '../../lake/duck-types.js';
import { columnCheckName, configError, outcomeWord, resolveColumn } from './shared.js';
import type { TableCheckKind } from './types.js';

/** `3d 4h`, `2h 5m`, `40s`: the two largest units of a duration. */
function humanAge(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  let rest = Math.abs(Math.round(ms));
  const parts: string[] = [];
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (parts.length || n > 0) parts.push(n > 0 ? `${n}${u}` : '');
    if (parts.length === 2) break;
  }
  return parts.filter(Boolean).join(' ') || `${Math.abs(Math.round(ms))}ms`;
}

/** The `freshness` check (table level): its default name, its compilation (config validated against the table) and its evaluation over the written table. */
export const freshnessCheck: TableCheckKind<'freshness'> = {
  type: 'freshness',
  level: 'table',
  defaultName: (check) => columnCheckName(check),
  compile(where, check) {
    const col = resolveColumn(where, check.column);
    if (!INSTANT.has(splitType(col.type).base)) {
      throw configError(
        where,
        `column ${col.name} is ${col.type}; freshness needs a DATE, TIMESTAMP or TIMESTAMPTZ column`,
        { column: col.name, columnType: col.type },
      );
    }
    durationMs(check.max_age, `${where.table}: check ${where.check}: max_age`);
    return [col.name];
  },
  async evaluate(engine, relationSql, check, cfg, ctx, _rowCount) {
    const { table, name } = check;
    const column = check.columns[0] as string;
    const type = ctx.columns.find((c) => c.name === column)?.type ?? '';
    const c = ident(column);
    const instant = /TIMESTAMPTZ|WITH TIME ZONE|^DATE$/i.test(type.trim())
      ? `max(${c})`
      : `CAST(max(${c}) AS TIMESTAMP)`;
    const [row] = await engine.all(
      `SELECT CAST(max(${c}) AS VARCHAR) AS newest, epoch(${instant}) AS e FROM ${relationSql}`,
    );
    const maxAge = durationMs(cfg.max_age, `${table}: check ${name}: max_age`);
    const newest = row?.['newest'];
    const epoch = row?.['e'];
    if (newest === null || newest === undefined || epoch === null || epoch === undefined) {
      return {
        evaluated: 1,
        failed: 1,
        samples: [],
        message: `${table}: ${name} failed: ${column} has no values (max_age ${cfg.max_age})`,
      };
    }
    const age = ctx.now.getTime() - Number(epoch) * 1000;
    const failed = age > maxAge ? 1 : 0;
    const ageText = age < 0 ? `in the future (by ${humanAge(age)})` : `${humanAge(age)} old`;
    return {
      evaluated: 1,
      failed,
      samples: [String(newest)],
      message: `${table}: ${name} ${outcomeWord(check, failed)}: newest ${column} = ${String(newest)} is ${ageText} at ${ctx.now.toISOString()} (max_age ${cfg.max_age})`,
    };
  },
};
