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
 */
import type { CheckConfig, CheckType } from '../config/silver.js';
import { EMAIL_PATTERN } from '../core/email.js';
import { ConfigError } from '../core/errors.js';
import { durationMs } from '../core/time.js';
import { coarseKind, INSTANT_TYPES, splitType, typeMatches } from '../lake/duck-types.js';
import type { Engine, JsonRow } from '../lake/engine.js';
import { ident, lit } from '../lake/sql.js';
import { volumeAnomaly } from './anomaly.js';
import {
  type CheckLevel,
  type CheckResult,
  MAX_SAMPLES,
  type Severity,
  countedMessage,
  fmtCount,
  fmtPercent,
  percentOf,
  sampleText,
  verdict,
  withinMostly,
} from './report.js';

export type { CheckLevel } from './report.js';

/** A silver column the checks run over: its name and DuckDB type (as DESCRIBE prints it). */
export interface SilverColumn {
  name: string;
  type: string;
}

export interface CompiledRowCheck {
  /** Config name, or `<type>_<column(s)>` / `expression_<n>`; unique within the table (`_2`, `_3` on clashes). */
  name: string;
  type: CheckType;
  severity: Severity;
  mostly: number;
  /** Rows needed before `mostly` is judged (default 0). */
  minRows?: number | undefined;
  /** What `mostly` judges: every row since the last full build (table, the default) or this build's rows (batch). */
  scope?: 'table' | 'batch' | undefined;
  /** The table, as given to compileChecks (messages start with it). */
  table: string;
  /** Silver columns the check reads (for expression: the ones found in it). */
  columns: string[];
  /** SQL boolean over the row's columns: TRUE when the row FAILS; never NULL. */
  failSql: string;
  /** SQL VARCHAR: why the row failed, naming column and value, e.g. `views = -3 is below min 0`. Meant for failing rows only. */
  reasonSql: string;
  /** SQL of the offending value as VARCHAR (NULL for not_null; `col = value, …` for expression). */
  valueSql: string;
}

export interface CompiledTableCheck {
  name: string;
  type: CheckType;
  severity: Severity;
  mostly: number;
  minRows?: number | undefined;
  table: string;
  /** Resolved silver column names (unique, freshness); empty for the others. */
  columns: string[];
  config: CheckConfig;
}

export interface CompiledChecks {
  row: CompiledRowCheck[];
  table: CompiledTableCheck[];
}

const ROW_TYPES: ReadonlySet<CheckType> = new Set<CheckType>([
  'not_null',
  'accepted_values',
  'range',
  'format',
  'regex',
  'relationships',
  'expression',
]);

export function checkLevel(type: CheckType): CheckLevel {
  return ROW_TYPES.has(type) ? 'row' : 'table';
}

// ---------------------------------------------------------------------------------------------
// Column types

export { typeMatches };

// ---------------------------------------------------------------------------------------------
// Formats (RE2 syntax; whole value)

const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = `${OCTET}(?:\\.${OCTET}){3}`;
const H = '[0-9a-fA-F]{1,4}';
const IPV6 = [
  `(?:${H}:){7}${H}`,
  `(?:${H}:){1,7}:`,
  `(?:${H}:){1,6}:${H}`,
  `(?:${H}:){1,5}(?::${H}){1,2}`,
  `(?:${H}:){1,4}(?::${H}){1,3}`,
  `(?:${H}:){1,3}(?::${H}){1,4}`,
  `(?:${H}:){1,2}(?::${H}){1,5}`,
  `${H}:(?::${H}){1,6}`,
  `:(?:(?::${H}){1,7}|:)`,
  `[fF][eE]80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]+`,
  `::(?:[fF]{4}(?::0{1,4})?:)?${IPV4}`,
  `(?:${H}:){1,4}:${IPV4}`,
  `(?:${H}:){6}${IPV4}`,
].join('|');
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const URL = `(?i)https?://(?:[^\\s/?#@]+@)?(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::[0-9]{1,5})?(?:[/?#]\\S*)?`;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
/** 7 to 15 digits (E.164 allows 15), an optional leading +, spaces ( ) . - between them. */
const PHONE = '\\+?(?:[ ().-]*[0-9]){7,15}[ ().-]*';
const ISO_DATE = '[0-9]{4}-[0-9]{2}-[0-9]{2}';
const ISO_TIMESTAMP = `${ISO_DATE}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,9})?)?(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?`;

type FormatName = Extract<CheckConfig, { type: 'format' }>['format'];

const FORMAT_TEXT: Record<FormatName, string> = {
  email: 'an email address',
  url: 'an http(s) URL',
  uuid: 'a UUID',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  phone: 'a phone number (7 to 15 digits)',
  iso_date: 'an ISO date (YYYY-MM-DD)',
  iso_timestamp: 'an ISO timestamp (YYYY-MM-DDThh:mm[:ss[.f]][Z|±hh:mm])',
};

/** SQL boolean: the VARCHAR `v` (not null) has the format. */
function formatOkSql(format: FormatName, v: string): string {
  const re = (pattern: string) => `regexp_full_match(${v}, ${lit(pattern)})`;
  switch (format) {
    case 'email':
      return re(EMAIL_PATTERN);
    case 'url':
      return re(URL);
    case 'uuid':
      return re(UUID);
    case 'ipv4':
      return re(IPV4);
    case 'ipv6':
      return re(IPV6);
    case 'phone':
      return re(PHONE);
    case 'iso_date':
      return `(${re(ISO_DATE)} AND try_cast(${v} AS DATE) IS NOT NULL)`;
    case 'iso_timestamp':
      return `(${re(ISO_TIMESTAMP)} AND try_cast(left(${v}, 10) AS DATE) IS NOT NULL)`;
  }
}

// ---------------------------------------------------------------------------------------------
// Compilation

interface Where {
  table: string;
  check: string;
  columns: readonly SilverColumn[];
}

function configError(where: Where, text: string, details: Record<string, unknown> = {}): ConfigError {
  return new ConfigError(`${where.table}: check ${where.check}: ${text}`, {
    details: { table: where.table, check: where.check, ...details },
  });
}

function resolveColumn(where: Where, name: string): SilverColumn {
  const col =
    where.columns.find((c) => c.name === name) ??
    where.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  if (col) return col;
  const known = where.columns.map((c) => c.name);
  throw configError(where, `unknown column "${name}" (columns: ${known.length ? known.join(', ') : 'none'})`, {
    column: name,
    columns: known,
  });
}

function columnList(check: { column?: string | undefined; columns?: string[] | undefined }): string[] {
  const names = [...(check.column !== undefined ? [check.column] : []), ...(check.columns ?? [])];
  return [...new Set(names)];
}

function defaultName(check: CheckConfig, expressionNo: number): string {
  switch (check.type) {
    case 'not_null':
    case 'unique': {
      const cols = columnList(check);
      return cols.length ? `${check.type}_${cols.join('_')}` : check.type;
    }
    case 'expression':
      return `expression_${expressionNo}`;
    case 'row_count':
    case 'schema':
    case 'volume_anomaly':
      return check.type;
    default:
      return `${check.type}_${check.column}`;
  }
}

/** Check names in config order: explicit names as given (duplicates are an error), default names made unique with _2, _3. */
function checkNames(table: string, checks: readonly CheckConfig[]): string[] {
  const used = new Set<string>();
  for (const c of checks) {
    if (c.name === undefined) continue;
    if (used.has(c.name))
      throw new ConfigError(`${table}: two checks are named "${c.name}"; check names must be unique within a table`, {
        details: { table, check: c.name },
      });
    used.add(c.name);
  }
  let expressions = 0;
  return checks.map((c) => {
    if (c.type === 'expression') expressions++;
    if (c.name !== undefined) return c.name;
    const base = defaultName(c, expressions);
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}_${k}`;
    used.add(name);
    return name;
  });
}

const MAX_SHOWN = 80;

/** SQL VARCHAR of a column's value for reasons: text quoted, long values clipped, NULL as NULL. */
function shownSql(col: SilverColumn): string {
  const v = `CAST(${ident(col.name)} AS VARCHAR)`;
  const clipped = `CASE WHEN length(${v}) > ${MAX_SHOWN} THEN left(${v}, ${MAX_SHOWN - 1}) || '…' ELSE ${v} END`;
  const quoted = coarseKind(col.type) === 'text' ? `'''' || ${clipped} || ''''` : clipped;
  return `coalesce(${quoted}, 'NULL')`;
}

function valueSql(col: SilverColumn): string {
  return `CAST(${ident(col.name)} AS VARCHAR)`;
}

function neverNull(sql: string): string {
  return `coalesce(${sql}, false)`;
}

function shownValue(v: string | number | boolean): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** A range bound as SQL comparable with the column, and as text for messages. */
function boundSql(where: Where, col: SilverColumn, which: 'min' | 'max', bound: number | string): string {
  const kind = coarseKind(col.type);
  if (kind === 'numeric') {
    const n = typeof bound === 'number' ? bound : bound.trim() === '' ? NaN : Number(bound);
    if (!Number.isFinite(n))
      throw configError(
        where,
        `${which} ${JSON.stringify(bound)} is not a number, but column ${col.name} is ${col.type}`,
        { column: col.name },
      );
    return String(n);
  }
  if (typeof bound === 'number') {
    throw configError(
      where,
      `${which} ${bound} is a number, but column ${col.name} is ${col.type}; give the bound as text${kind === 'temporal' ? ' such as 2024-01-01' : ''}`,
      {
        column: col.name,
      },
    );
  }
  if (kind === 'temporal' && !/^\d{4}-\d{2}-\d{2}/.test(bound.trim()) && !/^\d{2}:\d{2}/.test(bound.trim())) {
    throw configError(
      where,
      `${which} "${bound}" is not an ISO date or timestamp (such as 2024-01-01 or 2024-01-01T00:00:00Z), as column ${col.name} (${col.type}) needs`,
      {
        column: col.name,
      },
    );
  }
  return `CAST(${lit(bound)} AS ${col.type})`;
}

function acceptedLiteral(where: Where, col: SilverColumn, v: string | number | boolean): string {
  const kind = coarseKind(col.type);
  if (kind === 'text') return lit(String(v));
  if (kind === 'numeric') {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n))
      throw configError(where, `value ${shownValue(v)} is not a number, but column ${col.name} is ${col.type}`, {
        column: col.name,
      });
    return String(n);
  }
  if (kind === 'boolean' && typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  return `TRY_CAST(${lit(String(v))} AS ${col.type})`;
}

/** Silver columns named in a SQL expression (outside string literals), in order of appearance. */
function referencedColumns(expression: string, columns: readonly SilverColumn[]): SilverColumn[] {
  const stripped = expression.replace(/'(?:[^']|'')*'/g, "''");
  const found = new Map<string, SilverColumn>();
  for (const m of stripped.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)) {
    const quoted = m[1];
    const col =
      quoted !== undefined
        ? columns.find((c) => c.name === quoted.replaceAll('""', '"'))
        : (columns.find((c) => c.name === m[2]) ??
          columns.find((c) => c.name.toLowerCase() === (m[2] ?? '').toLowerCase()));
    if (col && !found.has(col.name)) found.set(col.name, col);
  }
  return [...found.values()].slice(0, 8);
}

type RowParts = Pick<CompiledRowCheck, 'columns' | 'failSql' | 'reasonSql' | 'valueSql'>;

async function compileRow(
  where: Where,
  check: CheckConfig,
  refRelation: (table: string, field: string) => Promise<string>,
): Promise<RowParts> {
  switch (check.type) {
    case 'not_null': {
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
    }
    case 'accepted_values': {
      const col = resolveColumn(where, check.column);
      const c = ident(col.name);
      const values = check.values.map((v) => acceptedLiteral(where, col, v));
      const listed =
        check.values.slice(0, 10).map(shownValue).join(', ') +
        (check.values.length > 10 ? `, … (${check.values.length} values)` : '');
      return {
        columns: [col.name],
        failSql: neverNull(`${c} IS NOT NULL AND NOT coalesce(${c} IN (${values.join(', ')}), false)`),
        reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not one of ${listed}`)})`,
        valueSql: valueSql(col),
      };
    }
    case 'range': {
      const col = resolveColumn(where, check.column);
      if (check.min === undefined && check.max === undefined)
        throw configError(where, 'set min, max or both', { column: col.name });
      const c = ident(col.name);
      const ex = check.exclusive;
      const low =
        check.min === undefined ? undefined : `${c} ${ex ? '<=' : '<'} ${boundSql(where, col, 'min', check.min)}`;
      const high =
        check.max === undefined ? undefined : `${c} ${ex ? '>=' : '>'} ${boundSql(where, col, 'max', check.max)}`;
      const lowText = ` is ${ex ? 'not above exclusive' : 'below'} min ${String(check.min)}`;
      const highText = ` is ${ex ? 'not below exclusive' : 'above'} max ${String(check.max)}`;
      const prefix = `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, `;
      let reasonSql: string;
      if (low && high) reasonSql = `${prefix}CASE WHEN ${low} THEN ${lit(lowText)} ELSE ${lit(highText)} END)`;
      else reasonSql = `${prefix}${lit(low ? lowText : highText)})`;
      return {
        columns: [col.name],
        failSql: neverNull([low, high].filter((x) => x !== undefined).join(' OR ')),
        reasonSql,
        valueSql: valueSql(col),
      };
    }
    case 'format': {
      const col = resolveColumn(where, check.column);
      const v = coarseKind(col.type) === 'text' ? ident(col.name) : `CAST(${ident(col.name)} AS VARCHAR)`;
      return {
        columns: [col.name],
        failSql: neverNull(`${ident(col.name)} IS NOT NULL AND NOT coalesce(${formatOkSql(check.format, v)}, false)`),
        reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not ${FORMAT_TEXT[check.format]}`)})`,
        valueSql: valueSql(col),
      };
    }
    case 'regex': {
      const col = resolveColumn(where, check.column);
      const v = coarseKind(col.type) === 'text' ? ident(col.name) : `CAST(${ident(col.name)} AS VARCHAR)`;
      return {
        columns: [col.name],
        failSql: neverNull(
          `${ident(col.name)} IS NOT NULL AND NOT coalesce(regexp_full_match(${v}, ${lit(check.pattern)}), false)`,
        ),
        reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` does not match ${check.pattern}`)})`,
        valueSql: valueSql(col),
      };
    }
    case 'relationships': {
      const col = resolveColumn(where, check.column);
      const c = ident(col.name);
      const ref = await refRelation(check.to, check.field);
      // IN (subquery) is planned as a MARK hash join (the referenced side is the build side). The
      // referenced values are cast to the column type (a no-op when the types agree), so a VARCHAR
      // key can reference an integer one and vice versa instead of failing to bind.
      const refValues = `SELECT TRY_CAST(${ident(check.field)} AS ${col.type}) FROM ${ref}`;
      return {
        columns: [col.name],
        failSql: neverNull(`${c} IS NOT NULL AND NOT coalesce(${c} IN (${refValues}), false)`),
        reasonSql: `concat(${lit(`${col.name} = `)}, ${shownSql(col)}, ${lit(` is not in ${check.to}.${check.field}`)})`,
        valueSql: valueSql(col),
      };
    }
    case 'expression': {
      const cols = referencedColumns(check.expression, where.columns);
      const values = cols.length
        ? `concat_ws(', ', ${cols.map((c) => `${lit(`${c.name} = `)} || ${shownSql(c)}`).join(', ')})`
        : undefined;
      return {
        columns: cols.map((c) => c.name),
        failSql: neverNull(`NOT (${check.expression})`),
        reasonSql: values
          ? `concat(${lit(`not met: ${check.expression} (`)}, ${values}, ')')`
          : lit(`not met: ${check.expression}`),
        valueSql: values ?? 'CAST(NULL AS VARCHAR)',
      };
    }
    default:
      throw new Error(`internal: ${check.type} is not a row check`);
  }
}

function compileTable(where: Where, check: CheckConfig): string[] {
  switch (check.type) {
    case 'unique': {
      const names = columnList(check);
      if (!names.length) throw configError(where, 'set column or columns');
      return names.map((n) => resolveColumn(where, n).name);
    }
    case 'freshness': {
      const col = resolveColumn(where, check.column);
      if (!INSTANT_TYPES.has(splitType(col.type).base)) {
        throw configError(
          where,
          `column ${col.name} is ${col.type}; freshness needs a DATE, TIMESTAMP or TIMESTAMPTZ column`,
          { column: col.name, columnType: col.type },
        );
      }
      durationMs(check.max_age, `${where.table}: check ${where.check}: max_age`);
      return [col.name];
    }
    case 'row_count':
      if (check.min === undefined && check.max === undefined) throw configError(where, 'set min, max or both');
      if (check.min !== undefined && check.max !== undefined && check.min > check.max)
        throw configError(where, `min ${check.min} is greater than max ${check.max}`);
      return [];
    case 'volume_anomaly':
      if (check.window < check.min_history) {
        throw configError(
          where,
          `window ${check.window} is smaller than min_history ${check.min_history}, so the check could never judge`,
        );
      }
      return [];
    case 'schema':
      return [];
    default:
      throw new Error(`internal: ${check.type} is not a table check`);
  }
}

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
    if (checkLevel(check.type) === 'row')
      out.row.push({ ...common, scope: check.scope ?? 'table', ...(await compileRow(where, check, refRelation)) });
    else if (check.scope !== undefined)
      throw configError(where, `scope applies to row checks only; ${check.type} always judges the whole table`);
    else out.table.push({ ...common, columns: compileTable(where, check), config: check });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Row checks: one aggregate query

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

// ---------------------------------------------------------------------------------------------
// Table checks

export interface TableCheckContext {
  /** The clock (tests pass a fixed one). */
  now: Date;
  /** Rows this run added. */
  newRows: number;
  /** New-row counts of previous runs, oldest first. */
  history: readonly number[];
  /** The silver table's columns (name, DuckDB type). */
  columns: readonly SilverColumn[];
}

type TableOutcome = Pick<CheckResult, 'evaluated' | 'failed' | 'message' | 'samples'>;

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

async function evaluateTable(
  engine: Engine,
  relationSql: string,
  check: CompiledTableCheck,
  ctx: TableCheckContext,
  rowCount: () => Promise<number>,
): Promise<TableOutcome> {
  const { table, name } = check;
  const cfg = check.config;
  const outcomeWord = (failed: number) => (verdict(1, failed, check.mostly).passed ? 'passed' : 'failed');
  switch (cfg.type) {
    case 'unique': {
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
    }
    case 'row_count': {
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
        message: `${table}: ${name} ${outcomeWord(failed)}: ${fmtCount(n)} rows, expected ${expected}`,
      };
    }
    case 'freshness': {
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
        message: `${table}: ${name} ${outcomeWord(failed)}: newest ${column} = ${String(newest)} is ${ageText} at ${ctx.now.toISOString()} (max_age ${cfg.max_age})`,
      };
    }
    case 'schema': {
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
    }
    case 'volume_anomaly': {
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
        message: `${table}: ${name} ${outcomeWord(failed)}: ${v.message}`,
      };
    }
    default:
      throw new Error(`internal: ${cfg.type} is not a table check`);
  }
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
  let count: Promise<number> | undefined;
  const rowCount = () =>
    (count ??= engine.all(`SELECT count(*) AS n FROM ${relationSql}`).then((r) => Number(r[0]?.['n'] ?? 0)));
  const results: CheckResult[] = [];
  for (const check of checks) {
    const o = await evaluateTable(engine, relationSql, check, ctx, rowCount);
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
