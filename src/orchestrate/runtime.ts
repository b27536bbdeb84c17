/**
 * Wires an orchestrator to its executor and alerts for one process: the in-process executor
 * (default), or none when `dip worker` processes do the work through the queue.
 */
import type { OrchestrationStore } from '../catalog/orchestration.js';
import { durationMs } from '../core/time.js';
import type { Lake } from '../lake/lake.js';
import { Alerter, type RedeliveryPolicy } from './alerts.js';
import type { AttemptFinished } from './attempt.js';
import { TaskExecutor } from './executor.js';
import { Orchestrator } from './orchestrator.js';
import { TERMINAL_RUN, type OrchestratedRun, type TaskRef } from '../catalog/orchestration-types.js';

export interface RuntimeOptions {
  clock?: () => Date;
  /** Tasks at once in this process; 0: no executor here (workers or another process run the tasks). */
  concurrency?: number;
  leaseMs?: number;
  /** Sends ready tasks to remote workers (the queue); the in-process executor is woken regardless. */
  dispatch?: (refs: TaskRef[]) => Promise<void> | void;
  log?: (message: string, fields?: Record<string, unknown>, level?: 'info' | 'warn' | 'error') => void;
  pollMs?: number;
  /** How failed alert deliveries are re-sent from the catalog's outbox (tests shorten it). */
  alertRedelivery?: Partial<RedeliveryPolicy>;
}

export interface Runtime {
  orchestrator: Orchestrator;
  executor: TaskExecutor | undefined;
  alerter: Alerter;
  /** Calls `listener` after every attempt this process records (metrics); returns the unsubscribe. */
  onAttempt(listener: (event: AttemptFinished) => void): () => void;
  /** Stops the executor: running tasks get `graceMs`, then are handed back. */
  stop(graceMs?: number): Promise<void>;
}

export const DEFAULT_LEASE_MS = 30_000;

/** The task lease: a --lease flag, else $DIP_TASK_LEASE, else 30 s. */
export function leaseMsFrom(flag: string | undefined): number {
  if (flag !== undefined) return durationMs(flag, '--lease');
  const env = process.env['DIP_TASK_LEASE'];
  return env ? durationMs(env, 'DIP_TASK_LEASE') : DEFAULT_LEASE_MS;
}

export function startRuntime(lake: Lake, options: RuntimeOptions = {}): Runtime {
  const serve = lake.project.config.serve;
  const concurrency = options.concurrency ?? serve.concurrency;
  const leaseMs = options.leaseMs ?? leaseMsFrom(undefined);
  const alerter = Alerter.create(lake.project.config.alerts, lake.catalog.orchestration.alertLedger(), {
    baseDir: lake.project.dir,
    outbox: lake.catalog.orchestration.alertOutbox(),
    clock: options.clock ?? lake.catalog.clock,
    ...(options.alertRedelivery ? { redelivery: options.alertRedelivery } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  // Failed alert deliveries are re-sent by every process that orchestrates, as long as it runs.
  const redeliverMs = Math.max(50, Math.min(5_000, options.alertRedelivery?.baseMs ?? 5_000));
  const redeliver = setInterval(
    () =>
      void alerter
        .deliverDue()
        .catch((err: unknown) => options.log?.(`alerts: cannot read the outbox: ${String(err)}`, {}, 'warn')),
    redeliverMs,
  );
  redeliver.unref();
  let executor: TaskExecutor | undefined;
  const listeners = new Set<(event: AttemptFinished) => void>();
  const orchestrator = Orchestrator.create(lake, {
    alerter,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.log ? { log: options.log } : {}),
    dispatch: async (refs) => {
      if (refs.length === 0) return;
      executor?.wake();
      await options.dispatch?.(refs);
    },
  });
  if (concurrency > 0) {
    executor = TaskExecutor.create(lake, {
      concurrency,
      leaseMs,
      dag: (p) => orchestrator.dag(p),
      poolSlots: orchestrator.poolSlots,
      hooks: {
        onFinished: async (e) => {
          for (const listener of listeners) {
            try {
              listener(e);
            } catch {
              // an observer never breaks a run
            }
          }
          await orchestrator.onAttemptFinished(e);
        },
      },
      ...(options.pollMs ? { pollMs: options.pollMs } : {}),
      ...(options.log ? { log: options.log } : {}),
    });
    executor.start();
  }
  return {
    orchestrator,
    executor,
    alerter,
    onAttempt(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop(graceMs = 0) {
      clearInterval(redeliver);
      await executor?.stop(graceMs);
      await alerter.close();
    },
  };
}

/** Waits until every run ended (any terminal status); `onProgress` sees the counts as they change. */
export async function waitForRuns(
  store: OrchestrationStore,
  ids: readonly string[],
  options: { pollMs?: number; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {},
): Promise<OrchestratedRun[]> {
  const pending = new Set(ids);
  while (pending.size) {
    options.signal?.throwIfAborted();
    const statuses = await store.statusOf([...pending]);
    for (const [id, status] of statuses) if (TERMINAL_RUN.includes(status)) pending.delete(id);
    options.onProgress?.(ids.length - pending.size, ids.length);
    if (pending.size) await new Promise((r) => setTimeout(r, options.pollMs ?? 200));
  }
  const finished = new Map<string, OrchestratedRun>();
  for (const id of ids) finished.set(id, (await store.getRun(id)) as OrchestratedRun);
  return ids.map((id) => finished.get(id) as OrchestratedRun);
}
