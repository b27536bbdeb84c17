/**
 * Over 400 lines: one class whose every state change is one transaction over the same run, task, lease and attempt tables; splitting it into per-record stores is the next step.
 *
 * The orchestrator's state in the catalog: runs for data intervals, their task runs (a DAG with
 * a `waiting` count of unfinished upstreams per task), attempts with their logs, schedules and
 * alert incidents. Every state change is one serialized catalog transaction, so any number of
 * processes (scheduler, workers, CLI) can drive the same runs without double starts: a task
 * runs only under a lease, and only the lease holder of the current attempt can finish it.
 */
import { DipError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { dateOrNull, num, str, strOrNull } from './values.js';
import type { Row, SqlDriver, SqlExecutor, SqlValue } from './driver.js';
import type { RunStats } from './run-stats.js';
import type { Interval } from '../core/interval.js';
import {
  TERMINAL_TASK,
  type Alert,
  type AlertLedger,
  type AlertOutbox,
  type NewRun,
  type OrchestratedRun,
  type OrchestratedRunStatus,
  type RunTrigger,
  type TaskAttemptRecord,
  type TaskRef,
  type TaskRunRecord,
  type TaskStatus,
} from './orchestration-types.js';

const LOG_LIMIT = 64 * 1024;
const iso = (d: Date): string => d.toISOString();

export type ClaimResult =
  | {
      ok: true;
      attempt: number /** Attempts before this run attempt (a rerun's budget starts after them). */;
      floor: number;
      run: { id: string; pipeline: string; interval: Interval | null; attempt: number };
    }
  | { ok: false; reason: 'done' | 'not_ready' | 'leased' | 'pool_full' | 'missing'; retryAt?: Date };

export type TaskOutcome =
  | { ok: true; rows: number; stats?: RunStats; log?: string }
  | {
      ok: false;
      error: string;
      cause: string | null;
      retryable: boolean;
      retryDelayMs: number;
      cancelled?: boolean;
      kind?: string;
      log?: string;
    };

/** An attempt that ended, as observers read it (`attemptsEndedAfter`). */
export interface EndedAttempt {
  seq: number;
  runId: string;
  pipeline: string;
  task: string;
  attempt: number;
  status: TaskAttemptRecord['status'];
  errorKind: string | null;
}

export interface FinishResult {
  /** The task's status after this outcome ('queued' when it will be retried). */
  status: TaskStatus;
  /** Whether the outcome was accepted (false: the lease was lost to another attempt; nothing changed). */
  accepted: boolean;
  /** Tasks now ready to run (downstream tasks, or tasks of runs promoted because this one ended). */
  ready: TaskRef[];
  retryAt?: Date;
  /** Set when this outcome ended the run. */
  runFinished?: { id: string; pipeline: string; status: OrchestratedRunStatus; error: string | null };
}

/** A task taken from a dead lease holder, and what became of it. */
export interface RecoveredTask {
  ref: { runId: string; task: string };
  pipeline: string;
  attempt: number;
  maxAttempts: number;
  lostBy: string;
  result: FinishResult;
}

/**
 * Compare-and-set on a pipeline's schedule: each part given must still hold its `expected`
 * value (what this scheduler read) and becomes `next`; parts not given are left alone.
 */
export interface ScheduleGuard {
  pipeline: string;
  lastEnd?: { expected: Date | null; next: Date };
  triggerState?: { expected: Record<string, unknown>; next: Record<string, unknown> };
}

export interface RunFilter {
  pipeline?: string;
  status?: OrchestratedRunStatus;
  backfillId?: string;
  limit?: number;
}

export class OrchestrationStore {
  constructor(private readonly db: SqlDriver) {}

  /** Creates queued runs (with their task graphs) in one transaction; optionally advances a schedule's high-water mark with them. */
  async createRuns(runs: NewRun[], now: Date, guard?: ScheduleGuard): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      // Two schedulers on one catalog: only the one that read the current mark may move it.
      if (guard && !(await advanceSchedule(tx, guard, now))) return [];
      const ids: string[] = [];
      let seq = await nextSeq(tx);
      for (const run of runs) {
        const id = newId('run_');
        ids.push(id);
        await tx.execute(
          `INSERT INTO dip_runs (id, pipeline, status, started_at, host, pid, stats, orchestrated, trigger_kind, priority, interval_start, interval_end, queued_at, backfill_id, max_parallel, max_active, max_tasks)
           VALUES (?, ?, 'queued', ?, '', 0, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            id,
            run.pipeline,
            iso(now),
            JSON.stringify({ streams: {} }),
            run.trigger,
            run.priority,
            run.interval ? iso(run.interval.start) : null,
            run.interval ? iso(run.interval.end) : null,
            iso(now),
            run.backfillId ?? null,
            run.maxParallel ?? null,
            run.maxActive,
            run.maxTasks ?? null,
          ],
        );
        await insertTasks(tx, id, run, seq);
        seq += run.tasks.length;
      }
      return ids;
    });
  }

  async getSchedule(
    pipeline: string,
  ): Promise<{ lastEnd: Date | null; triggerState: Record<string, unknown> } | undefined> {
    const rows = await this.db.query(`SELECT last_end, trigger_state FROM dip_schedules WHERE pipeline = ?`, [
      pipeline,
    ]);
    const r = rows[0];
    return r
      ? {
          lastEnd: dateOrNull(r['last_end']),
          triggerState: JSON.parse(str(r['trigger_state'])) as Record<string, unknown>,
        }
      : undefined;
  }

  /** Moves a schedule's mark or trigger state without creating runs; false when another scheduler moved it first. */
  async advanceSchedule(guard: ScheduleGuard, now: Date): Promise<boolean> {
    return this.db.transaction((tx) => advanceSchedule(tx, guard, now));
  }

  /**
   * Starts queued runs while their pipeline (max_active) and backfill (max_parallel) have room:
   * fresh runs first (priority), then by interval. Returns the root tasks now ready.
   */
  async promote(now: Date, pipeline?: string): Promise<TaskRef[]> {
    return this.db.transaction((tx) => promoteIn(tx, now, pipeline));
  }

  /** Takes the task under a lease when it is ready, its pool has a free slot and no live lease holds it. */
  async claim(
    ref: { runId: string; task: string },
    owner: string,
    leaseMs: number,
    poolSlots: (pool: string) => number,
    now: Date,
  ): Promise<ClaimResult> {
    return this.db.transaction((tx) => claimIn(tx, ref, owner, leaseMs, poolSlots, now));
  }

  /**
   * Several `claim`s in one transaction (one durable write for a batch of deliveries), decided in
   * the given order under the same rules: a task delivered twice is claimed once (the second sees
   * the first's lease), and pool slots taken earlier in the batch count. One result per ref.
   */
  async claimMany(
    refs: readonly { runId: string; task: string }[],
    owner: string,
    leaseMs: number,
    poolSlots: (pool: string) => number,
    now: Date,
  ): Promise<ClaimResult[]> {
    if (refs.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const out: ClaimResult[] = [];
      for (const ref of refs) out.push(await claimIn(tx, ref, owner, leaseMs, poolSlots, now));
      return out;
    });
  }

  /** Claims the next ready task (highest priority, then oldest) whose pool has room; undefined when none. */
  async claimNext(
    owner: string,
    leaseMs: number,
    poolSlots: (pool: string) => number,
    now: Date,
    limit = 1,
  ): Promise<{ ref: TaskRef; claim: Extract<ClaimResult, { ok: true }> }[]> {
    return this.db.transaction(async (tx) => {
      const claimed: { ref: TaskRef; claim: Extract<ClaimResult, { ok: true }> }[] = [];
      const page = Math.max(limit * 4, 32);
      // Tasks blocked by a pool, mutex or run limit may fill the head of the queue: page past them (bounded).
      for (let offset = 0; claimed.length < limit && offset < 4096; offset += page) {
        const candidates = await tx.query(
          `SELECT run_id, task, priority FROM dip_task_runs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?)
           ORDER BY priority DESC, seq LIMIT ? OFFSET ?`,
          [iso(now), page, offset],
        );
        for (const c of candidates) {
          if (claimed.length >= limit) break;
          const ref = { runId: str(c['run_id']), task: str(c['task']), priority: num(c['priority']) };
          const result = await claimIn(tx, ref, owner, leaseMs, poolSlots, now);
          if (result.ok) claimed.push({ ref, claim: result });
        }
        if (candidates.length < page) break;
      }
      return claimed;
    });
  }

  /** The earliest time a queued task becomes ready (a retry's backoff), for executors to sleep until. */
  async nextWake(now: Date): Promise<Date | null> {
    // Only future times: a due task blocked by its pool or mutex wakes nobody (its slot's release does).
    const rows = await this.db.query(
      `SELECT MIN(not_before) AS t FROM dip_task_runs WHERE status = 'queued' AND not_before > ?`,
      [iso(now)],
    );
    return dateOrNull(rows[0]?.['t']);
  }

  /** Extends the lease; tells the holder whether the run was cancelled or the lease was lost. */
  async heartbeat(
    ref: { runId: string; task: string },
    owner: string,
    attempt: number,
    leaseMs: number,
    now: Date,
  ): Promise<{ lost: boolean; cancel: boolean }> {
    const changed = await this.db.execute(
      // An expired lease is not renewed: a claim may already count its slot or mutex as free.
      `UPDATE dip_task_runs SET lease_expires = ? WHERE run_id = ? AND task = ? AND lease_owner = ? AND attempt = ? AND status = 'running' AND lease_expires > ?`,
      [iso(new Date(now.getTime() + leaseMs)), ref.runId, ref.task, owner, attempt, iso(now)],
    );
    const rows = await this.db.query(`SELECT cancel_requested FROM dip_runs WHERE id = ?`, [ref.runId]);
    return { lost: changed === 0, cancel: num(rows[0]?.['cancel_requested']) === 1 };
  }

  /** Records an attempt's outcome: success readies downstream tasks; failure retries or fails them; the last task ends the run. */
  async finish(
    ref: { runId: string; task: string },
    owner: string,
    attempt: number,
    outcome: TaskOutcome,
    now: Date,
  ): Promise<FinishResult> {
    return this.db.transaction((tx) => finishIn(tx, ref, owner, attempt, outcome, now));
  }

  /** Several outcomes in one transaction (group commit: one durable write for many finished tasks). */
  async finishMany(
    items: { ref: { runId: string; task: string }; owner: string; attempt: number; outcome: TaskOutcome }[],
    now: Date,
  ): Promise<FinishResult[]> {
    return this.db.transaction(async (tx) => {
      const out: FinishResult[] = [];
      for (const i of items) out.push(await finishIn(tx, i.ref, i.owner, i.attempt, i.outcome, now));
      return out;
    });
  }

  /**
   * Gives a running attempt back (graceful shutdown past its grace period): the task is queued
   * again and the attempt does not count against its budget (the floor moves with it), but it
   * stays in the attempt history as `interrupted`, with its log.
   */
  async release(
    ref: { runId: string; task: string },
    owner: string,
    attempt: number,
    now: Date,
    log?: string,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.execute(
        `UPDATE dip_task_runs SET status = 'queued', attempt_floor = attempt_floor + 1, lease_owner = NULL, lease_expires = NULL, not_before = NULL
         WHERE run_id = ? AND task = ? AND lease_owner = ? AND attempt = ? AND status = 'running'`,
        [ref.runId, ref.task, owner, attempt],
      );
      if (changed) {
        await tx.execute(
          `UPDATE dip_task_attempts SET status = 'interrupted', ended_at = ?, error = ?, error_kind = 'interrupted', log = COALESCE(?, log),
             ended_seq = (SELECT COALESCE(MAX(ended_seq), 0) + 1 FROM dip_task_attempts)
           WHERE run_id = ? AND task = ? AND attempt = ?`,
          [
            iso(now),
            'interrupted: the process stopped and its grace period ran out before the task finished; the task was handed back to the queue (this attempt does not count)',
            log === undefined ? null : tail(log),
            ref.runId,
            ref.task,
            attempt,
          ],
        );
        // A cancelled run does not take its task back: it ends.
        if ((await runOrThrow(tx, ref.runId)).cancelRequested) await cancelWaiting(tx, ref.runId, now);
      }
      return changed > 0;
    });
  }

  /**
   * Tasks whose lease expired (their process died): the attempt counts as lost; the task is
   * queued again while attempts remain, else it fails. Returns tasks ready to dispatch.
   */
  async recoverExpired(
    now: Date,
    onRecovered?: (recovered: RecoveredTask[]) => Promise<void> | void,
  ): Promise<TaskRef[]> {
    const recovered = await this.db.transaction(async (tx) => {
      const expired = await tx.query(
        `SELECT run_id, task FROM dip_task_runs WHERE status = 'running' AND lease_expires < ?`,
        [iso(now)],
      );
      const out: RecoveredTask[] = [];
      for (const e of expired) {
        const r = await recoverIn(tx, { runId: str(e['run_id']), task: str(e['task']) }, now);
        if (r) out.push(r);
      }
      return out;
    });
    await onRecovered?.(recovered);
    return recovered.flatMap((r) => r.result.ready);
  }

  /** Cancels a run: waiting tasks are cancelled at once; running ones see it at their next heartbeat. */
  async cancel(runId: string, now: Date): Promise<OrchestratedRun> {
    return this.db.transaction(async (tx) => {
      const run = await runOrThrow(tx, runId);
      if (!['queued', 'running'].includes(run.status))
        throw new DipError(
          'conflict',
          `run ${runId} is already ${run.status}; only queued or running runs can be cancelled`,
        );
      await tx.execute(`UPDATE dip_runs SET cancel_requested = 1 WHERE id = ?`, [runId]);
      await cancelWaiting(tx, runId, now);
      return runOrThrow(tx, runId);
    });
  }

  /**
   * Runs a finished run again. By default it resumes: succeeded tasks stay done and only failed,
   * upstream-failed and cancelled tasks run again; `all` reruns every task.
   */
  async rerun(runId: string, now: Date, options: { all?: boolean } = {}): Promise<OrchestratedRun> {
    return this.db.transaction(async (tx) => {
      const run = await runOrThrow(tx, runId);
      if (['queued', 'running'].includes(run.status))
        throw new DipError(
          'conflict',
          `run ${runId} is still ${run.status}; cancel it or wait for it to end before re-running`,
        );
      const reset = options.all
        ? `status <> 'running'`
        : `status IN ('failed', 'upstream_failed', 'cancelled', 'pending', 'queued')`;
      await tx.execute(
        `UPDATE dip_task_runs SET status = 'pending', attempt_floor = attempt, not_before = NULL, lease_owner = NULL, lease_expires = NULL, ended_at = NULL, error = NULL, cause = NULL WHERE run_id = ? AND ${reset}`,
        [runId],
      );
      // waiting = upstreams not yet succeeded.
      await tx.execute(
        `UPDATE dip_task_runs SET waiting = (SELECT COUNT(*) FROM dip_task_deps d JOIN dip_task_runs u ON u.run_id = d.run_id AND u.task = d.upstream
           WHERE d.run_id = dip_task_runs.run_id AND d.task = dip_task_runs.task AND u.status <> 'succeeded')
         WHERE run_id = ? AND status = 'pending'`,
        [runId],
      );
      await tx.execute(
        `UPDATE dip_runs SET status = 'queued', attempt = attempt + 1, cancel_requested = 0, ended_at = NULL, error = NULL, cause = NULL, queued_at = ?, priority = ? WHERE id = ?`,
        [iso(now), Math.max(run.priority, 10), runId],
      );
      return runOrThrow(tx, runId);
    });
  }

  async getRun(id: string): Promise<OrchestratedRun | undefined> {
    const rows = await this.db.query(`SELECT ${RUN_COLUMNS} FROM dip_runs WHERE id = ? AND orchestrated = 1`, [id]);
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  async listRuns(filter: RunFilter = {}): Promise<OrchestratedRun[]> {
    const where = ['orchestrated = 1'];
    const params: SqlValue[] = [];
    if (filter.pipeline) where.push('pipeline = ?'), params.push(filter.pipeline);
    if (filter.status) where.push('status = ?'), params.push(filter.status);
    if (filter.backfillId) where.push('backfill_id = ?'), params.push(filter.backfillId);
    params.push(filter.limit ?? 50);
    const rows = await this.db.query(
      `SELECT ${RUN_COLUMNS} FROM dip_runs WHERE ${where.join(' AND ')} ORDER BY queued_at DESC, id DESC LIMIT ?`,
      params,
    );
    return rows.map(toRun);
  }

  /** The status of each of the given runs (absent: no such run). */
  async statusOf(ids: readonly string[]): Promise<Map<string, OrchestratedRunStatus>> {
    const out = new Map<string, OrchestratedRunStatus>();
    for (let i = 0; i < ids.length; i += 500) {
      const part = ids.slice(i, i + 500);
      const rows = await this.db.query(
        `SELECT id, status FROM dip_runs WHERE id IN (${part.map(() => '?').join(', ')})`,
        part,
      );
      for (const r of rows) out.set(str(r['id']), str(r['status']) as OrchestratedRunStatus);
    }
    return out;
  }

  /** Counts of runs by status (for a backfill's progress or the metrics). */
  async countRuns(filter: { backfillId?: string; pipeline?: string } = {}): Promise<Record<string, number>> {
    const where = ['orchestrated = 1'];
    const params: SqlValue[] = [];
    if (filter.pipeline) where.push('pipeline = ?'), params.push(filter.pipeline);
    if (filter.backfillId) where.push('backfill_id = ?'), params.push(filter.backfillId);
    const rows = await this.db.query(
      `SELECT status, COUNT(*) AS n FROM dip_runs WHERE ${where.join(' AND ')} GROUP BY status`,
      params,
    );
    return Object.fromEntries(rows.map((r) => [str(r['status']), num(r['n'])]));
  }

  /** Runs of the pipeline (queued, running or succeeded) whose interval overlaps [from, to): what a backfill need not run again. */
  async coveredIntervals(
    pipeline: string,
    from: Date,
    to: Date,
  ): Promise<{ interval: Interval; status: OrchestratedRunStatus }[]> {
    const rows = await this.db.query(
      `SELECT interval_start, interval_end, status FROM dip_runs WHERE orchestrated = 1 AND pipeline = ? AND interval_start < ? AND interval_end > ? AND status IN ('queued', 'running', 'succeeded')`,
      [pipeline, iso(to), iso(from)],
    );
    return rows.map((r) => ({
      interval: { start: new Date(str(r['interval_start'])), end: new Date(str(r['interval_end'])) },
      status: str(r['status']) as OrchestratedRunStatus,
    }));
  }

  /** Every queued task of a running run, as it was dispatched (for re-sending jobs a queue may have lost). */
  async queuedTaskRefs(): Promise<TaskRef[]> {
    const rows = await this.db.query(
      `SELECT t.run_id, t.task, t.priority, t.not_before FROM dip_task_runs t JOIN dip_runs r ON r.id = t.run_id WHERE t.status = 'queued' AND r.status = 'running' ORDER BY t.priority DESC, t.seq`,
    );
    return rows.map((r) => ({
      runId: str(r['run_id']),
      task: str(r['task']),
      priority: num(r['priority']),
      ...(r['not_before'] ? { notBefore: new Date(str(r['not_before'])) } : {}),
    }));
  }

  async countTasks(): Promise<Record<string, number>> {
    const rows = await this.db.query(
      `SELECT status, COUNT(*) AS n FROM dip_task_runs WHERE status IN ('pending', 'queued', 'running') GROUP BY status`,
    );
    return Object.fromEntries(rows.map((r) => [str(r['status']), num(r['n'])]));
  }

  async listTasks(runId: string): Promise<TaskRunRecord[]> {
    const rows = await this.db.query(`SELECT * FROM dip_task_runs WHERE run_id = ? ORDER BY seq`, [runId]);
    return rows.map(toTask);
  }

  async listAttempts(runId: string, task?: string): Promise<TaskAttemptRecord[]> {
    const rows = task
      ? await this.db.query(`SELECT * FROM dip_task_attempts WHERE run_id = ? AND task = ? ORDER BY attempt`, [
          runId,
          task,
        ])
      : await this.db.query(`SELECT * FROM dip_task_attempts WHERE run_id = ? ORDER BY started_at, task, attempt`, [
          runId,
        ]);
    return rows.map(toAttempt);
  }

  /** The sequence number of the newest ended attempt (0 when none has ended). */
  async lastEndedAttempt(): Promise<number> {
    const rows = await this.db.query(`SELECT MAX(ended_seq) AS s FROM dip_task_attempts`);
    return rows[0]?.['s'] == null ? 0 : num(rows[0]['s']);
  }

  /** Attempts that ended after `afterSeq`, in the order they ended (by any process), with their pipeline. */
  async attemptsEndedAfter(afterSeq: number, limit = 5_000): Promise<EndedAttempt[]> {
    const rows = await this.db.query(
      `SELECT a.run_id, a.task, a.attempt, a.status, a.error_kind, a.ended_seq, r.pipeline FROM dip_task_attempts a JOIN dip_runs r ON r.id = a.run_id
       WHERE a.ended_seq > ? ORDER BY a.ended_seq LIMIT ?`,
      [afterSeq, limit],
    );
    return rows.map((r) => ({
      seq: num(r['ended_seq']),
      runId: str(r['run_id']),
      pipeline: str(r['pipeline']),
      task: str(r['task']),
      attempt: num(r['attempt']),
      status: str(r['status']) as TaskAttemptRecord['status'],
      errorKind: strOrNull(r['error_kind']),
    }));
  }

  /** The alert ledger over dip_alerts: one incident (key) alerts once per window. */
  alertLedger(): AlertLedger {
    return {
      claim: (key, at, windowMs) => this.claimAlert(key, at, windowMs),
      resolve: (key) => this.resolveAlert(key),
    };
  }

  async claimAlert(key: string, at: Date, windowMs: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(`SELECT last_sent_at FROM dip_alerts WHERE alert_key = ?`, [key]);
      const last = rows[0];
      if (last && at.getTime() - Date.parse(str(last['last_sent_at'])) < windowMs) {
        await tx.execute(`UPDATE dip_alerts SET suppressed = suppressed + 1 WHERE alert_key = ?`, [key]);
        return false;
      }
      if (last)
        await tx.execute(`UPDATE dip_alerts SET last_sent_at = ?, sent = sent + 1 WHERE alert_key = ?`, [iso(at), key]);
      else
        await tx.execute(
          `INSERT INTO dip_alerts (alert_key, first_at, last_sent_at, sent, suppressed) VALUES (?, ?, ?, 1, 0)`,
          [key, iso(at), iso(at)],
        );
      return true;
    });
  }

  async resolveAlert(key: string): Promise<void> {
    await this.db.execute(`DELETE FROM dip_alerts WHERE alert_key = ?`, [key]);
  }

  /** The alert outbox over dip_alert_outbox: failed deliveries waiting to be re-sent. */
  alertOutbox(): AlertOutbox {
    const db = this.db;
    return {
      async add({ alert, channel, error, nextAt, now }) {
        await db.execute(
          `INSERT INTO dip_alert_outbox (alert, channel, attempts, created_at, next_at, last_error) VALUES (?, ?, 1, ?, ?, ?)`,
          [JSON.stringify(alert), channel, iso(now), iso(nextAt), error],
        );
      },
      takeDue: (now, leaseUntil, limit) =>
        db.transaction(async (tx) => {
          const rows = await tx.query(
            `SELECT id, alert, channel, attempts, created_at, last_error FROM dip_alert_outbox WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`,
            [iso(now), limit],
          );
          for (const r of rows)
            await tx.execute(`UPDATE dip_alert_outbox SET next_at = ? WHERE id = ?`, [iso(leaseUntil), num(r['id'])]);
          return rows.map((r) => {
            const alert = JSON.parse(str(r['alert'])) as Alert & { at: string };
            return {
              id: num(r['id']),
              alert: { ...alert, at: new Date(alert.at) },
              channel: str(r['channel']),
              attempts: num(r['attempts']),
              createdAt: new Date(str(r['created_at'])),
              lastError: strOrNull(r['last_error']),
            };
          });
        }),
      async failed(id, attempts, nextAt, error) {
        await db.execute(`UPDATE dip_alert_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?`, [
          attempts,
          iso(nextAt),
          error,
          id,
        ]);
      },
      async drop(id) {
        await db.execute(`DELETE FROM dip_alert_outbox WHERE id = ?`, [id]);
      },
      async count() {
        const rows = await db.query(`SELECT COUNT(*) AS n FROM dip_alert_outbox`);
        return num(rows[0]?.['n']);
      },
    };
  }
}

async function nextSeq(tx: SqlExecutor): Promise<number> {
  const rows = await tx.query(`SELECT MAX(seq) AS s FROM dip_task_runs`);
  return num(rows[0]?.['s']) + 1;
}

async function insertTasks(tx: SqlExecutor, runId: string, run: NewRun, seq: number): Promise<void> {
  const names = new Set(run.tasks.map((t) => t.name));
  const taskRows: SqlValue[][] = [];
  const depRows: SqlValue[][] = [];
  run.tasks.forEach((t, i) => {
    for (const d of t.deps) {
      if (!names.has(d))
        throw new DipError('config', `task ${t.name} depends on ${d}, which is not a task of pipeline ${run.pipeline}`);
      depRows.push([runId, d, t.name]);
    }
    taskRows.push([
      runId,
      t.name,
      'pending',
      0,
      t.maxAttempts,
      JSON.stringify(t.deps),
      t.deps.length,
      t.pool,
      t.mutex,
      run.priority,
      seq + i,
    ]);
  });
  await insertMany(
    tx,
    `INSERT INTO dip_task_runs (run_id, task, status, attempt, max_attempts, deps, waiting, pool, mutex, priority, seq) VALUES`,
    taskRows,
  );
  await insertMany(tx, `INSERT INTO dip_task_deps (run_id, upstream, task) VALUES`, depRows);
}

async function insertMany(tx: SqlExecutor, head: string, rows: SqlValue[][], chunk = 200): Promise<void> {
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk);
    const tuple = `(${part[0]?.map(() => '?').join(', ')})`;
    await tx.execute(`${head} ${part.map(() => tuple).join(', ')}`, part.flat());
  }
}

/** The distinct non-null values of a column among queued runs (of a pipeline), by index seeks rather than a scan. */
async function distinctQueued(
  tx: SqlExecutor,
  column: 'pipeline' | 'backfill_id',
  pipeline: [string] | [],
): Promise<string[]> {
  const out: string[] = [];
  const scope = pipeline.length ? 'AND pipeline = ?' : '';
  for (let last: string | null = null; ; ) {
    const rows: Row[] = await tx.query(
      `SELECT ${column} AS v FROM dip_runs WHERE status = 'queued' ${scope} AND ${column} IS NOT NULL ${last === null ? '' : `AND ${column} > ?`} ORDER BY ${column} LIMIT 1`,
      [...pipeline, ...(last === null ? [] : [last])],
    );
    const v = rows[0]?.['v'];
    if (v === undefined || v === null) return out;
    last = str(v);
    out.push(last);
  }
}

/** max_active_runs of the pipeline's newest queued fresh run (runs carry the setting they were created with). */
async function freshLimit(tx: SqlExecutor, pipeline: string): Promise<number> {
  const rows = await tx.query(
    `SELECT max_active FROM dip_runs WHERE status = 'queued' AND pipeline = ? AND backfill_id IS NULL ORDER BY queued_at DESC LIMIT 1`,
    [pipeline],
  );
  return rows[0] ? num(rows[0]['max_active']) : 0;
}

async function advanceSchedule(tx: SqlExecutor, guard: ScheduleGuard, now: Date): Promise<boolean> {
  const rows = await tx.query(`SELECT last_end, trigger_state FROM dip_schedules WHERE pipeline = ?`, [guard.pipeline]);
  const row = rows[0];
  const lastEnd = strOrNull(row?.['last_end']);
  const triggerState = row ? str(row['trigger_state']) : '{}';
  if (guard.lastEnd && lastEnd !== (guard.lastEnd.expected ? iso(guard.lastEnd.expected) : null)) return false;
  if (guard.triggerState && triggerState !== JSON.stringify(guard.triggerState.expected)) return false;
  const nextEnd = guard.lastEnd ? iso(guard.lastEnd.next) : lastEnd;
  const nextState = guard.triggerState ? JSON.stringify(guard.triggerState.next) : triggerState;
  await tx.execute(
    `INSERT INTO dip_schedules (pipeline, last_end, trigger_state, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (pipeline) DO UPDATE SET last_end = excluded.last_end, trigger_state = excluded.trigger_state, updated_at = excluded.updated_at`,
    [guard.pipeline, nextEnd, nextState, iso(now)],
  );
  return true;
}

async function promoteIn(tx: SqlExecutor, now: Date, pipeline?: string): Promise<TaskRef[]> {
  // Fresh runs count against max_active_runs among themselves: a backfill never holds them back.
  // A backfill's runs count against its own --parallel.
  const running = await tx.query(
    `SELECT pipeline, backfill_id, COUNT(*) AS n FROM dip_runs WHERE orchestrated = 1 AND status = 'running' GROUP BY pipeline, backfill_id`,
  );
  const freshRunning = new Map<string, number>();
  const backfillRunning = new Map<string, number>();
  for (const r of running) {
    if (r['backfill_id']) backfillRunning.set(str(r['backfill_id']), num(r['n']));
    else freshRunning.set(str(r['pipeline']), (freshRunning.get(str(r['pipeline'])) ?? 0) + num(r['n']));
  }
  const started: string[] = [];
  for (const p of pipeline ? [pipeline] : await distinctQueued(tx, 'pipeline', [])) {
    // Fresh runs: few, so the NULL-first ordering (the same on both databases) may sort.
    const freshRoom = (await freshLimit(tx, p)) - (freshRunning.get(p) ?? 0);
    if (freshRoom > 0) {
      const rows = await tx.query(
        `SELECT id FROM dip_runs WHERE status = 'queued' AND orchestrated = 1 AND pipeline = ? AND backfill_id IS NULL
         ORDER BY priority DESC, CASE WHEN interval_start IS NULL THEN 0 ELSE 1 END, interval_start, queued_at, id LIMIT ?`,
        [p, freshRoom],
      );
      started.push(...rows.map((r) => str(r['id'])));
    }
    // Backfills: possibly many thousands of queued runs each, read oldest first through the index.
    for (const backfill of await distinctQueued(tx, 'backfill_id', [p])) {
      const head = await tx.query(
        `SELECT max_parallel, max_active FROM dip_runs WHERE backfill_id = ? AND status = 'queued' LIMIT 1`,
        [backfill],
      );
      const limit =
        head[0]?.['max_parallel'] === null || head[0]?.['max_parallel'] === undefined
          ? num(head[0]?.['max_active'])
          : num(head[0]['max_parallel']);
      const room = limit - (backfillRunning.get(backfill) ?? 0);
      if (room <= 0) continue;
      const rows = await tx.query(
        `SELECT id FROM dip_runs WHERE backfill_id = ? AND status = 'queued' ORDER BY interval_start LIMIT ?`,
        [backfill, room],
      );
      started.push(...rows.map((r) => str(r['id'])));
    }
  }
  const ready: TaskRef[] = [];
  for (const id of started) {
    await tx.execute(`UPDATE dip_runs SET status = 'running', started_at = ? WHERE id = ?`, [iso(now), id]);
    const roots = await tx.query(
      `UPDATE dip_task_runs SET status = 'queued' WHERE run_id = ? AND status = 'pending' AND waiting = 0 RETURNING task, priority`,
      [id],
    );
    for (const r of roots) ready.push({ runId: id, task: str(r['task']), priority: num(r['priority']) });
    // A resumed run whose remaining tasks all succeeded (nothing to do) ends at once.
    if (roots.length === 0) await maybeFinishRun(tx, id, now);
  }
  return ready;
}

async function claimIn(
  tx: SqlExecutor,
  ref: { runId: string; task: string },
  owner: string,
  leaseMs: number,
  poolSlots: (pool: string) => number,
  now: Date,
): Promise<ClaimResult> {
  const rows = await tx.query(
    `SELECT t.status, t.attempt, t.pool, t.mutex, t.not_before, t.lease_expires, r.pipeline, r.interval_start, r.interval_end, r.attempt AS run_attempt, r.max_tasks, r.cancel_requested, t.attempt_floor
     FROM dip_task_runs t JOIN dip_runs r ON r.id = t.run_id WHERE t.run_id = ? AND t.task = ?`,
    [ref.runId, ref.task],
  );
  const t = rows[0];
  if (!t) return { ok: false, reason: 'missing' };
  const status = str(t['status']) as TaskStatus;
  if (TERMINAL_TASK.includes(status)) return { ok: false, reason: 'done' };
  if (status === 'pending') return { ok: false, reason: 'not_ready' };
  if (status === 'running') {
    const expires = dateOrNull(t['lease_expires']);
    if (expires && expires > now) return { ok: false, reason: 'leased', retryAt: expires };
    // An expired lease: the holder is gone. Its attempt counts as lost, under the usual rules
    // (attempts left? run cancelled?), before anyone takes over.
    await recoverIn(tx, ref, now);
    return claimIn(tx, ref, owner, leaseMs, poolSlots, now);
  }
  if (num(t['cancel_requested']) === 1) {
    await cancelWaiting(tx, ref.runId, now);
    return { ok: false, reason: 'done' };
  }
  const notBefore = dateOrNull(t['not_before']);
  if (status === 'queued' && notBefore && notBefore > now)
    return { ok: false, reason: 'not_ready', retryAt: notBefore };
  const pool = strOrNull(t['pool']);
  if (pool) {
    const used = await tx.query(
      `SELECT COUNT(*) AS n FROM dip_task_runs WHERE pool = ? AND status = 'running' AND lease_expires > ? AND NOT (run_id = ? AND task = ?)`,
      [pool, iso(now), ref.runId, ref.task],
    );
    if (num(used[0]?.['n']) >= poolSlots(pool))
      return { ok: false, reason: 'pool_full', retryAt: new Date(now.getTime() + 500) };
  }
  if (t['max_tasks'] !== null && t['max_tasks'] !== undefined) {
    const busy = await tx.query(
      `SELECT COUNT(*) AS n FROM dip_task_runs WHERE run_id = ? AND status = 'running' AND lease_expires > ? AND task <> ?`,
      [ref.runId, iso(now), ref.task],
    );
    if (num(busy[0]?.['n']) >= num(t['max_tasks']))
      return { ok: false, reason: 'pool_full', retryAt: new Date(now.getTime() + 200) };
  }
  const mutex = strOrNull(t['mutex']);
  if (mutex) {
    const held = await tx.query(
      `SELECT COUNT(*) AS n FROM dip_task_runs WHERE mutex = ? AND status = 'running' AND lease_expires > ? AND NOT (run_id = ? AND task = ?)`,
      [mutex, iso(now), ref.runId, ref.task],
    );
    if (num(held[0]?.['n']) > 0) return { ok: false, reason: 'pool_full', retryAt: new Date(now.getTime() + 200) };
  }
  const attempt = num(t['attempt']) + 1;
  await tx.execute(
    `UPDATE dip_task_runs SET status = 'running', attempt = ?, lease_owner = ?, lease_expires = ?, started_at = COALESCE(started_at, ?), not_before = NULL WHERE run_id = ? AND task = ?`,
    [attempt, owner, iso(new Date(now.getTime() + leaseMs)), iso(now), ref.runId, ref.task],
  );
  await tx.execute(
    `INSERT INTO dip_task_attempts (run_id, task, attempt, status, worker, started_at) VALUES (?, ?, ?, 'running', ?, ?)`,
    [ref.runId, ref.task, attempt, owner, iso(now)],
  );
  const start = strOrNull(t['interval_start']);
  const end = strOrNull(t['interval_end']);
  return {
    ok: true,
    attempt,
    floor: num(t['attempt_floor']),
    run: {
      id: ref.runId,
      pipeline: str(t['pipeline']),
      interval: start && end ? { start: new Date(start), end: new Date(end) } : null,
      attempt: num(t['run_attempt']),
    },
  };
}

async function finishIn(
  tx: SqlExecutor,
  ref: { runId: string; task: string },
  owner: string,
  attempt: number,
  outcome: TaskOutcome,
  now: Date,
  failedAs: 'failed' | 'lost' = 'failed',
): Promise<FinishResult> {
  const rows = await tx.query(
    `SELECT status, attempt, attempt_floor, max_attempts, priority FROM dip_task_runs WHERE run_id = ? AND task = ? AND lease_owner = ? AND attempt = ?`,
    [ref.runId, ref.task, owner, attempt],
  );
  const t = rows[0];
  if (!t || str(t['status']) !== 'running')
    return { status: t ? (str(t['status']) as TaskStatus) : 'failed', accepted: false, ready: [] };
  const run = await runOrThrow(tx, ref.runId);
  const log = outcome.log !== undefined ? tail(outcome.log) : null;
  const attemptStatus = outcome.ok ? 'succeeded' : outcome.cancelled ? 'cancelled' : failedAs;
  const errorKind = outcome.ok ? null : (outcome.kind ?? (failedAs === 'lost' ? 'transient' : 'internal'));
  // ended_seq: MAX + 1 is race-free because every catalog transaction holds the catalog lock.
  await tx.execute(
    `UPDATE dip_task_attempts SET status = ?, ended_at = ?, rows = ?, error = ?, cause = ?, error_kind = ?, log = COALESCE(?, log),
       ended_seq = (SELECT COALESCE(MAX(ended_seq), 0) + 1 FROM dip_task_attempts)
     WHERE run_id = ? AND task = ? AND attempt = ?`,
    [
      attemptStatus,
      iso(now),
      outcome.ok ? outcome.rows : 0,
      outcome.ok ? null : outcome.error,
      outcome.ok ? null : outcome.cause,
      errorKind,
      log,
      ref.runId,
      ref.task,
      attempt,
    ],
  );
  const ready: TaskRef[] = [];
  let status: TaskStatus;
  let retryAt: Date | undefined;
  if (outcome.ok) {
    status = 'succeeded';
    await tx.execute(
      `UPDATE dip_task_runs SET status = 'succeeded', ended_at = ?, rows = ?, stats = ?, lease_owner = NULL, lease_expires = NULL, error = NULL, cause = NULL WHERE run_id = ? AND task = ?`,
      [iso(now), outcome.rows, outcome.stats ? JSON.stringify(outcome.stats) : null, ref.runId, ref.task],
    );
    await tx.execute(
      `UPDATE dip_task_runs SET waiting = waiting - 1 WHERE run_id = ? AND status = 'pending' AND task IN (SELECT task FROM dip_task_deps WHERE run_id = ? AND upstream = ?)`,
      [ref.runId, ref.runId, ref.task],
    );
    if (!run.cancelRequested) {
      const next = await tx.query(
        `UPDATE dip_task_runs SET status = 'queued' WHERE run_id = ? AND status = 'pending' AND waiting = 0 AND task IN (SELECT task FROM dip_task_deps WHERE run_id = ? AND upstream = ?) RETURNING task, priority`,
        [ref.runId, ref.runId, ref.task],
      );
      for (const r of next) ready.push({ runId: ref.runId, task: str(r['task']), priority: num(r['priority']) });
    }
  } else if (
    outcome.retryable &&
    !outcome.cancelled &&
    !run.cancelRequested &&
    attempt - num(t['attempt_floor']) < num(t['max_attempts'])
  ) {
    status = 'queued';
    retryAt = new Date(now.getTime() + outcome.retryDelayMs);
    await tx.execute(
      `UPDATE dip_task_runs SET status = 'queued', not_before = ?, lease_owner = NULL, lease_expires = NULL, error = ?, cause = ? WHERE run_id = ? AND task = ?`,
      [iso(retryAt), outcome.error, outcome.cause, ref.runId, ref.task],
    );
    ready.push({ runId: ref.runId, task: ref.task, priority: num(t['priority']), notBefore: retryAt });
  } else {
    status = outcome.cancelled || run.cancelRequested ? 'cancelled' : 'failed';
    await tx.execute(
      `UPDATE dip_task_runs SET status = ?, ended_at = ?, lease_owner = NULL, lease_expires = NULL, error = ?, cause = ? WHERE run_id = ? AND task = ?`,
      [status, iso(now), outcome.error, outcome.cause, ref.runId, ref.task],
    );
    await failDownstream(tx, ref.runId, ref.task, now);
  }
  const finished = await maybeFinishRun(tx, ref.runId, now);
  const result: FinishResult = { status, accepted: true, ready, ...(retryAt ? { retryAt } : {}) };
  if (finished) {
    result.runFinished = finished;
    ready.push(...(await promoteIn(tx, now, run.pipeline)));
  }
  return result;
}

/** Counts the expired attempt of a running task as lost (retry, fail or cancel as usual). */
async function recoverIn(
  tx: SqlExecutor,
  ref: { runId: string; task: string },
  now: Date,
): Promise<RecoveredTask | undefined> {
  const rows = await tx.query(
    `SELECT t.attempt, t.attempt_floor, t.max_attempts, t.lease_owner, r.pipeline FROM dip_task_runs t JOIN dip_runs r ON r.id = t.run_id
     WHERE t.run_id = ? AND t.task = ? AND t.status = 'running' AND t.lease_expires < ?`,
    [ref.runId, ref.task, iso(now)],
  );
  const t = rows[0];
  if (!t) return undefined;
  const owner = str(t['lease_owner']);
  const attempt = num(t['attempt']);
  const message = `worker ${owner} stopped renewing its lease (killed or lost); the attempt is counted as failed`;
  const result = await finishIn(
    tx,
    ref,
    owner,
    attempt,
    { ok: false, error: message, cause: null, retryable: true, retryDelayMs: 0 },
    now,
    'lost',
  );
  return {
    ref,
    pipeline: str(t['pipeline']),
    attempt: attempt - num(t['attempt_floor']),
    maxAttempts: num(t['max_attempts']),
    lostBy: owner,
    result,
  };
}

/** A cancelled run's waiting tasks are cancelled; the run ends when nothing runs any more. */
async function cancelWaiting(tx: SqlExecutor, runId: string, now: Date): Promise<void> {
  await tx.execute(
    `UPDATE dip_task_runs SET status = 'cancelled', ended_at = ? WHERE run_id = ? AND status IN ('pending', 'queued')`,
    [iso(now), runId],
  );
  await maybeFinishRun(tx, runId, now);
}

async function failDownstream(tx: SqlExecutor, runId: string, task: string, now: Date): Promise<void> {
  let frontier = [task];
  while (frontier.length) {
    const next: string[] = [];
    for (const up of frontier) {
      const rows = await tx.query(
        `UPDATE dip_task_runs SET status = 'upstream_failed', ended_at = ?, error = ? WHERE run_id = ? AND status = 'pending'
         AND task IN (SELECT task FROM dip_task_deps WHERE run_id = ? AND upstream = ?) RETURNING task`,
        [iso(now), `upstream task ${up} did not succeed`, runId, runId, up],
      );
      next.push(...rows.map((r) => str(r['task'])));
    }
    frontier = next;
  }
}

/** Ends the run when none of its tasks is left to run; returns how it ended. */
async function maybeFinishRun(tx: SqlExecutor, runId: string, now: Date): Promise<FinishResult['runFinished']> {
  const open = await tx.query(
    `SELECT COUNT(*) AS n FROM dip_task_runs WHERE run_id = ? AND status IN ('pending', 'queued', 'running')`,
    [runId],
  );
  if (num(open[0]?.['n']) > 0) return undefined;
  const run = await runOrThrow(tx, runId);
  if (!['queued', 'running'].includes(run.status)) return undefined;
  const tasks = await tx.query(
    `SELECT task, status, error, cause, rows, stats FROM dip_task_runs WHERE run_id = ? ORDER BY seq`,
    [runId],
  );
  const failed = tasks.filter((t) => str(t['status']) === 'failed');
  const cancelled = tasks.some((t) => str(t['status']) === 'cancelled');
  const status: OrchestratedRunStatus = failed.length
    ? 'failed'
    : cancelled || run.cancelRequested
      ? tasks.every((t) => str(t['status']) === 'succeeded')
        ? 'succeeded'
        : 'cancelled'
      : 'succeeded';
  const error = failed.length
    ? failed.map((t) => `${str(t['task'])}: ${str(t['error'])}`).join('\n')
    : status === 'cancelled'
      ? 'cancelled'
      : null;
  const cause =
    failed
      .map((t) => strOrNull(t['cause']))
      .filter(Boolean)
      .join('\n') || null;
  const stats: RunStats = { streams: {} };
  for (const t of tasks) {
    const s = t['stats'] ? (JSON.parse(str(t['stats'])) as RunStats) : undefined;
    if (s) Object.assign(stats.streams, s.streams);
  }
  await tx.execute(`UPDATE dip_runs SET status = ?, ended_at = ?, error = ?, cause = ?, stats = ? WHERE id = ?`, [
    status,
    iso(now),
    error,
    cause,
    JSON.stringify(stats),
    runId,
  ]);
  return { id: runId, pipeline: run.pipeline, status, error };
}

async function runOrThrow(tx: SqlExecutor, runId: string): Promise<OrchestratedRun> {
  const rows = await tx.query(`SELECT ${RUN_COLUMNS} FROM dip_runs WHERE id = ? AND orchestrated = 1`, [runId]);
  if (!rows[0]) throw new DipError('not_found', `no orchestrated run ${runId}; list runs with \`dip runs list\``);
  return toRun(rows[0]);
}

function tail(text: string): string {
  return text.length > LOG_LIMIT ? text.slice(text.length - LOG_LIMIT) : text;
}

/** What toRun reads (named, not `*`: such statements can be prepared; see the PostgreSQL driver). */
const RUN_COLUMNS =
  'id, pipeline, status, trigger_kind, priority, interval_start, interval_end, queued_at, started_at, ended_at, attempt, backfill_id, cancel_requested, error';

function toRun(r: Row): OrchestratedRun {
  const start = strOrNull(r['interval_start']);
  const end = strOrNull(r['interval_end']);
  const status = str(r['status']) as OrchestratedRunStatus;
  return {
    id: str(r['id']),
    pipeline: str(r['pipeline']),
    status,
    trigger: (strOrNull(r['trigger_kind']) ?? 'manual') as RunTrigger,
    priority: num(r['priority']),
    interval: start && end ? { start: new Date(start), end: new Date(end) } : null,
    queuedAt: new Date(str(r['queued_at'] ?? r['started_at'])),
    startedAt: status === 'queued' ? null : dateOrNull(r['started_at']),
    endedAt: dateOrNull(r['ended_at']),
    attempt: num(r['attempt']),
    backfillId: strOrNull(r['backfill_id']),
    cancelRequested: num(r['cancel_requested']) === 1,
    error: strOrNull(r['error']),
  };
}

function toTask(r: Row): TaskRunRecord {
  return {
    runId: str(r['run_id']),
    task: str(r['task']),
    status: str(r['status']) as TaskStatus,
    attempt: num(r['attempt']),
    maxAttempts: num(r['max_attempts']),
    deps: JSON.parse(str(r['deps'])) as string[],
    pool: strOrNull(r['pool']),
    mutex: strOrNull(r['mutex']),
    notBefore: dateOrNull(r['not_before']),
    leaseOwner: strOrNull(r['lease_owner']),
    leaseExpires: dateOrNull(r['lease_expires']),
    startedAt: dateOrNull(r['started_at']),
    endedAt: dateOrNull(r['ended_at']),
    rows: num(r['rows']),
    error: strOrNull(r['error']),
    cause: strOrNull(r['cause']),
  };
}

function toAttempt(r: Row): TaskAttemptRecord {
  return {
    runId: str(r['run_id']),
    task: str(r['task']),
    attempt: num(r['attempt']),
    status: str(r['status']) as TaskAttemptRecord['status'],
    worker: str(r['worker']),
    startedAt: new Date(str(r['started_at'])),
    endedAt: dateOrNull(r['ended_at']),
    rows: num(r['rows']),
    error: strOrNull(r['error']),
    errorKind: strOrNull(r['error_kind']),
    cause: strOrNull(r['cause']),
    log: str(r['log']),
  };
}
