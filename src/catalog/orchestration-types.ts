/**
 * The orchestrator's records: runs of a pipeline for a data interval, made of task runs that
 * form a DAG. Stored in the catalog (SQLite or PostgreSQL) so every process that shares the
 * catalog (the scheduler, `dip worker`s, the CLI) sees one truth.
 */
import type { Interval } from '../core/interval.js';

export type OrchestratedRunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'crashed';
export type TaskStatus = 'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'upstream_failed' | 'cancelled';
export type RunTrigger = 'manual' | 'schedule' | 'backfill' | 'files' | 'pipeline' | 'api';

export const TERMINAL_TASK: readonly TaskStatus[] = ['succeeded', 'failed', 'upstream_failed', 'cancelled'];
export const TERMINAL_RUN: readonly OrchestratedRunStatus[] = ['succeeded', 'failed', 'cancelled', 'crashed'];

/** Fresh runs (scheduled, manual, triggered) go before backfill runs. */
export const PRIORITY = { fresh: 10, backfill: 0 } as const;

export interface TaskSpec {
  name: string;
  /** Upstream task names (must be tasks of the same run). */
  deps: string[];
  pool: string | null;
  /** Tasks with the same mutex never run at once, across runs (one writer of a merged table). */
  mutex: string | null;
  maxAttempts: number;
}

export interface NewRun {
  pipeline: string;
  interval: Interval | null;
  trigger: RunTrigger;
  priority: number;
  tasks: TaskSpec[];
  /** Runs of the pipeline that may be running at once (its max_active_runs). */
  maxActive: number;
  /** Tasks of this run that may run at once (its max_parallel_tasks); null: no limit. */
  maxTasks?: number | null;
  /** Groups the runs of one `dip backfill`; they run at most `maxParallel` at once. */
  backfillId?: string | null;
  maxParallel?: number | null;
}

/** A task run, addressed by its run and name. */
export interface TaskRef {
  runId: string;
  task: string;
  priority: number;
  /** Not to start before (a retry's backoff). */
  notBefore?: Date | null;
}

export interface TaskRunRecord {
  runId: string;
  task: string;
  status: TaskStatus;
  attempt: number;
  maxAttempts: number;
  deps: string[];
  pool: string | null;
  /** Tasks sharing a mutex never run at once, across runs (`<pipeline>:silver.<table>`, `<pipeline>:ingest.<source>`). */
  mutex: string | null;
  notBefore: Date | null;
  leaseOwner: string | null;
  leaseExpires: Date | null;
  startedAt: Date | null;
  endedAt: Date | null;
  rows: number;
  error: string | null;
  cause: string | null;
}

export interface TaskAttemptRecord {
  runId: string;
  task: string;
  attempt: number;
  status: 'running' | 'succeeded' | 'failed' | 'lost' | 'interrupted' | 'cancelled';
  worker: string;
  startedAt: Date;
  endedAt: Date | null;
  rows: number;
  error: string | null;
  /** The DipError kind of a failed attempt (config, input, transient, …; lost attempts: transient). */
  errorKind: string | null;
  cause: string | null;
  /** The attempt's log (tail, at most 64 KiB). */
  log: string;
}

export interface OrchestratedRun {
  id: string;
  pipeline: string;
  status: OrchestratedRunStatus;
  trigger: RunTrigger;
  priority: number;
  interval: Interval | null;
  queuedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  attempt: number;
  backfillId: string | null;
  cancelRequested: boolean;
  error: string | null;
}

/** What an alert is about. */
export type AlertKind = 'failure' | 'retry_exhausted' | 'sla' | 'quality' | 'recovery';

export interface Alert {
  kind: AlertKind;
  /** One incident, one key: e.g. `failure:shop:ingest.orders`. Alerts with a key already sent within the dedup window are suppressed. */
  key: string;
  pipeline: string | null;
  title: string;
  text: string;
  /** Extra facts shown as fields (run id, task, interval, error). */
  fields: Record<string, string>;
  at: Date;
}

/** A delivery waiting in the outbox to be re-sent. */
export interface OutboxEntry {
  id: number;
  alert: Alert;
  /** `webhook:1`… or `email`. */
  channel: string;
  /** Delivery attempts so far. */
  attempts: number;
  createdAt: Date;
  lastError: string | null;
}

/** Failed alert deliveries kept in the catalog until they are re-sent (any process sharing it sends them). */
export interface AlertOutbox {
  add(entry: { alert: Alert; channel: string; error: string; nextAt: Date; now: Date }): Promise<void>;
  /** The entries due at `now`, oldest first; they are not due again before `leaseUntil` (so no other process takes them meanwhile). */
  takeDue(now: Date, leaseUntil: Date, limit: number): Promise<OutboxEntry[]>;
  /** A re-send failed: `attempts` so far, next try at `nextAt`. */
  failed(id: number, attempts: number, nextAt: Date, error: string): Promise<void>;
  /** Delivered or given up. */
  drop(id: number): Promise<void>;
  /** Deliveries waiting (for /metrics and tests). */
  count(): Promise<number>;
}

/** Remembers which incidents were alerted, so one incident sends one alert. */
export interface AlertLedger {
  /** Records the alert and returns true when it should be sent (no alert with this key sent within `windowMs` before `at`). */
  claim(key: string, at: Date, windowMs: number): Promise<boolean>;
  /** Forgets the incident (it recovered), so the next failure alerts again. */
  resolve(key: string): Promise<void>;
}
