/**
 * What the REST API returns: runs, tasks, attempts, tables and pipelines as snake_case JSON
 * with ISO times, the same shape whatever catalog answered.
 */
import type { CommitInfo, QualityReportRecord, RunRecord, RunStats } from '../catalog/types.js';
import type { PipelineDag } from '../config/task-graph.js';
import type { Interval } from '../orchestrate/schedule.js';
import type { OrchestratedRun, TaskAttemptRecord, TaskRunRecord } from '../catalog/orchestration-types.js';
import type { StreamState } from '../ops/state.js';
import type { TableSummary } from '../ops/tables.js';

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

export interface IntervalView {
  start: string;
  end: string;
}

export function intervalView(i: Interval): IntervalView {
  return { start: i.start.toISOString(), end: i.end.toISOString() };
}

export interface RunView {
  id: string;
  pipeline: string;
  status: string;
  orchestrated: boolean;
  trigger: string | null;
  priority: number | null;
  interval: IntervalView | null;
  queued_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  duration_seconds: number | null;
  attempt: number | null;
  backfill_id: string | null;
  cancel_requested: boolean;
  error: string | null;
}

const seconds = (start: Date | null, end: Date | null): number | null =>
  start && end ? (end.getTime() - start.getTime()) / 1000 : null;

export function runView(r: OrchestratedRun): RunView {
  return {
    id: r.id,
    pipeline: r.pipeline,
    status: r.status,
    orchestrated: true,
    trigger: r.trigger,
    priority: r.priority,
    interval: r.interval ? intervalView(r.interval) : null,
    queued_at: iso(r.queuedAt),
    started_at: iso(r.startedAt),
    ended_at: iso(r.endedAt),
    duration_seconds: seconds(r.startedAt, r.endedAt),
    attempt: r.attempt,
    backfill_id: r.backfillId,
    cancel_requested: r.cancelRequested,
    error: r.error,
  };
}

/** A `dip run` run (not orchestrated): no tasks, trigger or interval. */
export function plainRunView(r: RunRecord): RunView {
  return {
    id: r.id,
    pipeline: r.pipeline,
    status: r.status,
    orchestrated: false,
    trigger: null,
    priority: null,
    interval: null,
    queued_at: null,
    started_at: iso(r.startedAt),
    ended_at: iso(r.endedAt),
    duration_seconds: seconds(r.startedAt, r.endedAt),
    attempt: null,
    backfill_id: null,
    cancel_requested: false,
    error: r.error,
  };
}

export interface StatsView {
  rows: number;
  bytes: number;
  streams: RunStats['streams'];
}

export function statsView(stats: RunStats | undefined): StatsView {
  const streams = stats?.streams ?? {};
  const all = Object.values(streams);
  return { rows: all.reduce((n, s) => n + s.rows, 0), bytes: all.reduce((n, s) => n + s.bytes, 0), streams };
}

export interface AttemptView {
  attempt: number;
  status: string;
  worker: string;
  started_at: string;
  ended_at: string | null;
  rows: number;
  error: string | null;
  error_kind: string | null;
  cause: string | null;
}

export function attemptView(a: TaskAttemptRecord): AttemptView {
  return {
    attempt: a.attempt,
    status: a.status,
    worker: a.worker,
    started_at: a.startedAt.toISOString(),
    ended_at: iso(a.endedAt),
    rows: a.rows,
    error: a.error,
    error_kind: a.errorKind,
    cause: a.cause,
  };
}

export interface TaskView {
  task: string;
  status: string;
  attempt: number;
  max_attempts: number;
  deps: string[];
  pool: string | null;
  not_before: string | null;
  lease_owner: string | null;
  lease_expires: string | null;
  started_at: string | null;
  ended_at: string | null;
  rows: number;
  error: string | null;
  cause: string | null;
  attempts?: AttemptView[];
}

export function taskView(t: TaskRunRecord, attempts?: TaskAttemptRecord[]): TaskView {
  const view: TaskView = {
    task: t.task,
    status: t.status,
    attempt: t.attempt,
    max_attempts: t.maxAttempts,
    deps: t.deps,
    pool: t.pool,
    not_before: iso(t.notBefore),
    lease_owner: t.leaseOwner,
    lease_expires: iso(t.leaseExpires),
    started_at: iso(t.startedAt),
    ended_at: iso(t.endedAt),
    rows: t.rows,
    error: t.error,
    cause: t.cause,
  };
  if (attempts) view.attempts = attempts.filter((a) => a.task === t.task).map(attemptView);
  return view;
}

export interface TableView {
  name: string;
  zone: string;
  format: string;
  primary_key: string[];
  created_at: string;
  head_commit: number | null;
  schema_version: number | null;
  /** Rows readers see: a CDC current-state table's true row count (its pending changes applied). */
  rows: number;
  /** Changes in a CDC current-state table's delta files not merged yet; 0 for other tables. */
  pending_changes: number;
  files: number;
  bytes: number;
  last_commit_at: string | null;
  freshness_seconds: number | null;
}

export function tableView(t: TableSummary, head: CommitInfo | undefined, now: Date): TableView {
  return {
    name: t.name,
    zone: t.zone,
    format: t.format,
    primary_key: t.primaryKey,
    created_at: t.createdAt.toISOString(),
    head_commit: t.headCommit,
    schema_version: t.schemaVersion,
    rows: t.rows,
    pending_changes: t.pendingChanges ?? 0,
    files: t.files,
    bytes: t.bytes,
    last_commit_at: iso(head?.committedAt),
    freshness_seconds: head ? Math.max(0, (now.getTime() - head.committedAt.getTime()) / 1000) : null,
  };
}

export interface DagTaskView {
  name: string;
  kind: string;
  deps: string[];
  pool: string | null;
  max_attempts: number;
}

export function dagView(dag: PipelineDag): DagTaskView[] {
  return dag.tasks.map((t) => ({
    name: t.name,
    kind: t.run.kind,
    deps: [...t.deps],
    pool: t.pool,
    max_attempts: t.retry.attempts,
  }));
}

export interface QualityReportView {
  table: string;
  status: string;
  rows: number;
  run_id: string | null;
  commit_id: number | null;
  created_at: string;
  report: Record<string, unknown>;
}

export function qualityReportView(r: QualityReportRecord): QualityReportView {
  return {
    table: r.table,
    status: r.status,
    rows: r.rows,
    run_id: r.runId,
    commit_id: r.commitId,
    created_at: r.createdAt.toISOString(),
    report: r.report,
  };
}

export interface StreamStateView {
  source: string;
  stream: string;
  value: unknown;
  commit_id: number;
}

export function streamStateView(s: StreamState): StreamStateView {
  return { source: s.source, stream: s.stream, value: s.value, commit_id: s.commitId };
}
