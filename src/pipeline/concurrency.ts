/** Streams of one source run side by side within a limit, each after the streams it depends on. */
import type { StreamSpec } from '../sources/types.js';

/**
 * Runs `work` for every stream, at most `limit` at a time, each only after the streams it
 * depends on (among those being run) have finished, in the given order otherwise.
 */
export async function runConcurrently(
  streams: StreamSpec[],
  limit: number,
  dependsOn: (s: StreamSpec) => string[],
  work: (s: StreamSpec) => Promise<void>,
): Promise<void> {
  const names = new Set(streams.map((s) => s.name));
  const finished = new Map<string, Promise<void>>();
  const slots: Promise<void>[] = [];
  let running = 0;
  const waiters: (() => void)[] = [];
  const acquire = async () => {
    while (running >= limit) await new Promise<void>((r) => waiters.push(r));
    running++;
  };
  const release = () => {
    running--;
    waiters.shift()?.();
  };
  for (const stream of streams) {
    const deps = dependsOn(stream)
      .filter((d) => names.has(d))
      .map((d) => finished.get(d) ?? Promise.resolve());
    const done = (async () => {
      await Promise.all(deps);
      await acquire();
      try {
        await work(stream);
      } finally {
        release();
      }
    })();
    finished.set(
      stream.name,
      done.catch(() => undefined),
    );
    slots.push(done);
  }
  // Wait for every stream, then surface the first failure (an interruption).
  const outcomes = await Promise.allSettled(slots);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}
