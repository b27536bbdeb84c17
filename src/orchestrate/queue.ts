/**
 * The task queue adapter (pg-boss); the worker loop that feeds on it is in `worker.ts`.
 *
 * Distributed execution: `dip worker` processes on any machine pull task runs from a queue in
 * PostgreSQL (pg-boss, in its own schema next to the catalog's). The catalog is the truth, the
 * queue is only delivery:
 *
 * - A job is one TaskRef. Delivery is at-least-once; a task runs exactly once because a worker
 *   must claim it in the catalog (atomic, under a lease it renews while running), and only the
 *   lease holder's outcome is accepted. A job for a task that is done, missing or leased by a
 *   live worker is simply completed; one that arrived early (retry backoff, full pool) is sent
 *   again for later. The job is completed as soon as the claim is decided: a running task is
 *   protected by its lease, not by its job, so tasks may run longer than any job expiry.
 * - Dead workers: every worker sweeps each lease period: `recoverExpired` requeues the tasks
 *   whose lease ran out (the attempt counts as lost) and they are sent again. The same sweep
 *   re-sends every queued task of a running run, so a delivery lost between a catalog commit
 *   and its queue insert (a crash, a failed send) is repaired too.
 * - Dedup: the queue has pg-boss's `short` policy with singletonKey `<run>:<task>[@notBefore]`:
 *   at most one *waiting* (created) job per task and start time. A job being handled (active)
 *   or finished never blocks a new one, so re-dispatch after recovery is never suppressed; a
 *   dropped send always has an equivalent job still waiting. Duplicates that do get through
 *   (a retried job, a sweep racing a claim) are harmless no-ops at claim time.
 * - Priority: the job priority is the TaskRef's (fresh 10 before backfill 0); a retry's
 *   backoff (TaskRef.notBefore) becomes the job's startAfter.
 */
import type PgBoss from 'pg-boss';
import { withoutPassword } from '../catalog/index.js';
import type { CatalogConfig } from '../config/schema.js';
import { resolveSecrets } from '../config/secrets.js';
import { connectionErrorKind, sqlState } from '../core/connection-errors.js';
import { DipError, errorMessage } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import type { TaskRef } from '../catalog/orchestration-types.js';

export const QUEUE_NAME = 'dip-tasks';

export type LogLevel = 'info' | 'warn' | 'error';
/** Structured log line: a message and its fields. */
export type QueueLog = (message: string, fields?: Record<string, unknown>, level?: LogLevel) => void;

export interface TaskQueueOptions {
  /** Who needs the queue, for the error on a non-PostgreSQL catalog (default "dip worker"). */
  purpose?: string;
  /** The queue's schema (default `<catalog schema>_queue`). */
  schema?: string;
  log?: QueueLog;
}

/** A fetched job: its id and the task it delivers (undefined when its data is not a TaskRef). */
export interface TaskJob {
  id: string;
  ref: TaskRef | undefined;
}

interface JobData {
  runId: string;
  task: string;
  priority: number;
  notBefore?: string;
}

/** A job being handled longer than this (fetch → claim decided) counts as abandoned and is retried. */
const JOB_EXPIRE_SECONDS = 300;
const JOB_RETRY_LIMIT = 10;

/** PostgreSQL's SQLSTATE for a transaction chosen as a deadlock victim (it was rolled back whole). */
const DEADLOCK = '40P01';
const CREATE_ATTEMPTS = 6;

/**
 * Creates the queue unless it exists. pg-boss's create_queue inserts the queue row and then adds a
 * foreign key to it, so two processes creating it at once (workers starting together on a fresh
 * database) can deadlock; the victim's transaction is rolled back whole, and trying again finds the
 * queue the other one made.
 */
async function ensureQueue(boss: PgBoss): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (await boss.getQueue(QUEUE_NAME)) return;
    try {
      await boss.createQueue(QUEUE_NAME, {
        name: QUEUE_NAME,
        policy: 'short',
        retryLimit: JOB_RETRY_LIMIT,
        retryDelay: 1,
        retryBackoff: true,
        expireInSeconds: JOB_EXPIRE_SECONDS,
      });
      return;
    } catch (err) {
      if (attempt >= CREATE_ATTEMPTS || sqlState(err) !== DEADLOCK) throw err;
      await new Promise((resolve) => setTimeout(resolve, 25 + Math.random() * 100 * attempt));
    }
  }
}

export class TaskQueue {
  private closed = false;

  private constructor(
    private readonly boss: PgBoss,
    readonly schema: string,
  ) {}

  /** Opens (installing when missing) the queue in the PostgreSQL catalog's database (the lake need not be open yet). */
  static async create(lake: Pick<Lake, 'project'>, options: TaskQueueOptions = {}): Promise<TaskQueue> {
    const catalog = postgresCatalog(lake.project.config.catalog, options.purpose);
    const url = resolveSecrets(catalog.url, { baseDir: lake.project.dir });
    const schema = options.schema ?? `${catalog.schema}_queue`;
    if (!/^[a-z_][a-z0-9_]{0,49}$/.test(schema))
      throw new DipError(
        'config',
        `task queue schema "${schema}": expected a lower-case identifier of at most 50 characters (the catalog schema plus _queue)`,
      );
    const { default: Boss } = await import('pg-boss');
    // pg-boss hands its options to pg.Pool, whose connectionTimeoutMillis its typings omit: a server
    // that accepts TCP but never answers then fails the open (and the startup wait goes on).
    const poolOptions: PgBoss.ConstructorOptions & { connectionTimeoutMillis: number } = {
      connectionString: url,
      schema,
      max: 3,
      application_name: 'dip-queue',
      schedule: false,
      supervise: true,
      migrate: true,
      connectionTimeoutMillis: 15_000,
    };
    const boss = new Boss(poolOptions);
    // pg-boss reports pool and polling errors as events (some as plain objects); it retries by itself.
    boss.on('error', (err: unknown) =>
      options.log?.(
        'task queue error',
        { error: typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : String(err) },
        'warn',
      ),
    );
    try {
      await boss.start();
      await ensureQueue(boss);
    } catch (err) {
      await boss.stop({ graceful: false }).catch(() => undefined);
      await closeDb(boss);
      throw new DipError(
        connectionErrorKind(err),
        `cannot open the task queue at ${withoutPassword(url)} (schema ${schema}): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    return new TaskQueue(boss, schema);
  }

  /** Queues one job per task: priority from the ref, not before `ref.notBefore`. */
  async send(refs: readonly TaskRef[]): Promise<void> {
    if (refs.length === 0) return;
    await this.boss.insert(refs.map((ref) => jobInsert(ref, ref.notBefore ?? undefined)));
  }

  /** Queues the task again to start at `startAfter` (it arrived early); its dedup key stays the ref's. */
  async defer(ref: TaskRef, startAfter: Date): Promise<void> {
    await this.deferMany([{ ref, startAfter }]);
  }

  /** `defer` for several tasks in one insert (no `startAfter`: as `send`). */
  async deferMany(items: readonly { ref: TaskRef; startAfter: Date | undefined }[]): Promise<void> {
    if (items.length) await this.boss.insert(items.map(({ ref, startAfter }) => jobInsert(ref, startAfter)));
  }

  /** Takes up to `max` waiting jobs, highest priority first; they are active until completed or failed. */
  async fetch(max: number): Promise<TaskJob[]> {
    const jobs = await this.boss.fetch<unknown>(QUEUE_NAME, { batchSize: Math.max(1, max), priority: true });
    // pg-boss picks the highest priorities but returns them in no particular order.
    return jobs
      .map((job) => ({ id: job.id, ref: refOf(job.data) }))
      .sort((a, b) => (b.ref?.priority ?? 0) - (a.ref?.priority ?? 0));
  }

  async complete(ids: readonly string[]): Promise<void> {
    if (ids.length) await this.boss.complete(QUEUE_NAME, [...ids]);
  }

  /** The jobs could not be handled (the catalog was unreachable): pg-boss retries them with backoff. */
  async fail(ids: string | readonly string[], error: unknown): Promise<void> {
    const list = typeof ids === 'string' ? [ids] : [...ids];
    if (list.length === 0) return;
    // pg-boss takes an id or an array of ids with the output data; its typings know only the former.
    const fail = this.boss.fail.bind(this.boss) as (name: string, ids: string[], data: object) => Promise<void>;
    await fail(QUEUE_NAME, list, { message: errorMessage(error) });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.boss.stop({ graceful: false, close: true, wait: true });
  }
}

/** The PostgreSQL catalog settings the queue lives next to; a config error on any other catalog. */
export function postgresCatalog(
  catalog: CatalogConfig,
  purpose = 'dip worker',
): Extract<CatalogConfig, { kind: 'postgres' }> {
  if (catalog.kind !== 'postgres')
    throw new DipError(
      'config',
      `${purpose} needs a PostgreSQL catalog (catalog: {kind: postgres, url: …}); this project uses SQLite`,
    );
  return catalog;
}

/** The dedup key: one waiting job per task and start time (see the module comment). */
export function jobKey(ref: Pick<TaskRef, 'runId' | 'task' | 'notBefore'>): string {
  return `${ref.runId}:${ref.task}${ref.notBefore ? `@${ref.notBefore.toISOString()}` : ''}`;
}

function jobInsert(ref: TaskRef, startAfter: Date | undefined): PgBoss.JobInsert<JobData> {
  const data: JobData = { runId: ref.runId, task: ref.task, priority: ref.priority };
  if (ref.notBefore) data.notBefore = ref.notBefore.toISOString();
  return {
    name: QUEUE_NAME,
    data,
    priority: Math.trunc(ref.priority),
    singletonKey: jobKey(ref),
    ...(startAfter ? { startAfter: startAfter.toISOString() } : {}),
  };
}

function refOf(data: unknown): TaskRef | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const d = data as Record<string, unknown>;
  const { runId, task, priority, notBefore } = d;
  if (typeof runId !== 'string' || typeof task !== 'string') return undefined;
  const ref: TaskRef = { runId, task, priority: typeof priority === 'number' ? priority : 0 };
  if (typeof notBefore === 'string' && !Number.isNaN(Date.parse(notBefore))) ref.notBefore = new Date(notBefore);
  return ref;
}

/** pg-boss opens its pool in start(); a start that failed half-way leaves it open. */
async function closeDb(boss: PgBoss): Promise<void> {
  const db: unknown = boss.getDb();
  if (
    typeof db === 'object' &&
    db !== null &&
    'close' in db &&
    typeof db.close === 'function' &&
    'opened' in db &&
    db.opened
  ) {
    await (db.close as () => Promise<void>).call(db).catch(() => undefined);
  }
}

export interface Dispatcher {
  dispatch(refs: TaskRef[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * The queue for a process that schedules but does not execute (`dip backfill`, `dip trigger`,
 * `dip serve` with `serve.executor: workers`); undefined with the in-process executor.
 */
export async function createDispatcher(lake: Lake, options: { log?: QueueLog } = {}): Promise<Dispatcher | undefined> {
  if (lake.project.config.serve.executor !== 'workers') return undefined;
  const queue = await TaskQueue.create(lake, { purpose: 'serve.executor: workers', ...options });
  return { dispatch: (refs) => queue.send(refs), close: () => queue.close() };
}
