/**
 * The catalog: which tables exist, their schema versions, which files each commit added and
 * removed, source state, the processed-file ledger and run history. One contract, two
 * implementations (SQLite embedded, PostgreSQL scale-out), one contract test suite.
 *
 * A commit is ONE catalog transaction: files added and removed across any number of tables,
 * new schema versions, source state and ledger entries. Data and state advance together or
 * not at all.
 */

import type { OrchestrationStore } from './orchestration.js';
import type { RunStats } from './run-stats.js';

export type Zone = 'raw' | 'bronze' | 'silver' | 'gold' | 'quarantine';
export type FileFormat = 'parquet' | 'ndjson';
export type CommitOperation = 'append' | 'replace' | 'merge' | 'compact' | 'rollback' | 'replay' | 'state';

/** A column as DuckDB names its type (BIGINT, DOUBLE, VARCHAR, TIMESTAMP WITH TIME ZONE, …). */
export interface Column {
  name: string;
  type: string;
}

export interface TableSchema {
  columns: Column[];
}

export interface TableInfo {
  id: number;
  /** `<zone>.<table>`, e.g. `bronze.orders`. */
  name: string;
  zone: Zone;
  format: FileFormat;
  primaryKey: string[];
  createdAt: Date;
  /** Latest commit that touched this table; null before the first commit. */
  headCommit: number | null;
  /** Current schema version; null before the first commit with a schema. */
  schemaVersion: number | null;
  /** Totals over the files live at the head commit. */
  rows: number;
  files: number;
  bytes: number;
}

export interface SchemaVersion {
  table: string;
  version: number;
  schema: TableSchema;
  commitId: number;
  createdAt: Date;
}

export interface DataFile {
  id: number;
  table: string;
  path: string;
  rows: number;
  bytes: number;
  schemaVersion: number | null;
  addedCommit: number;
  removedCommit: number | null;
  /** Free-form facts about the file: source position, run id, partition values. */
  meta: Record<string, unknown>;
}

export interface NewFile {
  path: string;
  rows: number;
  bytes: number;
  meta?: Record<string, unknown>;
}

export interface TableChange {
  /** `<zone>.<table>`; created on first commit. */
  table: string;
  zone: Zone;
  format: FileFormat;
  primaryKey?: string[];
  /** The schema of the added files; recorded as a new version when it differs from the current one. */
  schema?: TableSchema;
  add: NewFile[];
  /** Paths of live files this commit removes, or 'all' for every live file (replace). */
  remove?: readonly string[] | 'all';
  /**
   * Optimistic concurrency: the head commit the writer read. The commit fails with a
   * CommitConflictError when another commit touched the table since. Omit for blind appends.
   */
  expectedHead?: number | null;
  /**
   * The schema version `schema` was evolved from. When another commit changed the table's
   * schema since, the commit fails with CommitConflictError (details.reason 'schema_changed')
   * so the writer can evolve again from the new version instead of overwriting it.
   */
  expectedSchemaVersion?: number | null;
}

export interface StateUpdate {
  pipeline: string;
  source: string;
  stream: string;
  value: unknown;
}

export interface LedgerEntry {
  pipeline: string;
  source: string;
  stream: string;
  /**
   * The input's key: its path relative to the project directory (`/` separators), or its
   * absolute path (or URI) when it lies outside the project.
   */
  path: string;
  bytes: number;
  modifiedMs: number;
  rows?: number;
  /** sha256 of the content (hex), when it was cheap to compute: a copy with a new mtime is still the same input. */
  contentHash?: string;
  /** The `_dip_source_file` its rows carry (the absolute path when it was read), when it differs from `path`. */
  sourceFile?: string;
}

/** A data quality report as the catalog keeps it (the report body is the quality module's JSON). */
export interface QualityReportInput {
  table: string;
  runId: string | null;
  /** passed | warned | failed */
  status: string;
  /** Rows the checks evaluated. */
  rows: number;
  report: Record<string, unknown>;
}

export interface QualityReportRecord extends QualityReportInput {
  id: number;
  /** The commit that landed the checked data; null when the checks failed the run. */
  commitId: number | null;
  createdAt: Date;
}

export interface CommitRequest {
  runId?: string | null;
  operation: CommitOperation;
  tables: TableChange[];
  state?: StateUpdate[];
  /**
   * Inputs this commit consumed. An entry identical (path, bytes, modifiedMs) to one already
   * committed fails the whole commit with CommitConflictError (details.reason
   * 'already_ingested'): two runs racing on one file cannot both land it.
   */
  ledger?: LedgerEntry[];
  summary?: Record<string, unknown>;
  /** Quality reports of the data this commit lands, recorded with its id. */
  qualityReports?: QualityReportInput[];
}

export interface CommitInfo {
  id: number;
  committedAt: Date;
  runId: string | null;
  operation: CommitOperation;
  tables: string[];
  summary: Record<string, unknown>;
}

/** `warned`: a `dip run` that failed no stream but landed none of a stream's records (all quarantined). */
export type RunStatus = 'queued' | 'running' | 'succeeded' | 'warned' | 'failed' | 'crashed' | 'cancelled';

export type { RunStats, StreamStats } from './run-stats.js';

export interface RunRecord {
  id: string;
  pipeline: string;
  status: RunStatus;
  startedAt: Date;
  endedAt: Date | null;
  host: string;
  pid: number;
  error: string | null;
  cause: string | null;
  stats: RunStats;
  /** Last sign of life from the run's process (start, stats update or heartbeat). */
  heartbeatAt: Date | null;
}

/** Whether (host, pid) is alive: true/false when this machine can tell, undefined when it cannot. */
export type ProcessProbe = (host: string, pid: number) => boolean | undefined;

export interface AsOf {
  commit?: number;
  at?: Date;
}

export interface Catalog {
  readonly kind: 'sqlite' | 'postgres';
  /** The orchestrator's runs, task runs, schedules and alert incidents. */
  readonly orchestration: OrchestrationStore;
  /**
   * The time by the catalog's server: this machine's clock corrected by the offset measured
   * against the database. Every process sharing a catalog judges leases, schedules and backoffs
   * by it, so a worker whose clock is off cannot take over a live task.
   */
  readonly clock: () => Date;
  /** How far this machine's clock is behind the catalog's server (ms; 0 for an embedded catalog). */
  readonly clockOffsetMs: number;
  close(): Promise<void>;

  getTable(name: string): Promise<TableInfo | undefined>;
  listTables(): Promise<TableInfo[]>;
  listSchemaVersions(table: string): Promise<SchemaVersion[]>;

  /** Applies the whole request in one transaction and returns the new commit. */
  commit(request: CommitRequest): Promise<CommitInfo>;
  getCommit(id: number): Promise<CommitInfo | undefined>;
  /** Newest first. */
  listCommits(options?: { table?: string; limit?: number }): Promise<CommitInfo[]>;
  /** The newest commit at or before the given commit id / time; undefined when there is none. */
  resolveAsOf(asOf: AsOf): Promise<number | undefined>;
  /** Files of the table live at the given commit (default: now), in the order they were added. */
  liveFiles(table: string, asOfCommit?: number): Promise<DataFile[]>;
  /** The schema version in force at a commit (default: now). */
  schemaAt(table: string, asOfCommit?: number): Promise<SchemaVersion | undefined>;

  /** Every path any file row references (live or historical): what GC must keep. */
  referencedPaths(): Promise<Set<string>>;
  /**
   * Forgets files removed by commits older than `before` (their time travel ends) and returns
   * the paths no remaining file row references, for the caller to delete from storage.
   * `dryRun`: forgets nothing and returns exactly the paths a real call would return.
   */
  expireRemovedFiles(before: Date, options?: { dryRun?: boolean }): Promise<string[]>;
  /**
   * The oldest commit whose snapshot is still complete after expiry (0 when nothing was ever
   * expired): time travel and rollback to older commits must be refused.
   */
  historyHorizon(): Promise<number>;

  getState(pipeline: string, source: string, stream: string): Promise<unknown>;
  /** Every stream state of a pipeline, with the commit that last set it. */
  listStates(pipeline: string): Promise<{ source: string; stream: string; value: unknown; commitId: number }[]>;
  /** Ledger entries of one stream, keyed by path. */
  getLedger(pipeline: string, source: string, stream: string): Promise<Map<string, LedgerEntry>>;

  /** Records a quality report outside any commit (the checks failed the run, so nothing landed). */
  saveQualityReport(report: QualityReportInput): Promise<QualityReportRecord>;
  /** Newest first. */
  listQualityReports(table: string, options?: { limit?: number }): Promise<QualityReportRecord[]>;

  startRun(run: { id: string; pipeline: string; host: string; pid: number }): Promise<RunRecord>;
  updateRunStats(id: string, stats: RunStats): Promise<void>;
  finishRun(
    id: string,
    outcome: { status: Exclude<RunStatus, 'running'>; error?: string | null; cause?: string | null; stats: RunStats },
  ): Promise<void>;
  /** Records that a running run's process is alive. */
  heartbeat(id: string): Promise<void>;
  /**
   * Marks runs still 'running' whose process is gone as 'crashed': gone by `isAlive`, or, where
   * it cannot tell (another host), silent for longer than `staleAfterMs`. Returns how many.
   */
  markCrashedRuns(isAlive: ProcessProbe, options?: { staleAfterMs?: number }): Promise<number>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** Newest first. */
  /** Newest first; `offset` skips that many (paging through the whole history). */
  listRuns(options?: { pipeline?: string; limit?: number; offset?: number }): Promise<RunRecord[]>;
}
