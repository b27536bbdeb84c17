/**
 * The worker loop of `dip worker`: takes jobs from the task queue (`queue.ts`), claims their tasks
 * in the catalog under a lease and runs them; see `queue.ts` for the delivery rules.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { ClaimResult, FinishResult, OrchestrationStore, TaskOutcome } from '../catalog/orchestration.js';
import type { TaskRef } from '../catalog/orchestration-types.js';
import { DipError, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Lake } from '../lake/lake.js';
import { runAttempt, type AttemptFinished } from './attempt.js';
import { GroupCommit } from './group-commit.js';
import type { Orchestrator } from './orchestrator.js';
import { QUEUE_NAME, type LogLevel, type QueueLog, type TaskJob, TaskQueue } from './queue.js';
import { startRuntime } from './runtime.js';
import { Waker, sleep } from './waker.js';

export interface WorkerOptions {
  /** Tasks this worker runs at once. */
  concurrency: number;
  /** The lease a claimed task holds (renewed while it runs); a dead worker's task is retried once it expires. */
  leaseMs: number;
  /** Aborted to stop: no new jobs are taken; running tasks get `graceMs`, then are handed back. */
  signal: AbortSignal;
  log: QueueLog;
  /** Default 30 s. */
  graceMs?: number;
  /**
   * The longest an idle worker waits between looks for jobs, ms (default 500). Right after work
   * it looks again sooner (from MIN_POLL_MS, doubling up to this), and at once when a slot frees
   * up or it queued tasks itself.
   */
  pollMs?: number;
  /** How often dead workers' tasks are recovered and lost deliveries repaired, ms (default: the lease). */
  sweepMs?: number;
  clock?: () => Date;
  /** The queue, opened already (alongside the lake); closed when the worker stops. Default: opened here. */
  queue?: TaskQueue;
}

/** The first idle wait after work, ms: tasks ready in bursts (a DAG layer) are picked up soon. */
const MIN_POLL_MS = 20;

/** Runs tasks from the queue until `signal` is aborted and the running tasks ended or were handed back. */
export async function runWorker(lake: Lake, options: WorkerOptions): Promise<void> {
  let queue = options.queue;
  try {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new DipError('input', `worker concurrency ${options.concurrency}: expected a whole number of at least 1`);
    if (!(options.leaseMs > 0))
      throw new DipError('input', `worker lease ${options.leaseMs} ms: expected a positive duration`);
    const q = (queue ??= await TaskQueue.create(lake, { log: options.log }));
    let worker: QueueWorker | undefined;
    // No executor here: the runtime gives the orchestrator (ready tasks go to the queue) and alerts.
    const runtime = startRuntime(lake, {
      concurrency: 0,
      dispatch: (refs) => (worker ? worker.dispatch(refs) : q.send(refs)),
      log: options.log,
      ...(options.clock ? { clock: options.clock } : {}),
    });
    try {
      worker = new QueueWorker(lake, q, runtime.orchestrator, options);
      await worker.run();
    } finally {
      await runtime.stop();
    }
  } finally {
    await queue?.close();
  }
}

/** How the jobs of one fetch went: ok (claims decided), and how many were refused for want of a slot. */
type Taken = { ok: boolean; noSlot: number };

type FinishItem = { ref: { runId: string; task: string }; owner: string; attempt: number; outcome: TaskOutcome };

/**
 * The queue-fed sibling of TaskExecutor: claims what the jobs deliver and runs it under its lease.
 * Like the executor it batches its catalog writes: the jobs of one fetch are claimed in one
 * transaction, and outcomes that arrive while a write is in flight are recorded together in the
 * next (group commit); the tasks they ready go to the queue in one insert. Batching changes no
 * rule: each claim and each outcome is decided exactly as alone, under the same lease checks.
 */
class QueueWorker {
  readonly owner = `${hostname()}:${process.pid}:${newId().slice(10, 18)}`;
  private readonly running = new Set<Promise<void>>();
  private readonly handBack = new AbortController();
  /** Woken when a slot frees up or this worker queued tasks: look for jobs now. */
  private readonly wakeUp = new Waker();
  private readonly store: OrchestrationStore;
  private readonly clock: () => Date;
  private readonly finishes: GroupCommit<FinishItem, FinishResult>;
  private readonly sends: GroupCommit<TaskRef[], undefined>;
  /** Claim the jobs of a fetch one by one rather than together (see pullLoop). */
  private oneByOne = false;

  constructor(
    private readonly lake: Lake,
    private readonly queue: TaskQueue,
    private readonly orchestrator: Orchestrator,
    private readonly options: WorkerOptions,
  ) {
    this.store = lake.catalog.orchestration;
    this.clock = options.clock ?? lake.catalog.clock;
    this.finishes = new GroupCommit(
      (items) => this.store.finishMany(items, this.clock()),
      // One bad outcome must not lose the others: then they are recorded one by one.
      (i) => this.store.finish(i.ref, i.owner, i.attempt, i.outcome, this.clock()),
    );
    this.sends = new GroupCommit(async (batches) => {
      await this.queue.send(batches.flat());
      return batches.map(() => undefined);
    });
    // Every running attempt listens for the hand-back.
    setMaxListeners(0, this.handBack.signal);
  }

  private log(message: string, fields?: Record<string, unknown>, level?: LogLevel): void {
    this.options.log(message, { worker: this.owner, ...fields }, level);
  }

  /** Queues ready tasks (with those of attempts finishing alongside, in one insert); then looks for jobs. */
  async dispatch(refs: TaskRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.sends.submit(refs);
    this.wakeUp.wake();
  }

  async run(): Promise<void> {
    const { concurrency, leaseMs, signal } = this.options;
    const offset = this.lake.catalog.clockOffsetMs;
    if (Math.abs(offset) > 1_000)
      this.log(
        "this machine's clock differs from the catalog server's; leases, schedules and backoffs follow the server's",
        { clock_offset_ms: offset },
        'warn',
      );
    this.log('worker started', {
      concurrency,
      lease_ms: leaseMs,
      queue: `${this.queue.schema}.${QUEUE_NAME}`,
      clock_offset_ms: offset,
    });
    const sweeping = this.sweepLoop();
    await this.pullLoop();
    this.log('worker stopping: taking no new tasks', { running: this.running.size });
    await this.drain();
    await sweeping;
    this.log('worker stopped', { reason: signal.aborted ? 'signal' : 'done' });
  }

  private async pullLoop(): Promise<void> {
    const { signal, concurrency } = this.options;
    const pollMs = this.options.pollMs ?? 500;
    let idleMs = 0;
    while (!signal.aborted) {
      const free = concurrency - this.running.size;
      if (free <= 0) {
        await this.wakeUp.wait(pollMs * 10, signal);
        continue;
      }
      let fetched = 0;
      let taken: Taken | undefined;
      try {
        const jobs = await this.queue.fetch(free);
        fetched = jobs.length;
        taken = await this.take(jobs);
      } catch (err) {
        this.log('cannot take jobs from the queue', { error: errorMessage(err) }, 'warn');
      }
      if (!taken?.ok) {
        // The queue or the catalog is failing (said above): look again later.
        idleMs = pollMs;
        await this.wakeUp.wait(pollMs, signal);
        continue;
      }
      // While claims are refused for want of a slot (a run at its task limit, a full pool), claim
      // one by one: each task starts at once, and tasks ending meanwhile free their slots for the
      // next claim instead of the claim being refused and its job sent again for later.
      this.oneByOne = taken.noSlot > 0;
      // As many as asked for: more may be waiting, look again at once. Else the queue ran dry:
      // look again soon (work comes in bursts), then less and less often.
      if (fetched === free) continue;
      if (fetched > 0) idleMs = 0;
      idleMs = Math.min(pollMs, Math.max(MIN_POLL_MS, idleMs * 2));
      await this.wakeUp.wait(idleMs, signal);
    }
  }

  /**
   * Decides the jobs of one fetch: claims their tasks in priority order, in one transaction (or
   * one by one, see pullLoop), and starts what it got; sends again for later what arrived early;
   * drops the rest. Then completes the jobs, each only once what replaces it (if anything) is
   * queued. Not ok when the claims failed: their jobs are failed, for the queue to retry.
   */
  private async take(jobs: readonly TaskJob[]): Promise<Taken> {
    const taken: Taken = { ok: true, noSlot: 0 };
    if (jobs.length === 0) return taken;
    const done: string[] = [];
    const again: { job: string; ref: TaskRef; startAfter: Date | undefined }[] = [];
    const claimable: { job: string; ref: TaskRef }[] = [];
    for (const job of jobs) {
      if (!job.ref) {
        this.log('dropping a job that is not a task', { job: job.id }, 'warn');
        done.push(job.id);
      } else if (this.options.signal.aborted)
        again.push({ job: job.id, ref: job.ref, startAfter: job.ref.notBefore ?? undefined });
      else claimable.push({ job: job.id, ref: job.ref });
    }
    const decide = ({ job, ref }: { job: string; ref: TaskRef }, claim: ClaimResult) => {
      if (claim.ok) {
        this.start(ref, claim);
        done.push(job);
        return;
      }
      if (claim.reason === 'pool_full') taken.noSlot++;
      const later = this.later(ref, claim);
      if (later) again.push({ job, ...later });
      else done.push(job);
    };
    const claim = (refs: TaskRef[]) =>
      this.store.claimMany(refs, this.owner, this.options.leaseMs, this.orchestrator.poolSlots, this.clock());
    let decided = 0;
    try {
      if (this.oneByOne) {
        for (const c of claimable) {
          decide(c, (await claim([c.ref]))[0] as ClaimResult);
          decided++;
        }
      } else if (claimable.length) {
        const claims = await claim(claimable.map((c) => c.ref));
        claimable.forEach((c, i) => decide(c, claims[i] as ClaimResult));
        decided = claimable.length;
      }
    } catch (err) {
      const failed = claimable.slice(decided);
      this.log(
        'cannot claim tasks; the queue retries their jobs',
        { tasks: failed.map((c) => `${c.ref.runId}/${c.ref.task}`), error: errorMessage(err) },
        'warn',
      );
      await this.queue
        .fail(
          failed.map((c) => c.job),
          err,
        )
        .catch(() => undefined);
      taken.ok = false;
    }
    if (again.length) {
      try {
        await this.queue.deferMany(again);
        done.push(...again.map((a) => a.job));
      } catch (err) {
        this.log(
          'cannot send tasks again; the queue retries their jobs',
          { jobs: again.length, error: errorMessage(err) },
          'warn',
        );
        await this.queue
          .fail(
            again.map((a) => a.job),
            err,
          )
          .catch(() => undefined);
      }
    }
    await this.queue.complete(done);
    return taken;
  }

  /** For a task not claimed: the job that replaces its job (it arrived early), or undefined (drop it). */
  private later(
    ref: TaskRef,
    claim: Extract<ClaimResult, { ok: false }>,
  ): { ref: TaskRef; startAfter: Date } | undefined {
    switch (claim.reason) {
      case 'done': // finished already (a duplicate delivery)
      case 'missing': // the run is gone
      case 'leased': // a live worker runs it; should it die, recovery sends the task again
        return undefined;
      case 'not_ready':
        // Early for its retry: send again for then. Without retryAt the task waits on upstream
        // tasks, whose success dispatches it.
        return claim.retryAt ? { ref: { ...ref, notBefore: claim.retryAt }, startAfter: claim.retryAt } : undefined;
      case 'pool_full':
        // Its slot (a pool, a mutex, the run's task limit) is taken: send again for later.
        return { ref, startAfter: claim.retryAt ?? new Date(this.clock().getTime() + 1_000) };
    }
  }

  private start(ref: TaskRef, claim: Extract<ClaimResult, { ok: true }>): void {
    const fields = { run: ref.runId, task: ref.task, attempt: claim.attempt, pipeline: claim.run.pipeline };
    this.log('task claimed', fields);
    const p: Promise<void> = runAttempt(this.lake, ref, claim, {
      owner: this.owner,
      leaseMs: this.options.leaseMs,
      dag: (pipeline) => this.orchestrator.dag(pipeline),
      clock: this.clock,
      handBack: this.handBack.signal,
      finish: (r, owner, attempt, outcome) => this.finishes.submit({ ref: r, owner, attempt, outcome }),
      hooks: { onFinished: (e) => this.finished(e) },
    })
      .then(async (result) => {
        if (result === 'handed_back') {
          this.log('task handed back', fields);
          await this.queue.send([{ runId: ref.runId, task: ref.task, priority: ref.priority }]);
        } else if (result === 'lost') {
          this.log('task lease lost: another worker took the task over; its outcome here is dropped', fields, 'warn');
        }
      })
      .catch((err: unknown) => this.log('task attempt crashed', { ...fields, error: errorMessage(err) }, 'error'))
      .finally(() => {
        // A full worker waits for a slot; otherwise the slot alone is no reason to look now.
        const wasFull = this.running.size >= this.options.concurrency;
        this.running.delete(p);
        if (wasFull) this.wakeUp.wake();
      });
    this.running.add(p);
  }

  private async finished(e: AttemptFinished): Promise<void> {
    const fields: Record<string, unknown> = {
      run: e.runId,
      task: e.task,
      attempt: e.attempt,
      of: e.maxAttempts,
      status: e.result.status,
      accepted: e.result.accepted,
      ms: e.durationMs,
    };
    if (!e.outcome.ok) fields['error'] = e.outcome.error;
    else fields['rows'] = e.outcome.rows;
    this.log('task finished', fields, e.outcome.ok || !e.result.accepted ? 'info' : 'warn');
    await this.orchestrator.onAttemptFinished(e);
  }

  /** Lets running tasks finish within the grace period, then hands the rest back. */
  private async drain(): Promise<void> {
    if (this.running.size === 0) return;
    const graceMs = this.options.graceMs ?? 30_000;
    this.log('waiting for running tasks', { running: this.running.size, grace_ms: graceMs });
    const all = Promise.allSettled([...this.running]);
    const grace = new AbortController();
    const late = await Promise.race([
      all.then(() => false),
      sleep(graceMs, grace.signal).then(() => !grace.signal.aborted),
    ]);
    grace.abort();
    if (late) {
      this.log('grace period over: handing running tasks back', { running: this.running.size }, 'warn');
      this.handBack.abort();
    }
    await all;
  }

  /** Each lease period: requeue dead workers' tasks, and re-send queued tasks whose job may be lost. */
  private async sweepLoop(): Promise<void> {
    const { signal } = this.options;
    const every = this.options.sweepMs ?? this.options.leaseMs;
    while (!signal.aborted) {
      await this.sweep();
      await sleep(every, signal);
    }
  }

  private async sweep(): Promise<void> {
    try {
      const recovered = await this.orchestrator.recover();
      if (recovered.length) {
        this.log('recovered tasks of dead workers', { tasks: recovered.map((r) => `${r.runId}/${r.task}`) }, 'warn');
        await this.queue.send(recovered);
      }
      const queued = await this.store.queuedTaskRefs();
      await this.queue.send(queued);
      if (recovered.length || queued.length) this.wakeUp.wake();
    } catch (err) {
      this.log('sweep failed', { error: errorMessage(err) }, 'warn');
    }
  }
}
