/**
 * Runs one claimed task attempt under its lease: the lease is renewed while it runs (a
 * cancelled run or a lost lease aborts it), the task's timeout aborts it, and the outcome is
 * recorded with the attempt's log. Shared by the in-process executor and `dip worker`.
 */
import type { ClaimResult, FinishResult, OrchestrationStore, TaskOutcome } from '../catalog/orchestration.js';
import { LogTail } from './log-tail.js';
import { DipError, classifyDiskFull, describeCause, errorMessage } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import type { PipelineDag, TaskDef } from '../config/task-graph.js';
import { isRetryable, retryDelayMs } from './retry.js';
import { runTask } from './task-runner.js';

export interface AttemptHooks {
  /** Called after the outcome is recorded (alerts, metrics, dispatching ready tasks). */
  onFinished?: (event: AttemptFinished) => Promise<void> | void;
}

export interface AttemptFinished {
  runId: string;
  pipeline: string;
  task: string;
  /** The attempt within this run attempt (1 = first; a rerun starts again at 1). */
  attempt: number;
  maxAttempts: number;
  outcome: TaskOutcome;
  errorKind: string | null;
  result: FinishResult;
  durationMs: number;
}

export interface AttemptOptions {
  owner: string;
  leaseMs: number;
  dag: (pipeline: string) => PipelineDag;
  clock: () => Date;
  /** Aborted to hand the task back (graceful shutdown): the attempt is released, not failed. */
  handBack: AbortSignal;
  hooks?: AttemptHooks;
  /** Records the outcome (default: its own transaction; the executor batches them). */
  finish?: (
    ref: { runId: string; task: string },
    owner: string,
    attempt: number,
    outcome: TaskOutcome,
  ) => Promise<FinishResult>;
}

export async function runAttempt(
  lake: Lake,
  ref: { runId: string; task: string },
  claim: Extract<ClaimResult, { ok: true }>,
  options: AttemptOptions,
): Promise<FinishResult | 'handed_back' | 'lost'> {
  const store: OrchestrationStore = lake.catalog.orchestration;
  const { owner, leaseMs, clock } = options;
  const started = Date.now();
  const controller = new AbortController();
  // Only the end of the log is kept (a chatty task must not hold its whole output in memory).
  const logTail = new LogTail();
  const log = (line: string) => logTail.push(`${new Date().toISOString()} ${line}\n`);
  let lost = false;
  const loseLease = (why: string) => {
    lost = true;
    controller.abort(new DipError('interrupted', why));
  };
  // Self-fencing: a holder that could not renew its lease stops before the lease runs out, so
  // the worker that may then take the task over (and its pool slot or mutex) never runs beside it.
  // The lease was taken a little before this attempt began; the margin covers that and clock error.
  const fenceMarginMs = Math.max(Math.floor(leaseMs / 6), 100);
  let fence: NodeJS.Timeout | undefined;
  const renewedUntil = (untilMs: number) => {
    clearTimeout(fence);
    fence = setTimeout(
      () =>
        loseLease(
          `could not renew the lease on ${ref.task} in time (the catalog did not answer); stopped so that another worker can take the task over`,
        ),
      Math.max(0, untilMs - fenceMarginMs - clock().getTime()),
    );
  };
  renewedUntil(clock().getTime() + leaseMs);
  // Every third of the lease, and at least every 5 s so a cancel is noticed quickly.
  const heartbeat = setInterval(
    () => {
      const sentAt = clock().getTime();
      void store.heartbeat(ref, owner, claim.attempt, leaseMs, new Date(sentAt)).then(
        ({ lost: gone, cancel }) => {
          if (gone) loseLease(`the lease on ${ref.task} was lost (it expired, or another worker took the task over)`);
          else {
            if (!lost) renewedUntil(sentAt + leaseMs);
            if (cancel)
              controller.abort(
                new DipError('interrupted', `run ${ref.runId} was cancelled`, { details: { cancelled: true } }),
              );
          }
        },
        () => undefined,
      );
    },
    Math.max(50, Math.min(5_000, Math.floor(leaseMs / 3))),
  );
  const handBack = () => controller.abort(new DipError('interrupted', 'handed back: the process is shutting down'));
  options.handBack.addEventListener('abort', handBack, { once: true });

  let task: TaskDef | undefined;
  let outcome: TaskOutcome;
  let errorKind: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    const dag = options.dag(claim.run.pipeline);
    task = dag.tasks.find((t) => t.name === ref.task);
    if (!task)
      throw new DipError(
        'config',
        `pipeline ${claim.run.pipeline} has no task ${ref.task} any more (tasks: ${dag.tasks.map((t) => t.name).join(', ')})`,
      );
    const timeoutMs = task.retry.timeoutMs;
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          controller.abort(
            new DipError('transient', `${ref.task} timed out after ${timeoutMs} ms (attempt ${claim.attempt})`),
          ),
        timeoutMs,
      );
    }
    const running = runTask(lake, task, {
      runId: ref.runId,
      pipeline: claim.run.pipeline,
      interval: claim.run.interval,
      attempt: claim.attempt,
      signal: controller.signal,
      log,
    });
    // A task that ignores its signal still loses the race to the abort.
    const aborted = new Promise<never>((_, reject) =>
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }),
    );
    const value = await Promise.race([running, aborted]);
    outcome = { ok: true, rows: value.rows, stats: value.stats };
  } catch (caught) {
    const err = controller.signal.aborted ? controller.signal.reason : classifyDiskFull(caught);
    errorKind = err instanceof DipError ? err.kind : 'internal';
    const cancelled = err instanceof DipError && err.details['cancelled'] === true;
    const retryable = isRetryable(err);
    outcome = {
      ok: false,
      error: errorMessage(err),
      cause: describeCause(err) ?? null,
      retryable,
      retryDelayMs: task ? retryDelayMs(task.retry, claim.attempt - claim.floor) : 0,
      cancelled,
      kind: errorKind,
    };
    log(`failed: ${errorMessage(err)}`);
  } finally {
    clearInterval(heartbeat);
    clearTimeout(fence);
    if (timer) clearTimeout(timer);
    options.handBack.removeEventListener('abort', handBack);
  }
  if (lost) return 'lost';
  if (options.handBack.aborted && !outcome.ok) {
    await store.release(ref, owner, claim.attempt, clock(), logTail.text());
    return 'handed_back';
  }
  const recorded = { ...outcome, log: logTail.text() };
  const result = options.finish
    ? await options.finish(ref, owner, claim.attempt, recorded)
    : await store.finish(ref, owner, claim.attempt, recorded, clock());
  await options.hooks?.onFinished?.({
    runId: ref.runId,
    pipeline: claim.run.pipeline,
    task: ref.task,
    attempt: claim.attempt - claim.floor,
    maxAttempts: task?.retry.attempts ?? claim.attempt - claim.floor,
    outcome,
    errorKind,
    result,
    durationMs: Date.now() - started,
  });
  return result;
}
