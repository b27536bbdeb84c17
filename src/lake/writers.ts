/**
 * Registers work that publishes lake files before committing them (compaction, silver builds,
 * replays) as a running run, exactly as `dip run` registers itself: `dip gc` leaves alone every
 * unreferenced file written since the oldest running run started, so a short `--grace` can
 * never delete a file such a writer is about to commit.
 */
import { hostname } from 'node:os';
import type { RunStats } from '../catalog/types.js';
import { describeCause, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Lake } from './lake.js';

/** Heartbeat of a registered writer, as `dip run`'s: other hosts tell a live writer from a dead one. */
const HEARTBEAT_MS = 30_000;

/**
 * Runs `work` under a run record named `label` (a pipeline name, or e.g. `(compact)`), finished
 * as succeeded or failed when it ends; a killed process leaves it `running` until
 * `markCrashedRuns` sees the process gone.
 */
export async function asRegisteredWriter<T>(
  lake: Lake,
  label: string,
  work: (runId: string) => Promise<T>,
  stats: (result: T) => RunStats = () => ({ streams: {} }),
): Promise<T> {
  const runId = newId('run_');
  await lake.catalog.startRun({ id: runId, pipeline: label, host: hostname(), pid: process.pid });
  const heartbeat = setInterval(() => void lake.catalog.heartbeat(runId).catch(() => undefined), HEARTBEAT_MS);
  heartbeat.unref();
  try {
    const result = await work(runId);
    await lake.catalog.finishRun(runId, { status: 'succeeded', stats: stats(result) });
    return result;
  } catch (err) {
    await lake.catalog
      .finishRun(runId, {
        status: 'failed',
        error: errorMessage(err),
        cause: describeCause(err) ?? null,
        stats: { streams: {} },
      })
      .catch(() => undefined);
    throw err;
  } finally {
    clearInterval(heartbeat);
  }
}
