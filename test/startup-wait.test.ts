import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DipError } from '../src/core/errors.js';
import { openWhenReachable } from '../src/orchestrate/startup.js';

describe('waiting for the catalog at startup', () => {
  const quick = { initialDelayMs: 5, maxDelayMs: 20 };

  it('tries again on transient errors, doubling the pause, and returns what opened', async () => {
    const logged: Record<string, unknown>[] = [];
    let calls = 0;
    const value = await openWhenReachable(
      'the catalog',
      async () => {
        if (++calls < 4) throw new DipError('transient', `refused ${calls}`);
        return 'open';
      },
      { ...quick, waitMs: 10_000, log: (_m, fields) => logged.push(fields) },
    );
    assert.equal(value, 'open');
    assert.deepEqual(
      logged.map((f) => [f['attempt'], f['retry_in_ms'], f['error']]),
      [
        [1, 5, 'refused 1'],
        [2, 10, 'refused 2'],
        [3, 20, 'refused 3'],
      ],
    );
  });

  it('throws a config error at once, and the last transient one when the wait runs out', async () => {
    let calls = 0;
    await assert.rejects(
      openWhenReachable(
        'x',
        async () => {
          calls++;
          throw new DipError('config', 'role "nobody" does not exist');
        },
        { ...quick, waitMs: 10_000, log: () => undefined },
      ),
      /role "nobody"/,
    );
    assert.equal(calls, 1);

    calls = 0;
    await assert.rejects(
      openWhenReachable(
        'x',
        async () => {
          throw new DipError('transient', `refused ${++calls}`);
        },
        { ...quick, waitMs: 0, log: () => undefined },
      ),
      /^DipError: refused 1$/,
    );
    assert.equal(calls, 1);

    calls = 0;
    await assert.rejects(
      openWhenReachable(
        'x',
        async () => {
          throw new DipError('transient', `refused ${++calls}`);
        },
        { ...quick, waitMs: 60, log: () => undefined },
      ),
      (err: unknown) => {
        assert.ok(err instanceof DipError && err.kind === 'transient');
        assert.match(
          err.message,
          new RegExp(
            `^refused ${calls} \\(still failing after ${calls} attempts over 0\\.\\d s; --startup-wait sets how long to wait\\)$`,
          ),
        );
        return true;
      },
    );
    assert.ok(calls >= 3, `tried until the deadline (${calls} attempts)`);
  });

  it('stops waiting when the signal aborts', async () => {
    const stop = new AbortController();
    let calls = 0;
    const started = Date.now();
    await assert.rejects(
      openWhenReachable(
        'x',
        async () => {
          calls++;
          setTimeout(() => stop.abort(), 10);
          throw new DipError('transient', 'refused');
        },
        { initialDelayMs: 60_000, waitMs: 600_000, signal: stop.signal, log: () => undefined },
      ),
      (err: unknown) =>
        err instanceof DipError &&
        err.kind === 'interrupted' &&
        err.message === 'stopped by a signal while waiting for x',
    );
    assert.equal(calls, 1, 'the pause cut short by the abort, and no attempt after it');
    assert.ok(Date.now() - started < 5_000);
  });

  it('abandons an attempt in progress when the signal aborts, and disposes of what it opens later', async () => {
    const stop = new AbortController();
    let open!: (value: string) => void;
    const disposed: string[] = [];
    const waiting = openWhenReachable(
      'the catalog',
      () => new Promise<string>((resolve) => (open = resolve)),
      { waitMs: 600_000, signal: stop.signal, log: () => undefined },
      async (v) => void disposed.push(v),
    );
    stop.abort();
    await assert.rejects(waiting, (err: unknown) => err instanceof DipError && err.kind === 'interrupted');
    open('a connection');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(disposed, ['a connection']);
  });
});
