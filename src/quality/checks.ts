/**
 * Data quality checks (`checks:` of a silver table): compiled to SQL and evaluated with DuckDB.
 *
 * Row-level checks (not_null, accepted_values, range, format, regex, relationships, expression)
 * become SQL booleans over a row's clear (unmasked, standardized) values — `failSql` is TRUE when
 * the row fails, never NULL — evaluated in the pass that produces the silver rows; one aggregate
 * query (`evaluateRowChecks`) gives per-check failure counts and samples. Table-level checks
 * (unique, row_count, freshness, schema, volume_anomaly) run afterwards against the written
 * silver output (`evaluateTableChecks`).
 *
 * NULL semantics: every row check but not_null lets nulls pass (add not_null for them). An
 * `expression` check fails only when the condition is FALSE — NULL passes — as with SQL CHECK
 * constraints (and dbt's expression_is_true): `likes <= views` with views NULL is not judged.
 *
 * Each check kind is one module in `checks/` (its default name, compilation and, for table
 * checks, evaluation), listed in `checks/registry.ts`; this module compiles a table's checks.
 */
import type { CheckConfig } from '../config/silver.js';
import type { Engine } from '../lake/engine.js';
import { checkKind, checkNames } from './checks/registry.js';
import { configError } from './checks/shared.js';
import type { CompiledChecks, CompiledTableCheck, SilverColumn, TableCheckContext, Where } from './checks/types.js';
import { type CheckResult, verdict } from './report.js';

export { typeMatches } from '../lake/duck-types.js';
export { CHECK_KINDS, checkLevel } from './checks/registry.js';
export {
  type CheckTotals,
  anyFailureSql,
  evaluateRowChecks,
  failuresSql,
  judgeOverTable,
  rowCheckResults,
  rowChecksSql,
  validateRowChecks,
} from './checks/row-evaluation.js';
export type {
  CompiledChecks,
  CompiledRowCheck,
  CompiledTableCheck,
  SilverColumn,
  TableCheckContext,
} from './checks/types.js';
export type { CheckLevel } from './report.js';

/**
 * Compiles the checks of silver table `table` (named in messages, e.g. `silver.posts`) over its
 * `columns`. Unknown columns, bounds that do not fit the column type and similar mistakes are
 * ConfigErrors naming table, check and column. `refRelation(table, field)` gives a relation
 * usable after FROM (e.g. a read_parquet([...]) scan) of a table referenced by a relationships
 * check.
 */
export async function compileChecks(
  table: string,
  checks: readonly CheckConfig[],
  columns: readonly SilverColumn[],
  refRelation: (table: string, field: string) => Promise<string>,
): Promise<CompiledChecks> {
  const names = checkNames(table, checks);
  const out: CompiledChecks = { row: [], table: [] };
  for (const [i, check] of checks.entries()) {
    const name = names[i] as string;
    const where: Where = { table, check: name, columns };
    const common = {
      name,
      type: check.type,
      severity: check.severity ?? 'error',
      mostly: check.mostly ?? 1,
      minRows: check.min_rows ?? 0,
      table,
    };
    const kind = checkKind(check);
    if (kind.level === 'row')
      out.row.push({ ...common, scope: check.scope ?? 'table', ...(await kind.compile(where, check, refRelation)) });
    else if (check.scope !== undefined)
      throw configError(where, `scope applies to row checks only; ${check.type} always judges the whole table`);
    else out.table.push({ ...common, columns: kind.compile(where, check), config: check });
  }
  return out;
}

/**
 * Evaluates the table-level checks over the silver output `relationSql` (anything usable after
 * FROM). unique: evaluated = rows, failed = rows in duplicated groups (keys with a NULL never
 * count as duplicates, as in SQL UNIQUE), samples = duplicated values; row_count, freshness,
 * volume_anomaly: evaluated 1 (volume_anomaly: 0 while there is not enough history), failed 0/1;
 * schema: evaluated = columns compared, failed = problems. Freshness treats TIMESTAMP (naive) as
 * UTC and a DATE as midnight UTC.
 */
export async function evaluateTableChecks(
  engine: Engine,
  relationSql: string,
  checks: readonly CompiledTableCheck[],
  ctx: TableCheckContext,
): Promise<CheckResult[]> {
  let count: Promise<number> | undefined = ctx.rows === undefined ? undefined : Promise.resolve(ctx.rows);
  const rowCount = () =>
    (count ??= engine.all(`SELECT count(*) AS n FROM ${relationSql}`).then((r) => Number(r[0]?.['n'] ?? 0)));
  const results: CheckResult[] = [];
  for (const check of checks) {
    const kind = checkKind(check.config);
    if (kind.level !== 'table') throw new Error(`internal: ${check.config.type} is not a table check`);
    const o = await kind.evaluate(engine, relationSql, check, check.config, ctx, rowCount);
    results.push({
      name: check.name,
      type: check.type,
      level: 'table',
      severity: check.severity,
      mostly: check.mostly,
      evaluated: o.evaluated,
      failed: o.failed,
      ...verdict(o.evaluated, o.failed, check.mostly, check.minRows ?? 0),
      ...(check.minRows ? { minRows: check.minRows } : {}),
      message: o.message,
      samples: o.samples,
    });
  }
  return results;
}
