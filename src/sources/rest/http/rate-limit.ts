/**
 * Rate limits: client-side budgets ("at most N requests in any window of T") and the pauses a
 * server asks for through rate-limit headers. Both are consulted before every attempt.
 */
import { MAX_RETRY_AFTER_MS } from './retry.js';
import type { RateBudget } from './types.js';

/** A budget slot taken for one request; settle it when the response (or the failure) arrives. */
export interface BudgetSlot {
  settle(at: number): void;
}

/**
 * An exact sliding-window budget: at most `requests` requests in any window of `perMs`. Unlike
 * a token bucket (a burst on top of the refill: up to 2N in one window) it never overshoots.
 *
 * The server counts a request when it arrives, which we cannot see: a cold connection (TLS,
 * first-use setup) can delay one batch while the next, on warm connections, arrives at once.
 * The only time known to be no earlier than the arrival is when the response comes back, so a
 * slot counts from its start until then and for a full window after: conservative by one
 * latency, but never over the budget on the server's clock.
 *
 * `waitMs` and `take` are synchronous, so a caller that sees 0 and takes at once is never raced.
 */
export class SlidingWindowBudget {
  readonly requests: number;
  readonly windowMs: number;
  private pending = 0;
  /** Settle times of slots still inside their window, ascending. */
  private readonly settled: number[] = [];
  private listeners: Array<() => void> = [];

  constructor(budget: RateBudget) {
    if (!(budget.requests >= 1) || !(budget.perMs > 0)) {
      throw new RangeError(`invalid rate budget: ${budget.requests} requests per ${budget.perMs} ms`);
    }
    this.requests = Math.floor(budget.requests);
    // A hair over the window, so timer and clock rounding never land a start just inside it.
    this.windowMs = budget.perMs + 1;
  }

  /** How long until a request may start: 0 now, Infinity until an unsettled slot settles. */
  waitMs(now: number): number {
    this.expire(now);
    if (this.pending + this.settled.length < this.requests) return 0;
    const oldest = this.settled[0];
    return oldest === undefined ? Number.POSITIVE_INFINITY : Math.max(1, oldest + this.windowMs - now);
  }

  /** Takes a slot; call only right after `waitMs` returned 0. */
  take(): BudgetSlot {
    this.pending++;
    let open = true;
    return {
      settle: (at: number) => {
        if (!open) return;
        open = false;
        this.pending--;
        let i = this.settled.length;
        while (i > 0 && (this.settled[i - 1] as number) > at) i--;
        this.settled.splice(i, 0, at);
        const listeners = this.listeners;
        this.listeners = [];
        for (const notify of listeners) notify();
      },
    };
  }

  /** Resolves when a slot next settles (what an Infinity wait is waiting for). */
  settledOnce(): Promise<void> {
    return new Promise((resolve) => this.listeners.push(resolve));
  }

  private expire(now: number): void {
    while (this.settled.length > 0 && (this.settled[0] as number) + this.windowMs <= now) this.settled.shift();
  }
}

/** A pause the server asked for: no request to that origin starts before `until` (epoch ms). */
export interface ServerPause {
  until: number;
  reason: 'retry_after' | 'rate_limit_headers';
}

/** Pauses per origin (scheme://host:port), set from Retry-After and rate-limit headers. */
export class ServerPauses {
  private readonly byOrigin = new Map<string, ServerPause>();

  /** Extends the pause of an origin (never shortens one already in force). */
  pause(origin: string, until: number, reason: ServerPause['reason']): void {
    const current = this.byOrigin.get(origin);
    if (current === undefined || current.until < until) this.byOrigin.set(origin, { until, reason });
  }

  /** The pause still in force for an origin at `now`, if any. */
  active(origin: string, now: number): ServerPause | undefined {
    const p = this.byOrigin.get(origin);
    if (p === undefined) return undefined;
    if (p.until <= now) {
      this.byOrigin.delete(origin);
      return undefined;
    }
    return p;
  }
}

/**
 * A reset value as epoch ms. Servers send either delta seconds or epoch seconds (some epoch
 * milliseconds) under the same header names, so decide by magnitude: below 1e9 (2001 as an
 * epoch) it is a delta; above 1e12 it is epoch milliseconds.
 */
export function parseResetTime(value: string, now: number): number | undefined {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) return undefined;
  if (n < 1e9) return now + Math.round(n * 1000);
  if (n > 1e12) return Math.round(n);
  return Math.round(n * 1000);
}

/** `remaining` and `reset` from the combined IETF `RateLimit` header: `limit=10, remaining=0, reset=5` or `"default";r=0;t=5`. */
function parseCombinedHeader(value: string): { remaining?: string; reset?: string } {
  const out: { remaining?: string; reset?: string } = {};
  for (const m of value.matchAll(/(?:^|[\s,;])(remaining|reset|r|t)\s*=\s*"?(\d+(?:\.\d+)?)"?/gi)) {
    const key = (m[1] as string).toLowerCase();
    const v = m[2] as string;
    if (key === 'remaining' || key === 'r') out.remaining ??= v;
    else out.reset ??= v;
  }
  return out;
}

/**
 * When a response says the quota is spent (remaining 0) and when it resets, the epoch ms until
 * which requests to that host should wait; undefined when nothing needs to wait. Reads
 * X-RateLimit-Remaining/-Reset, the IETF draft RateLimit-Remaining/-Reset and its combined
 * `RateLimit` header. Headers are lower-case. Pauses longer than 10 minutes are capped.
 */
export function rateLimitPauseUntil(headers: Record<string, string>, now: number = Date.now()): number | undefined {
  const combined = headers['ratelimit'] !== undefined ? parseCombinedHeader(headers['ratelimit']) : {};
  const pairs: Array<[string | undefined, string | undefined]> = [
    [headers['x-ratelimit-remaining'], headers['x-ratelimit-reset']],
    [headers['ratelimit-remaining'], headers['ratelimit-reset']],
    [combined.remaining, combined.reset],
  ];
  let until: number | undefined;
  for (const [remaining, reset] of pairs) {
    if (remaining === undefined || reset === undefined) continue;
    // Several limits may be listed ("100, 0" with resets "60, 5"); any exhausted one makes us wait.
    const counts = remaining.split(',').map((r) => r.trim());
    const spent = counts.findIndex((r) => r !== '' && Number(r) <= 0);
    if (spent < 0) continue;
    const resets = reset.split(',');
    const at = parseResetTime(resets[spent] ?? resets[0] ?? '', now);
    if (at === undefined || at <= now) continue;
    const capped = Math.min(at, now + MAX_RETRY_AFTER_MS);
    until = until === undefined ? capped : Math.max(until, capped);
  }
  return until;
}
