import { ConfigError } from '../../core/errors.js';
import type { Engine, JsonRow } from '../../lake/engine.js';
import { lit } from '../../lake/sql.js';
import {
  type CheckResult,
  MAX_SAMPLES,
  countedMessage,
  fmtCount,
  fmtPercent,
  percentOf,
  sampleText,
  verdict,
  withinMostly,
} from '../report.js';
import type { CompiledRowCheck } from './types.js';

/** Row checks of every kind, evaluated together: one aggregate query, judged per check. */
/**
 * The one-scan aggregate over `relationSql` (anything usable after FROM): row count `n`, and per
 * check i `f<i>` (failing rows) and `s<i>` (up to 5 most frequent failure reasons). Each failSql
 * is computed once per row; reasons only for failing rows (CASE is evaluated lazily, while an
 * aggregate FILTER would compute them for every row).
 */
export function rowChecksSql(relationSql: string, checks: readonly CompiledRowCheck[]): string {
  const flags = checks.map((c, i) => `${c.failSql} AS _dq_f${i}`);
  const aggs = checks.map(
    (c, i) =>
      `count_if(_dq_f${i}) AS f${i}, approx_top_k(CASE WHEN _dq_f${i} THEN coalesce(${c.reasonSql}, ${lit(`${c.name} failed`)}) END, ${MAX_SAMPLES}) AS s${i}`,
  );
  return `SELECT count(*) AS n${aggs.map((a) => `, ${a}`).join('')} FROM (SELECT *${flags.map((f) => `, ${f}`).join('')} FROM ${relationSql}) AS _dq_rows`;
}

/** CheckResults from the row of `rowChecksSql`. */
export function rowCheckResults(row: JsonRow, checks: readonly CompiledRowCheck[]): CheckResult[] {
  const evaluated = Number(row['n'] ?? 0);
  return checks.map((c, i) => {
    const failed = Number(row[`f${i}`] ?? 0);
    const raw = row[`s${i}`];
    const samples = Array.isArray(raw)
      ? raw.filter((s): s is string => typeof s === 'string').slice(0, MAX_SAMPLES)
      : [];
    return {
      name: c.name,
      type: c.type,
      level: 'row' as const,
      severity: c.severity,
      mostly: c.mostly,
      evaluated,
      failed,
      ...verdict(evaluated, failed, c.mostly, c.minRows ?? 0),
      message: countedMessage(
        c.table,
        c.name,
        'rows',
        evaluated,
        failed,
        c.mostly,
        sampleText(samples, failed),
        c.minRows ?? 0,
      ),
      samples,
      ...(c.minRows ? { minRows: c.minRows } : {}),
      ...(c.scope ? { scope: c.scope } : {}),
    };
  });
}

/** Rows evaluated and failed per row check since the last full build (kept in the silver table's state). */
export type CheckTotals = Record<string, { evaluated: number; failed: number }>;

/**
 * Judges `scope: table` row checks over every row evaluated since the last full build: the
 * totals kept before this build plus this build's counts, so a table built incrementally reaches
 * the verdict a full build of the same rows reaches. `results` are this build's results of
 * `checks` (same order). On a replay (`replayedFailures`: how many of the replayed rows each
 * error check had failed), the rows were counted already: only the failures change. Returns the
 * results (re-judged for scope table) and the totals to keep.
 */
export function judgeOverTable(
  results: readonly CheckResult[],
  checks: readonly CompiledRowCheck[],
  before: CheckTotals,
  replayedFailures?: Record<string, number>,
): { results: CheckResult[]; totals: CheckTotals } {
  const totals: CheckTotals = {};
  const out = results.map((r, i) => {
    const c = checks[i];
    if (!c) return r;
    const prev = Object.hasOwn(before, c.name)
      ? (before[c.name] as { evaluated: number; failed: number })
      : { evaluated: 0, failed: 0 };
    const total = replayedFailures
      ? c.severity === 'error'
        ? {
            evaluated: Math.max(prev.evaluated, r.evaluated),
            failed: Math.max(0, prev.failed - (replayedFailures[c.name] ?? 0)) + r.failed,
          }
        : { evaluated: Math.max(prev.evaluated, r.evaluated), failed: Math.max(prev.failed, r.failed) }
      : { evaluated: prev.evaluated + r.evaluated, failed: prev.failed + r.failed };
    totals[c.name] = total;
    if ((c.scope ?? 'table') !== 'table') return r;
    const minRows = c.minRows ?? 0;
    const passed = withinMostly(total.evaluated, total.failed, c.mostly, minRows);
    const unjudged = total.evaluated < minRows && !withinMostly(total.evaluated, total.failed, c.mostly);
    const share = `${fmtPercent(percentOf(total.evaluated, total.failed))}, mostly ${c.mostly}${unjudged ? `; not judged below min_rows ${fmtCount(minRows)}` : ''}`;
    const counts = `${fmtCount(r.failed)} of ${fmtCount(r.evaluated)} rows of this build, ${fmtCount(total.failed)} of ${fmtCount(total.evaluated)} since the last full build (${share})`;
    const detail = r.failed ? `: ${sampleText(r.samples, r.failed)}` : '';
    const message =
      total.failed === 0 && r.failed === 0
        ? `${c.table}: ${c.name} passed: 0 of ${fmtCount(r.evaluated)} rows failed (${fmtCount(total.evaluated)} since the last full build)`
        : passed
          ? `${c.table}: ${c.name} passed: failed ${counts}${detail}`
          : `${c.table}: ${c.name} failed ${counts}${detail}`;
    return { ...r, scope: 'table' as const, total, passed, message };
  });
  return { results: out, totals };
}

/** Evaluates the row checks over `relationSql` (anything usable after FROM) in one aggregate query. */
export async function evaluateRowChecks(
  engine: Engine,
  relationSql: string,
  checks: readonly CompiledRowCheck[],
): Promise<CheckResult[]> {
  if (!checks.length) return [];
  const [row] = await engine.all(rowChecksSql(relationSql, checks));
  return rowCheckResults(row ?? {}, checks);
}

/**
 * Binds every row check against `relationSql` without reading data (LIMIT 0), so a typo in an
 * expression, an invalid regex or a referenced table that does not bind becomes a ConfigError
 * naming table and check — instead of a bare DuckDB error from the silver query.
 */
export async function validateRowChecks(
  engine: Engine,
  relationSql: string,
  checks: readonly CompiledRowCheck[],
): Promise<void> {
  for (const c of checks) {
    try {
      await engine.all(`SELECT ${c.failSql} AS f, ${c.reasonSql} AS r, ${c.valueSql} AS v FROM ${relationSql} LIMIT 0`);
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      throw new ConfigError(
        `${c.table}: check ${c.name} (${c.type}) is not valid SQL over the table: ${text.split('\n')[0] ?? text}`,
        {
          cause: err,
          details: { table: c.table, check: c.name },
        },
      );
    }
  }
}

/** SQL boolean: the row fails at least one of `checks` (e.g. the error-severity ones, for quarantine). */
export function anyFailureSql(checks: readonly CompiledRowCheck[]): string {
  return checks.length ? `(${checks.map((c) => c.failSql).join(' OR ')})` : 'false';
}

/** SQL `STRUCT("check" VARCHAR, reason VARCHAR)[]`: the checks the row fails, with reasons (empty list when none). */
export function failuresSql(checks: readonly CompiledRowCheck[]): string {
  if (!checks.length) return `CAST([] AS STRUCT("check" VARCHAR, reason VARCHAR)[])`;
  const items = checks.map(
    (c) =>
      `CASE WHEN ${c.failSql} THEN {'check': ${lit(c.name)}, 'reason': coalesce(${c.reasonSql}, ${lit(`${c.name} failed`)})} END`,
  );
  return `list_filter([${items.join(', ')}], x -> x IS NOT NULL)`;
}
