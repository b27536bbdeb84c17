/**
 * `{interval.*}` templates: a run for a data interval hands the interval to its sources by
 * rewriting their config before the source is created. Every string value (REST paths,
 * params, headers and bodies, SQL of database queries and `where` filters, file paths) may use
 * `{interval.start}`, `{interval.end_date}`, …; other placeholders (`{parent.id}`,
 * `{incremental.start}`, `${env:NAME}`) are left for the source to fill.
 */
import { DipError } from './errors.js';
import type { Interval } from './interval.js';

/** Every `{interval.<name>}` placeholder, in the order they are documented. */
export const INTERVAL_VARIABLE_NAMES = [
  'interval.start',
  'interval.end',
  'interval.start_date',
  'interval.end_date',
  'interval.start_epoch',
  'interval.end_epoch',
  'interval.start_ms',
  'interval.end_ms',
] as const;

/**
 * `{interval.<anything>}`. The name part is wider than the names we know (and than the REST
 * source's own placeholder syntax) so a typo such as `{interval.start-date}` is reported here,
 * with its place, instead of reaching a source unfilled.
 */
const INTERVAL_PLACEHOLDER = /\{(interval\.[\w.-]*)\}/g;

/** ISO-8601 UTC with Z; milliseconds only when they are not zero (2026-03-01T00:00:00Z). */
export function isoInstant(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

function checkedMs(date: Date, which: 'start' | 'end'): number {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new DipError('input', `interval.${which} is not a valid date`);
  return ms;
}

/** The values of the `{interval.*}` placeholders for one interval. */
export function intervalVariables(interval: Interval): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const which of ['start', 'end'] as const) {
    const date = interval[which];
    const ms = checkedMs(date, which);
    const iso = isoInstant(date);
    vars[`interval.${which}`] = iso;
    vars[`interval.${which}_date`] = date.toISOString().slice(0, 10);
    vars[`interval.${which}_epoch`] = String(Math.floor(ms / 1000));
    vars[`interval.${which}_ms`] = String(ms);
  }
  return vars;
}

/** `where` + one more step of the path: `.key`, `[0]`, or `["odd key"]`. */
function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return /^[A-Za-z0-9_-]+$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

function renderString(text: string, vars: Record<string, string> | null, path: string): string {
  if (!text.includes('{interval.')) return text;
  return text.replace(INTERVAL_PLACEHOLDER, (placeholder: string, name: string) => {
    if (!(INTERVAL_VARIABLE_NAMES as readonly string[]).includes(name)) {
      throw new DipError(
        'config',
        `${path}: unknown placeholder ${placeholder}; known: ${INTERVAL_VARIABLE_NAMES.map((n) => `{${n}}`).join(', ')}`,
        { details: { path, placeholder } },
      );
    }
    if (vars === null) {
      throw new DipError(
        'config',
        `the pipeline uses ${placeholder} at ${path}, but this run has no data interval; ` +
          'run it from a schedule, a backfill or a trigger (or pass --interval-start/--interval-end)',
        { details: { path, placeholder } },
      );
    }
    return vars[name] as string;
  });
}

function renderValue(value: unknown, vars: Record<string, string> | null, path: string): unknown {
  if (typeof value === 'string') return renderString(value, vars, path);
  if (Array.isArray(value)) return value.map((v: unknown, i) => renderValue(v, vars, childPath(path, i)));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, vars, childPath(path, k))]));
  }
  return value;
}

/**
 * A deep copy of a (JSON-like) source config with `{interval.*}` filled in every string value;
 * keys are kept as they are. `where` names the config in messages (`sources.api` gives
 * `sources.api.resources.posts.params.since`). Without an interval, any use is a config error
 * that says how to run the pipeline with one; an unknown `{interval.…}` name always is.
 */
export function renderIntervalTemplates<T>(config: T, interval: Interval | null, where: string): T {
  const vars = interval === null ? null : intervalVariables(interval);
  return renderValue(config, vars, where) as T;
}
