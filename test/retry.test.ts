/** Task retries with an injected sleep and randomness: backoff, jitter, timeouts, terminal errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DipError } from '../src/core/errors.js';
import { RetriesExhaustedError, retryDelayMs, withRetries, type RetryPolicy } from '../src/orchestrate/retry.js';

const policy: RetryPolicy = { attempts: 4, delayMs: 1000, factor: 2, maxDelayMs: 3000, jitter: 0 };

describe('retries', () => {
  it('a task failing twice then succeeding runs three times, waiting 1 s then 2 s', async () => {
    const waits: number[] = [];
    let calls = 0;
    const r = await withRetries(
      async () => {
        calls++;
        if (calls < 3) throw new DipError('transient', `flaky ${calls}`);
        return 'done';
      },
      policy,
      { sleep: async (ms) => void waits.push(ms) },
    );
    assert.deepEqual(r, { value: 'done', attempts: 3 });
    assert.deepEqual(waits, [1000, 2000]);
  });

  it('a terminal error is not retried', async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls++;
          throw new ConfigError('bad config');
        },
        policy,
        { sleep: async () => undefined },
      ),
      ConfigError,
    );
    assert.equal(calls, 1);
  });

  it('exhausted attempts report every failure; delays grow to the ceiling', async () => {
    const waits: number[] = [];
    const err = await withRetries(async (n) => Promise.reject(new Error(`boom ${n}`)), policy, {
      sleep: async (ms) => void waits.push(ms),
    }).catch((e: unknown) => e);
    assert.ok(err instanceof RetriesExhaustedError);
    assert.deepEqual(
      err.attempts.map((a) => [a.attempt, a.error, a.delayMs]),
      [
        [1, 'boom 1', 1000],
        [2, 'boom 2', 2000],
        [3, 'boom 3', 3000],
        [4, 'boom 4', undefined],
      ],
    );
    assert.deepEqual(waits, [1000, 2000, 3000]);
    assert.match(err.message, /failed after 4 attempts: boom 4/);
  });

  it('an attempt that exceeds its timeout is aborted and retried', async () => {
    const signals: boolean[] = [];
    const r = await withRetries(
      (n, signal) =>
        n === 1
          ? new Promise<string>((resolve) => {
              signal.addEventListener('abort', () => {
                signals.push(true);
                resolve('too late');
              });
            })
          : Promise.resolve('second'),
      { ...policy, timeoutMs: 20 },
      { sleep: async () => undefined },
    );
    assert.deepEqual(r, { value: 'second', attempts: 2 });
    assert.deepEqual(signals, [true], 'the timed-out attempt saw its signal abort');
  });

  it('jitter spreads a delay evenly around it', () => {
    const p = { ...policy, jitter: 0.2 };
    assert.equal(
      retryDelayMs(p, 1, () => 0),
      800,
    );
    assert.equal(
      retryDelayMs(p, 1, () => 0.5),
      1000,
    );
    assert.equal(
      retryDelayMs(p, 1, () => 1),
      1200,
    );
    assert.equal(
      retryDelayMs(p, 9, () => 1),
      3600,
      'the ceiling, then jitter',
    );
  });
});
