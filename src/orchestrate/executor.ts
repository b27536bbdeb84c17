/**
 * The in-process executor: claims ready tasks from the catalog (highest priority first, pools
 * respected) and runs up to `concurrency` of them at once. It sleeps until woken (a task was
 * readied) or until the next retry is due, so an idle executor costs nothing.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { FinishResult, TaskOutcome } from '../catalog/orchestration.js';
import type { Lake } from '../lake/lake.js';
import { runAttempt, type AttemptHooks } from './attempt.js';
import { GroupCommit } from './group-commit.js';
import type { PipelineDag } from '../config/task-graph.js';

type FinishItem = { ref: { runId: string; task: string }; owner: string; attempt: number; outcome: TaskOutcome };

export interface ExecutorOptions {
  concurrency: number;
  leaseMs: number;
  dag: (pipeline: string) => PipelineDag;
  poolSlots: (pool: string) => number;
  clock?: () => Date;
  hooks?: AttemptHooks;
  /** Longest idle sleep between looks at the catalog, ms (other processes may queue work). */
  pollMs?: number;
  log?: (message: string) => void;
}

export class TaskExecutor {
  readonly owner = `${hostname()}:${process.pid}:${newId('x_').slice(2, 10)}`;
  private readonly running = new Set<Promise<unknown>>();
  private readonly handBack = new AbortController();
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly clock: () => Date;
  private readonly finishes: GroupCommit<FinishItem, FinishResult>;

  private constructor(
    private readonly lake: Lake,
    private readonly options: ExecutorOptions,
  ) {
    this.clock = options.clock ?? lake.catalog.clock;
    const store = lake.catalog.orchestration;
    // One bad outcome must not lose the others: a failed batch is recorded one by one.
    this.finishes = new GroupCommit(
      (items) => store.finishMany(items, this.clock()),
      (i) => store.finish(i.ref, i.owner, i.attempt, i.outcome, this.clock()),
    );
    // Every running attempt listens for the hand-back.
    setMaxListeners(0, this.handBack.signal);
  }

  static create(lake: Lake, options: ExecutorOptions): TaskExecutor {
    return new TaskExecutor(lake, options);
  }

  get busy(): number {
    return this.running.size;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Look for work now (a run was queued or a task readied). */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Stops claiming. Running tasks get `graceMs` to finish; then they are aborted and handed
   * back (queued again, the attempt not counted) for another process to take.
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.loop;
    const all = Promise.allSettled([...this.running]);
    const timer = new Promise((r) => setTimeout(r, graceMs).unref());
    if (this.running.size && (await Promise.race([all.then(() => 'done'), timer.then(() => 'late')])) === 'late')
      this.handBack.abort();
    await all;
  }

  /** Outcomes that arrive while a write is in flight go together in the next one (group commit). */
  private finish = (
    ref: { runId: string; task: string },
    owner: string,
    attempt: number,
    outcome: TaskOutcome,
  ): Promise<FinishResult> => this.finishes.submit({ ref, owner, attempt, outcome });

  private async run(): Promise<void> {
    const pollMs = this.options.pollMs ?? 1000;
    while (!this.stopped) {
      this.woken = false;
      let wait = pollMs;
      try {
        const claimed = await this.claimFree();
        if (this.stopped) break;
        if (claimed.full || this.woken) continue;
        const next = await this.lake.catalog.orchestration.nextWake(this.clock());
        if (next) wait = Math.min(pollMs, Math.max(5, next.getTime() - this.clock().getTime()));
      } catch (err) {
        // The catalog may be briefly unreachable or busy: say so, wait, try again.
        this.options.log?.(`executor: cannot claim tasks: ${errorMessage(err)}; retrying in ${pollMs} ms`);
      }
      if (this.woken || this.stopped) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** Claims as many ready tasks as there are free slots and starts them; `full` when every slot got one. */
  private async claimFree(): Promise<{ full: boolean }> {
    const { concurrency, leaseMs, poolSlots } = this.options;
    const free = concurrency - this.running.size;
    if (free <= 0) return { full: false };
    const batch = await this.lake.catalog.orchestration.claimNext(this.owner, leaseMs, poolSlots, this.clock(), free);
    for (const { ref, claim } of batch) {
      const p: Promise<unknown> = runAttempt(this.lake, ref, claim, {
        owner: this.owner,
        leaseMs,
        dag: this.options.dag,
        clock: this.clock,
        handBack: this.handBack.signal,
        finish: this.finish,
        ...(this.options.hooks ? { hooks: this.options.hooks } : {}),
      })
        .catch((err: unknown) => this.options.log?.(`task ${ref.task} of ${ref.runId}: ${errorMessage(err)}`))
        .finally(() => {
          this.running.delete(p);
          this.wake();
        });
      this.running.add(p);
    }
    return { full: batch.length > 0 && batch.length === free };
  }
}
