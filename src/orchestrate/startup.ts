/**
 * Long-running processes (`dip worker`, `dip serve`) often start beside their database (a compose
 * file, a node reboot): they wait for an unreachable catalog or queue instead of exiting, like a
 * Celery worker waits for its broker. Only transient errors are waited out; a wrong password or
 * database name fails at once.
 */
import { DipError, errorMessage } from '../core/errors.js';

export interface StartupWait {
  /** Give up once this much time has passed since the first attempt (0: a single attempt). */
  waitMs: number;
  /** SIGINT/SIGTERM: stop waiting, even in the middle of an attempt (throws an `interrupted` DipError). */
  signal?: AbortSignal;
  log: (message: string, fields: Record<string, unknown>) => void;
  /** First pause between attempts; it doubles up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * `open()` until it succeeds, a non-transient error, the wait runs out or the signal aborts.
 * `dispose` closes what an attempt abandoned by the signal opens after all.
 */
export async function openWhenReachable<T>(
  what: string,
  open: () => Promise<T>,
  options: StartupWait,
  dispose?: (value: T) => Promise<void>,
): Promise<T> {
  const started = Date.now();
  let delay = options.initialDelayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await unlessAborted(what, open(), options.signal, dispose);
    } catch (err) {
      if (!(err instanceof DipError) || err.kind !== 'transient') throw err;
      if (options.signal?.aborted) throw interrupted(what);
      const waited = Date.now() - started;
      if (waited >= options.waitMs)
        throw attempt === 1
          ? err
          : new DipError(
              'transient',
              `${err.message} (still failing after ${attempt} attempts over ${(waited / 1000).toFixed(1)} s; --startup-wait sets how long to wait)`,
              { cause: err.cause ?? err },
            );
      // The last pause ends at the deadline, for one last attempt.
      const pause = Math.min(delay, options.waitMs - waited);
      options.log(`${what} not reachable yet; trying again`, {
        error: errorMessage(err),
        attempt,
        retry_in_ms: pause,
        waited_ms: waited,
        gives_up_after_ms: options.waitMs,
      });
      await sleep(pause, options.signal);
      if (options.signal?.aborted) throw interrupted(what);
      delay = Math.min(delay * 2, options.maxDelayMs ?? 5_000);
    }
  }
}

function interrupted(what: string): DipError {
  return new DipError('interrupted', `stopped by a signal while waiting for ${what}`);
}

/** The attempt, or an `interrupted` error as soon as the signal aborts (what it opens later is disposed of). */
function unlessAborted<T>(
  what: string,
  attempt: Promise<T>,
  signal: AbortSignal | undefined,
  dispose: ((value: T) => Promise<void>) | undefined,
): Promise<T> {
  if (!signal) return attempt;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      reject(interrupted(what));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    attempt.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) {
          settled = true;
          resolve(value);
        } else void dispose?.(value).catch(() => undefined);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) {
          settled = true;
          reject(err);
        }
      },
    );
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
