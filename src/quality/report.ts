/**
 * Data quality results: one `CheckResult` per check, a `QualityReport` per silver table and run,
 * and the plain-text table `dip quality <table>` prints.
 */
import type { CheckType } from '../config/silver.js';

export type CheckLevel = 'row' | 'table';
export type Severity = 'warn' | 'error';

export interface CheckResult {
  name: string;
  type: CheckType;
  level: CheckLevel;
  severity: Severity;
  mostly: number;
  /** Rows (row checks, unique), columns (schema) or 1 (row_count, freshness, volume_anomaly) judged. */
  evaluated: number;
  failed: number;
  /** failed / evaluated × 100; 0 when nothing was evaluated. */
  percent: number;
  /** (evaluated − failed) / evaluated ≥ mostly; true when nothing was evaluated. */
  passed: boolean;
  message: string;
  /** Up to 5 offending values or reasons. */
  samples: string[];
  /** Rows needed before `mostly` is judged (when set and not 0). */
  minRows?: number | undefined;
  /** Row checks: `table` when the verdict was reached over every row since the last full build. */
  scope?: 'table' | 'batch' | undefined;
  /** scope table: the rows evaluated and failed since the last full build, this build included (what `passed` judges). */
  total?: { evaluated: number; failed: number } | undefined;
}

export type QualityStatus = 'passed' | 'warned' | 'failed';

export interface QualityReport {
  table: string;
  runId: string;
  /** ISO timestamp. */
  at: string;
  rows: number;
  checks: CheckResult[];
  /** failed: an error-severity check did not pass; warned: only warn-severity ones did not. */
  status: QualityStatus;
}

export const MAX_SAMPLES = 5;

/**
 * Whether `failed` of `evaluated` is within `mostly` (exact for ratios like 0.99 of 200). Fewer
 * rows than `minRows` are not judged (within).
 */
export function withinMostly(evaluated: number, failed: number, mostly: number, minRows = 0): boolean {
  if (evaluated <= 0 || evaluated < minRows) return true;
  return evaluated - failed >= Math.ceil(mostly * evaluated - 1e-9);
}

export function percentOf(evaluated: number, failed: number): number {
  return evaluated > 0 ? (failed / evaluated) * 100 : 0;
}

export function summarize(table: string, runId: string, at: Date, rows: number, checks: CheckResult[]): QualityReport {
  const failing = checks.filter((c) => !c.passed);
  const status: QualityStatus = failing.some((c) => c.severity === 'error')
    ? 'failed'
    : failing.length
      ? 'warned'
      : 'passed';
  return { table, runId, at: at.toISOString(), rows, checks, status };
}

/** `1,234` */
export function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** `0.30%` (two decimals; `<0.01%` for tiny non-zero shares). */
export function fmtPercent(p: number): string {
  if (p > 0 && p < 0.005) return '<0.01%';
  return `${p.toFixed(2)}%`;
}

/** Samples for a message: the first three, `…` when there are more failures than shown. */
export function sampleText(samples: readonly string[], failed: number): string {
  const shown = samples.slice(0, 3);
  return shown.join('; ') + (failed > shown.length ? '; …' : '');
}

/**
 * The message of a check counted in units (rows, columns): e.g.
 * `silver.posts: range_views failed 3 of 1,000 rows (0.30%, mostly 1): views = -3 is below min 0; …`.
 */
export function countedMessage(
  table: string,
  name: string,
  unit: string,
  evaluated: number,
  failed: number,
  mostly: number,
  detail: string,
  minRows = 0,
  over = '',
): string {
  if (evaluated === 0) return `${table}: ${name} passed: no ${unit} to check`;
  if (failed === 0) return `${table}: ${name} passed: 0 of ${fmtCount(evaluated)} ${unit}${over} failed`;
  const unjudged = evaluated < minRows && !withinMostly(evaluated, failed, mostly);
  const share = `${fmtPercent(percentOf(evaluated, failed))}, mostly ${mostly}${unjudged ? `; not judged below min_rows ${fmtCount(minRows)}` : ''}`;
  const tail = detail ? `: ${detail}` : '';
  unit = `${unit}${over}`;
  return withinMostly(evaluated, failed, mostly, minRows)
    ? `${table}: ${name} passed: ${fmtCount(failed)} of ${fmtCount(evaluated)} ${unit} failed (${share})${tail}`
    : `${table}: ${name} failed ${fmtCount(failed)} of ${fmtCount(evaluated)} ${unit} (${share})${tail}`;
}

/** The CheckResult fields derived from the counts. */
export function verdict(
  evaluated: number,
  failed: number,
  mostly: number,
  minRows = 0,
): { percent: number; passed: boolean } {
  return { percent: percentOf(evaluated, failed), passed: withinMostly(evaluated, failed, mostly, minRows) };
}

function resultWord(c: CheckResult): string {
  if (c.passed) return c.failed > 0 ? 'pass*' : 'pass';
  return c.severity === 'error' ? 'FAIL' : 'WARN';
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

/**
 * The report as a plain-text table (check, type, severity, evaluated, failed, %, result,
 * samples), the messages of the checks that did not pass, and a status line.
 */
export function formatReport(report: QualityReport): string {
  const header = ['check', 'type', 'severity', 'evaluated', 'failed', '%', 'result', 'samples'];
  const right = new Set([3, 4, 5]);
  const rows = report.checks.map((c) => [
    c.name,
    c.type,
    c.severity,
    fmtCount(c.evaluated),
    fmtCount(c.failed),
    fmtPercent(c.percent),
    resultWord(c),
    clip(c.samples.join('; '), 60),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => {
        const w = widths[i] ?? 0;
        return right.has(i) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  const out: string[] = [];
  out.push(`${report.table}: quality of run ${report.runId} at ${report.at} (${fmtCount(report.rows)} rows)`);
  out.push('');
  if (rows.length) {
    out.push(line(header));
    out.push(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of rows) out.push(line(r));
  } else {
    out.push('no checks');
  }
  const failing = report.checks.filter((c) => !c.passed);
  if (failing.length) {
    out.push('');
    for (const c of failing) out.push(`${c.severity === 'error' ? 'error' : 'warn '}  ${c.message}`);
  }
  if (report.checks.some((c) => c.passed && c.failed > 0)) {
    out.push('');
    out.push('pass* = passed with failures within mostly');
  }
  const errors = failing.filter((c) => c.severity === 'error').length;
  const warns = failing.length - errors;
  out.push('');
  out.push(
    `status: ${report.status} (${report.checks.length} checks: ${report.checks.length - failing.length} passed, ${errors} failed, ${warns} warned)`,
  );
  return out.join('\n');
}
