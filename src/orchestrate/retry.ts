/**
 * Task retries (groundwork of the orchestrator): attempts, a delay that grows exponentially up
 * to a ceiling, jitter, a per-attempt timeout, and terminal errors that are never retried.
 * Sleep, clock and randomness are injected so tests run without waiting.
 */
import { DipError, errorMessage } from '../core/errors.js';
import type { RetryPolicy } from '../core/retry-policy.js';

export type { RetryPolicy } from '../core/retry-policy.js';

/** The wait before retry number `retry` (1 = the first retry). */
export function retryDelayMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxDelayMs, policy.delayMs * policy.factor ** Math.max(0, retry - 1));
  const spread = base * Math.min(Math.max(policy.jitter, 0), 1);
  return Math.max(0, Math.round(base - spread + 2 * spread * random()));
}

/**
 * Whether another attempt can help. Errors DIP classified as terminal (bad config, bad input,
 * schema and quality failures, conflicts, not found, interruption) are not retried; transient
 * ones and errors DIP did not classify (a crashed library call, a lost connection) are.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof DipError) return err.kind === 'transient' || err.kind === 'internal';
  return true;
}

export interface AttemptRecord {
  attempt: number;
  error: string;
  retryable: boolean;
  /** The wait before the next attempt, ms (absent when none follows). */
  delayMs?: number;
}

export interface RetryHooks {
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  onFailure?: (record: AttemptRecord) => void;
}

/** The attempts ran out: the last error, with every attempt's outcome. */
export class RetriesExhaustedError extends DipError {
  constructor(
    readonly attempts: AttemptRecord[],
    cause: unknown,
  ) {
    super(
      cause instanceof DipError ? cause.kind : 'internal',
      `failed after ${attempts.length} attempt${attempts.length === 1 ? '' : 's'}: ${errorMessage(cause)}`,
      { cause, details: { attempts } },
    );
    this.name = 'RetriesExhaustedError';
  }
}

const realSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/**
 * Runs `task` until it succeeds, a terminal error occurs (thrown as is, not retried) or the
 * attempts run out (RetriesExhaustedError). Each attempt gets a signal that aborts on timeout
 * or when the caller's signal aborts.
 */
export async function withRetries<T>(
  task: (attempt: number, signal: AbortSignal) => Promise<T>,
  policy: RetryPolicy,
  hooks: RetryHooks = {},
): Promise<{ value: T; attempts: number }> {
  const sleep = hooks.sleep ?? realSleep;
  const records: AttemptRecord[] = [];
  for (let attempt = 1; ; attempt++) {
    hooks.signal?.throwIfAborted();
    const controller = new AbortController();
    const abort = () => controller.abort(hooks.signal?.reason);
    hooks.signal?.addEventListener('abort', abort, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      const running = task(attempt, controller.signal);
      const value =
        policy.timeoutMs === undefined
          ? await running
          : await Promise.race([
              running,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  const err = new DipError('transient', `attempt ${attempt} timed out after ${policy.timeoutMs} ms`);
                  reject(err); // first: a task that settles on abort must not win the race
                  controller.abort(err);
                }, policy.timeoutMs);
              }),
            ]);
      return { value, attempts: attempt };
    } catch (err) {
      if (hooks.signal?.aborted) throw err;
      const retryable = isRetryable(err);
      const record: AttemptRecord = { attempt, error: errorMessage(err), retryable };
      records.push(record);
      if (!retryable) {
        hooks.onFailure?.(record);
        throw err;
      }
      if (attempt >= policy.attempts) {
        hooks.onFailure?.(record);
        throw new RetriesExhaustedError(records, err);
      }
      record.delayMs = retryDelayMs(policy, attempt, hooks.random);
      hooks.onFailure?.(record);
      await sleep(record.delayMs, hooks.signal);
    } finally {
      if (timer) clearTimeout(timer);
      hooks.signal?.removeEventListener('abort', abort);
    }
  }
}
