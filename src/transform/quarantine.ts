/**
 * Silver quarantine: rows a silver build refused (failed error-severity checks, values that
 * do not convert, schema contract discards), kept as the input row plus why, in
 * `quarantine.silver__<table>`, until `dip quarantine replay` lands them once fixed.
 */
import type { NewFile } from '../catalog/types.js';
import { anyFailureSql, evaluateRowChecks, type CompiledRowCheck } from '../quality/checks.js';
import type { CheckResult } from '../quality/report.js';
import type { Lake } from '../lake/lake.js';
import { lit } from '../lake/sql.js';
import { writeLakeFile } from '../lake/write-file.js';
import { POSITION_COLUMNS } from './plan.js';
import type { BuildTarget } from './write.js';

export const QUARANTINE_META = {
  check: '_dip_check',
  reason: '_dip_reason',
  at: '_dip_quarantined_at',
  runId: '_dip_quarantine_run_id',
} as const;

export function quarantineTableName(silverTable: string): string {
  return `quarantine.silver__${silverTable}`;
}

const FLAGS = '_dip_flags';
export const REJECTS = '_dip_rejects';

/**
 * One pass over the clear rows computes every row check's flag (and reason, only where it
 * fails) into a temp table keyed by input position; the report and the rejected rows both come
 * from it, so the checks (regexes, lookups) run once per row.
 */
export async function flagRows(lake: Lake, clear: string, checks: readonly CompiledRowCheck[]): Promise<{ results: CheckResult[]; rows: number }> {
  // Flags first, in an inner SELECT: a check with a subquery (relationships) cannot be referred to by alias.
  const flags = checks.map((c, i) => `coalesce(${c.failSql}, false) AS _dq_f${i}`);
  const reasons = checks.map((c, i) => `CASE WHEN _dq_f${i} THEN ${c.reasonSql} END AS _dq_r${i}`);
  // Positions only for rows that fail something: a path per row of millions would not fit in memory.
  const stored = checks.map((c, i) => ({ ...c, failSql: `_dq_f${i}`, reasonSql: `_dq_r${i}` }));
  const anyFlag = anyFailureSql(stored);
  const pos = [`CASE WHEN ${anyFlag} THEN ${POSITION_COLUMNS.file} END AS f`, `CASE WHEN ${anyFlag} THEN ${POSITION_COLUMNS.row} END AS r`];
  const inner = `SELECT *${flags.map((f) => `, ${f}`).join('')} FROM ${clear}`;
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE ${FLAGS} AS SELECT ${[...checks.map((_, i) => `_dq_f${i}`), ...reasons, ...pos].join(', ')} FROM (${inner}) AS _dq`);
  try {
    const results = checks.length ? await evaluateRowChecks(lake.engine, FLAGS, stored) : [];
    const rows = results[0]?.evaluated ?? Number((await lake.engine.all(`SELECT count(*) AS n FROM ${FLAGS}`))[0]?.['n'] ?? 0);
    const errors = checks.map((c, i) => ({ c, i })).filter(({ c }) => c.severity === 'error');
    const any = anyFailureSql(stored.filter((c) => c.severity === 'error'));
    const names = errors.map(({ c, i }) => `CASE WHEN _dq_f${i} THEN ${lit(c.name)} END`).join(', ') || 'NULL';
    const why = errors.map(({ c, i }) => `CASE WHEN _dq_f${i} THEN ${lit(`${c.name}: `)} || coalesce(_dq_r${i}, 'failed') END`).join(', ') || 'NULL';
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE ${REJECTS} AS SELECT f, r, concat_ws(', ', ${names}) AS checks, concat_ws('; ', ${why}) AS reasons FROM ${FLAGS} WHERE ${any}`,
    );
    return { results, rows };
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${FLAGS}`);
  }
}

/** Rows refused by error checks, as the input row (bronze columns) plus which checks failed and why. */
export async function writeQuarantine(ctx: BuildTarget, name: string, inputRelation: string, at: Date): Promise<NewFile> {
  const { lake } = ctx;
  const sql = `SELECT i.*, q.checks AS ${QUARANTINE_META.check}, q.reasons AS ${QUARANTINE_META.reason},
      ${lit(at.toISOString())}::TIMESTAMPTZ AS ${QUARANTINE_META.at}, ${lit(ctx.runId)} AS ${QUARANTINE_META.runId}
    FROM ${inputRelation} AS i JOIN ${REJECTS} AS q ON i.${POSITION_COLUMNS.file} = q.f AND i.${POSITION_COLUMNS.row} = q.r`;
  return writeLakeFile(lake, sql, { zone: 'quarantine', source: ctx.pipeline, table: `silver__${name}` }, { run_id: ctx.runId });
}

