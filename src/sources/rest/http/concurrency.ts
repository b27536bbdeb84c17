/**
 * Adaptive concurrency (AIMD): how many requests may be in flight to one API. It starts low,
 * grows while the API answers well and backs off when it pushes back (429/5xx) or slows down,
 * never above the configured ceiling.
 */
import { interrupted } from './retry.js';
import type { ConcurrencyOptions } from './types.js';

/** How one attempt went, as far as the limiter cares. */
export interface AttemptOutcome {
  /** 429, 5xx or a timeout: the API is overloaded. */
  overloaded: boolean;
  /** Wall time of a successful response; undefined for failures (not a latency sample). */
  latencyMs?: number | undefined;
  /** `performance.now()` when the attempt started (after it got its slot). */
  startedAt: number;
}

/** The limiter's settings from the YAML: `initial` defaults to min(4, max), min to 1. */
export function concurrencyOptions(max: number, initial?: number): ConcurrencyOptions {
  const ceiling = Math.max(1, Math.floor(max));
  return { max: ceiling, min: 1, initial: Math.min(ceiling, Math.max(1, Math.floor(initial ?? Math.min(4, ceiling)))) };
}

const LATENCY_SAMPLES = 20;
const MIN_LATENCY_SAMPLES = 10;
/** Latency must also rise by this much in absolute terms: doubling from 2 ms to 4 ms is noise. */
const LATENCY_SLACK_MS = 20;
const BEST_DRIFT = 1.05;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

interface Waiter {
  grant: () => void;
}

export class AdaptiveConcurrency {
  private current: number;
  private readonly ceiling: number;
  private readonly floor: number;
  private active = 0;
  private peak = 0;
  private readonly queue: Waiter[] = [];
  /** Slow start (double per window) until the first overload, then +1 per window. */
  private slowStart = true;
  private windowSuccesses = 0;
  private lastDecreaseAt = Number.NEGATIVE_INFINITY;
  private readonly latencies: number[] = [];
  private bestMedian = Number.POSITIVE_INFINITY;
  /** After a latency step-down, no growth until the latency has been measured again. */
  private holdGrowth = false;

  constructor(
    options: ConcurrencyOptions,
    private readonly onChange?: (limit: number, reason: string) => void,
  ) {
    this.ceiling = Math.max(1, Math.floor(options.max));
    this.floor = Math.min(this.ceiling, Math.max(1, Math.floor(options.min)));
    this.current = Math.min(this.ceiling, Math.max(this.floor, Math.floor(options.initial)));
  }

  get limit(): number {
    return this.current;
  }

  get inFlight(): number {
    return this.active;
  }

  /** The most requests ever in flight at once. */
  get maxInFlight(): number {
    return this.peak;
  }

  /** Waits for a slot (FIFO). Rejects with an `interrupted` DipError when the signal fires first. */
  acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(interrupted(signal));
    if (this.queue.length === 0 && this.active < this.current) {
      this.occupy();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          this.occupy();
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(interrupted(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Frees a slot taken by `acquire`. */
  release(): void {
    if (this.active > 0) this.active--;
    this.drain();
  }

  /** Feeds the outcome of an attempt into the limit. */
  record(outcome: AttemptOutcome): void {
    if (outcome.overloaded) {
      // Requests already in flight when we last backed off report the same overload; one halving per episode.
      if (outcome.startedAt < this.lastDecreaseAt) return;
      this.slowStart = false;
      this.decrease(Math.floor(this.current / 2), 'overload');
      return;
    }
    if (outcome.latencyMs !== undefined) {
      this.latencies.push(outcome.latencyMs);
      if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
    }
    this.windowSuccesses++;
    if (this.windowSuccesses < this.current) return;
    this.windowSuccesses = 0;
    if (this.latencies.length >= MIN_LATENCY_SAMPLES) {
      const m = median(this.latencies);
      const slow = m > 2 * this.bestMedian && m - this.bestMedian >= LATENCY_SLACK_MS;
      // The best creeps up a little each window, so an API that got slower for good is not held
      // at the minimum forever.
      this.bestMedian = Math.min(m, this.bestMedian * BEST_DRIFT);
      if (slow) {
        this.slowStart = false;
        this.latencies.length = 0;
        this.holdGrowth = true;
        this.decrease(this.current - 1, 'latency');
        return;
      }
      this.holdGrowth = false;
    }
    if (this.current < this.ceiling && !this.holdGrowth) {
      this.set(Math.min(this.ceiling, this.slowStart ? this.current * 2 : this.current + 1), 'success');
    }
  }

  private decrease(to: number, reason: string): void {
    this.lastDecreaseAt = performance.now();
    this.set(Math.max(this.floor, to), reason);
  }

  private set(limit: number, reason: string): void {
    this.windowSuccesses = 0;
    if (limit === this.current) return;
    this.current = limit;
    this.onChange?.(limit, reason);
    this.drain();
  }

  private occupy(): void {
    this.active++;
    if (this.active > this.peak) this.peak = this.active;
  }

  private drain(): void {
    while (this.active < this.current && this.queue.length > 0) (this.queue.shift() as Waiter).grant();
  }
}
