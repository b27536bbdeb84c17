import type { IncrementalConfig } from '../../config/rest.js';
import { DipError } from '../../core/errors.js';
import { parseDuration } from '../../core/time.js';
import type { CursorMark } from './partition.js';
import { fieldOf } from './select.js';

const ISO = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/;
/** Keys remembered at the last cursor value; beyond this, records at that value may repeat. */
const MAX_KEYS = 10_000;

type Value = string | number;

function asValue(v: unknown): Value | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v !== '') return v;
  return undefined;
}

/** Orders cursor values: numbers numerically, timestamps by instant, other text lexically. */
export function compareCursor(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string' && ISO.test(a) && ISO.test(b)) {
    const d = Date.parse(a) - Date.parse(b);
    if (!Number.isNaN(d) && d !== 0) return d;
  }
  const na = Number(a);
  const nb = Number(b);
  if (a !== '' && b !== '' && !Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** The value a pass requests from: the last value minus the lookback, or the configured start. */
export function startValue(config: IncrementalConfig, last: CursorMark | undefined): Value | undefined {
  const lb = config.lookback;
  if (last === undefined) return config.start;
  if (typeof lb === 'string' && typeof last.value === 'string' && ISO.test(last.value)) {
    return new Date(Date.parse(last.value) - (parseDuration(lb) ?? 0)).toISOString();
  }
  if (typeof lb === 'number') return Number(last.value) - lb;
  return last.value;
}

/**
 * Incremental loading by a record field, per partition: where to start (last value, minus
 * the lookback), which records an inclusive re-read repeats (skipped by key), and the new
 * last value once the pass is committed.
 */
export class CursorTracker {
  private best: CursorMark | undefined;
  constructor(
    private readonly config: IncrementalConfig,
    private readonly keyOf: (record: Record<string, unknown>) => string,
    private readonly last: CursorMark | undefined,
    private readonly where: string,
    running?: CursorMark,
  ) {
    this.best = running ? { value: running.value, keys: [...running.keys] } : undefined;
  }

  /** False for a record already loaded by an earlier pass (without lookback, an inclusive start repeats the last value). */
  accept(record: Record<string, unknown>): boolean {
    const value = asValue(fieldOf(record, this.config.cursor_field));
    if (value === undefined) {
      throw new DipError(
        'input',
        `${this.where}: record has no usable cursor field ${this.config.cursor_field}: ${JSON.stringify(record).slice(0, 160)}`,
      );
    }
    this.observe(value, record);
    if (!this.last || this.config.lookback !== undefined) return true;
    const c = this.compare(value, this.last.value);
    if (c > 0) return true;
    if (c < 0) return false;
    return !this.last.keys.includes(this.keyOf(record));
  }

  /** The furthest value seen so far in this pass, with the keys seen at it. */
  mark(): CursorMark | undefined {
    return this.best;
  }

  private compare(a: Value, b: Value): number {
    const c = compareCursor(a, b);
    return this.config.direction === 'min' ? -c : c;
  }

  private observe(value: Value, record: Record<string, unknown>): void {
    if (!this.best || this.compare(value, this.best.value) > 0) {
      this.best = { value, keys: [this.keyOf(record)] };
    } else if (this.compare(value, this.best.value) === 0 && this.best.keys.length < MAX_KEYS) {
      this.best.keys.push(this.keyOf(record));
    }
  }
}

/** The later of two marks (the last value of a partition after a pass). */
export function laterMark(
  a: CursorMark | undefined,
  b: CursorMark | undefined,
  direction: 'max' | 'min',
): CursorMark | undefined {
  if (!a) return b;
  if (!b) return a;
  const c = compareCursor(a.value, b.value) * (direction === 'min' ? -1 : 1);
  if (c === 0) return { value: a.value, keys: [...new Set([...a.keys, ...b.keys])].slice(0, MAX_KEYS) };
  return c > 0 ? a : b;
}
