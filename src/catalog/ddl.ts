import { isAbsolute, relative, sep } from 'node:path';
import type { SqlExecutor } from './driver.js';

/** What a migration step that rewrites data may need to know about the catalog's opener. */
export interface MigrationContext {
  /** The project directory of the process opening the catalog, when it has one. */
  projectDir?: string | undefined;
}

/** A migration step: SQL (`{id}` becomes the dialect's auto-increment key column), or code that rewrites data. */
export type MigrationStep = string | ((tx: SqlExecutor, ctx: MigrationContext) => Promise<void>);

/**
 * The key of an input in the processed-file ledger: its path relative to the project
 * directory (with `/` separators), so a project that is moved, copied or mounted elsewhere
 * keeps its ledger; an input outside the project keeps its absolute path.
 */
export function ledgerKey(path: string, projectDir: string): string {
  const rel = relative(projectDir, path);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return path;
  return sep === '/' ? rel : rel.split(sep).join('/');
}

/**
 * Ledger keys relative to the project (issue 14, item 1). Earlier versions keyed inputs by
 * absolute path, so a moved project re-ingested everything. Adds the content hash and the
 * `_dip_source_file` the rows were recorded with (a changed input supersedes rows by it),
 * then rewrites the absolute keys under the opener's project directory to relative ones.
 * Self-contained: renumbering it (moving it later in MIGRATIONS) needs no other change.
 */
export const LEDGER_RELATIVE_KEYS: readonly MigrationStep[] = [
  `ALTER TABLE dip_ledger ADD COLUMN content_hash TEXT`,
  `ALTER TABLE dip_ledger ADD COLUMN source_file TEXT`,
  async (tx, ctx) => {
    if (!ctx.projectDir) return;
    const rows = await tx.query(`SELECT pipeline, source, stream, path FROM dip_ledger`);
    for (const r of rows) {
      const path = String(r['path']);
      if (!isAbsolute(path)) continue;
      const key = ledgerKey(path, ctx.projectDir);
      if (key === path) continue;
      const id = [r['pipeline'] as string, r['source'] as string, r['stream'] as string];
      const taken = await tx.query(
        `SELECT 1 FROM dip_ledger WHERE pipeline = ? AND source = ? AND stream = ? AND path = ?`,
        [...id, key],
      );
      if (taken.length > 0) continue;
      await tx.execute(
        `UPDATE dip_ledger SET path = ?, source_file = ? WHERE pipeline = ? AND source = ? AND stream = ? AND path = ?`,
        [key, path, ...id, path],
      );
    }
  },
];

/**
 * The alert outbox (issue 21, item 9): deliveries that failed wait here to be re-sent, so an
 * alert survives its receiver and its sender being down. Self-contained, like the one above.
 */
export const ALERT_OUTBOX: readonly MigrationStep[] = [
  `CREATE TABLE IF NOT EXISTS dip_alert_outbox (
    id {id},
    alert TEXT NOT NULL,
    channel TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    next_at TEXT NOT NULL,
    last_error TEXT
  )`,
  `CREATE INDEX IF NOT EXISTS dip_alert_outbox_next ON dip_alert_outbox (next_at)`,
];

/** Catalog schema, versioned: each entry is one version's steps, applied in order. */
export const MIGRATIONS: readonly (readonly MigrationStep[])[] = [
  [
    `CREATE TABLE IF NOT EXISTS dip_tables (
      id {id},
      name TEXT NOT NULL UNIQUE,
      zone TEXT NOT NULL,
      format TEXT NOT NULL,
      primary_key TEXT NOT NULL,
      created_at TEXT NOT NULL,
      head_commit BIGINT,
      schema_version INTEGER
    )`,
    `CREATE TABLE IF NOT EXISTS dip_commits (
      id {id},
      committed_at TEXT NOT NULL,
      run_id TEXT,
      operation TEXT NOT NULL,
      summary TEXT NOT NULL
    )`,
    `CREATE TABLE IF NOT EXISTS dip_commit_tables (
      commit_id BIGINT NOT NULL,
      table_id BIGINT NOT NULL,
      PRIMARY KEY (commit_id, table_id)
    )`,
    `CREATE INDEX IF NOT EXISTS dip_commit_tables_table ON dip_commit_tables (table_id, commit_id)`,
    `CREATE TABLE IF NOT EXISTS dip_schema_versions (
      table_id BIGINT NOT NULL,
      version INTEGER NOT NULL,
      schema_json TEXT NOT NULL,
      commit_id BIGINT NOT NULL,
      created_at TEXT NOT NULL,
      PRIMARY KEY (table_id, version)
    )`,
    `CREATE TABLE IF NOT EXISTS dip_files (
      id {id},
      table_id BIGINT NOT NULL,
      path TEXT NOT NULL,
      rows BIGINT NOT NULL,
      bytes BIGINT NOT NULL,
      schema_version INTEGER,
      added_commit BIGINT NOT NULL,
      removed_commit BIGINT,
      meta TEXT NOT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS dip_files_live ON dip_files (table_id, removed_commit, added_commit)`,
    `CREATE INDEX IF NOT EXISTS dip_files_path ON dip_files (path)`,
    `CREATE TABLE IF NOT EXISTS dip_state (
      pipeline TEXT NOT NULL,
      source TEXT NOT NULL,
      stream TEXT NOT NULL,
      value TEXT NOT NULL,
      commit_id BIGINT NOT NULL,
      PRIMARY KEY (pipeline, source, stream)
    )`,
    `CREATE TABLE IF NOT EXISTS dip_ledger (
      pipeline TEXT NOT NULL,
      source TEXT NOT NULL,
      stream TEXT NOT NULL,
      path TEXT NOT NULL,
      bytes BIGINT NOT NULL,
      modified_ms BIGINT NOT NULL,
      rows BIGINT,
      commit_id BIGINT NOT NULL,
      PRIMARY KEY (pipeline, source, stream, path)
    )`,
    `CREATE TABLE IF NOT EXISTS dip_runs (
      id TEXT PRIMARY KEY,
      pipeline TEXT NOT NULL,
      status TEXT NOT NULL,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      host TEXT NOT NULL,
      pid INTEGER NOT NULL,
      error TEXT,
      cause TEXT,
      stats TEXT NOT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS dip_runs_pipeline ON dip_runs (pipeline, started_at)`,
  ],
  [`ALTER TABLE dip_runs ADD COLUMN heartbeat_at TEXT`],
  [
    `CREATE TABLE IF NOT EXISTS dip_quality_reports (
      id {id},
      table_name TEXT NOT NULL,
      run_id TEXT,
      commit_id BIGINT,
      created_at TEXT NOT NULL,
      status TEXT NOT NULL,
      rows BIGINT NOT NULL,
      report TEXT NOT NULL
    )`,
    `CREATE INDEX IF NOT EXISTS dip_quality_reports_table ON dip_quality_reports (table_name, id)`,
  ],
  // The orchestrator: runs for data intervals, their task runs (a DAG), attempts, schedules, alerts.
  [
    `ALTER TABLE dip_runs ADD COLUMN orchestrated INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE dip_runs ADD COLUMN trigger_kind TEXT`,
    `ALTER TABLE dip_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE dip_runs ADD COLUMN interval_start TEXT`,
    `ALTER TABLE dip_runs ADD COLUMN interval_end TEXT`,
    `ALTER TABLE dip_runs ADD COLUMN queued_at TEXT`,
    `ALTER TABLE dip_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0`,
    `ALTER TABLE dip_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1`,
    `ALTER TABLE dip_runs ADD COLUMN backfill_id TEXT`,
    `ALTER TABLE dip_runs ADD COLUMN max_parallel INTEGER`,
    `ALTER TABLE dip_runs ADD COLUMN max_active INTEGER NOT NULL DEFAULT 1`,
    `ALTER TABLE dip_runs ADD COLUMN max_tasks INTEGER`,
    `CREATE INDEX IF NOT EXISTS dip_runs_queue ON dip_runs (status, pipeline, priority DESC, interval_start, queued_at)`,
    `CREATE INDEX IF NOT EXISTS dip_runs_backfill ON dip_runs (backfill_id, status, interval_start)`,
    `CREATE TABLE IF NOT EXISTS dip_task_runs (
      run_id TEXT NOT NULL,
      task TEXT NOT NULL,
      status TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      attempt_floor INTEGER NOT NULL DEFAULT 0,
      max_attempts INTEGER NOT NULL,
      deps TEXT NOT NULL,
      waiting INTEGER NOT NULL,
      pool TEXT,
      mutex TEXT,
      priority INTEGER NOT NULL,
      seq BIGINT NOT NULL,
      not_before TEXT,
      lease_owner TEXT,
      lease_expires TEXT,
      started_at TEXT,
      ended_at TEXT,
      rows BIGINT NOT NULL DEFAULT 0,
      error TEXT,
      cause TEXT,
      stats TEXT,
      PRIMARY KEY (run_id, task)
    )`,
    `CREATE INDEX IF NOT EXISTS dip_task_runs_ready ON dip_task_runs (status, priority DESC, seq)`,
    `CREATE INDEX IF NOT EXISTS dip_task_runs_seq ON dip_task_runs (seq)`,
    `CREATE INDEX IF NOT EXISTS dip_task_runs_run_status ON dip_task_runs (run_id, status)`,
    `CREATE INDEX IF NOT EXISTS dip_task_runs_pool ON dip_task_runs (pool, status)`,
    `CREATE INDEX IF NOT EXISTS dip_task_runs_mutex ON dip_task_runs (mutex, status)`,
    `CREATE TABLE IF NOT EXISTS dip_task_deps (
      run_id TEXT NOT NULL,
      upstream TEXT NOT NULL,
      task TEXT NOT NULL,
      PRIMARY KEY (run_id, upstream, task)
    )`,
    `CREATE TABLE IF NOT EXISTS dip_task_attempts (
      run_id TEXT NOT NULL,
      task TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      status TEXT NOT NULL,
      worker TEXT NOT NULL,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      rows BIGINT NOT NULL DEFAULT 0,
      error TEXT,
      cause TEXT,
      log TEXT NOT NULL DEFAULT '',
      PRIMARY KEY (run_id, task, attempt)
    )`,
    `CREATE TABLE IF NOT EXISTS dip_schedules (
      pipeline TEXT PRIMARY KEY,
      last_end TEXT,
      trigger_state TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`,
    `CREATE TABLE IF NOT EXISTS dip_alerts (
      alert_key TEXT PRIMARY KEY,
      first_at TEXT NOT NULL,
      last_sent_at TEXT NOT NULL,
      sent INTEGER NOT NULL,
      suppressed INTEGER NOT NULL
    )`,
  ],
  // Attempts carry their error kind, and a sequence in commit order (catalog transactions are
  // serialized), so observers such as /metrics read every ended attempt once, whoever ran it.
  [
    `ALTER TABLE dip_task_attempts ADD COLUMN error_kind TEXT`,
    `ALTER TABLE dip_task_attempts ADD COLUMN ended_seq BIGINT`,
    `CREATE INDEX IF NOT EXISTS dip_task_attempts_ended_seq ON dip_task_attempts (ended_seq)`,
  ],
  LEDGER_RELATIVE_KEYS,
  ALERT_OUTBOX,
];

export function idColumn(dialect: 'sqlite' | 'postgres'): string {
  return dialect === 'sqlite'
    ? 'INTEGER PRIMARY KEY AUTOINCREMENT'
    : 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY';
}
