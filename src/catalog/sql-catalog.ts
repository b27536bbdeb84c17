/** Over 400 lines: the one SQL implementation of the Catalog contract for both dialects, kept whole so its contract suite covers one file. */
import { CommitConflictError, DipError } from '../core/errors.js';
import { MIGRATIONS, idColumn, type MigrationContext } from './ddl.js';
import { OrchestrationStore } from './orchestration.js';
import { num, numOrNull, str, strOrNull } from './values.js';
import type { Row, SqlDriver, SqlExecutor } from './driver.js';
import type {
  AsOf,
  Catalog,
  CommitInfo,
  CommitOperation,
  CommitRequest,
  DataFile,
  FileFormat,
  LedgerEntry,
  ProcessProbe,
  QualityReportInput,
  QualityReportRecord,
  RunRecord,
  RunStats,
  RunStatus,
  SchemaVersion,
  TableChange,
  TableInfo,
  TableSchema,
  Zone,
} from './types.js';

const now = (): string => new Date().toISOString();
/** A run on another host that has not reported for this long is taken for dead. */
const DEFAULT_STALE_MS = 5 * 60_000;

const TABLE_COLUMNS = `t.id, t.name, t.zone, t.format, t.primary_key, t.created_at, t.head_commit, t.schema_version,
  COALESCE(s.rows, 0) AS total_rows, COALESCE(s.files, 0) AS total_files, COALESCE(s.bytes, 0) AS total_bytes`;
const TABLE_FROM = `dip_tables t LEFT JOIN (
  SELECT table_id, SUM(rows) AS rows, COUNT(*) AS files, SUM(bytes) AS bytes
  FROM dip_files WHERE removed_commit IS NULL GROUP BY table_id) s ON s.table_id = t.id`;

/** The catalog over any SQL database a SqlDriver speaks to (SQLite, PostgreSQL). */
export class SqlCatalog implements Catalog {
  readonly kind: 'sqlite' | 'postgres';
  protected readonly db: SqlDriver;

  readonly orchestration: OrchestrationStore;
  readonly clock = (): Date => new Date(Date.now() + this.clockOffsetMs);
  get clockOffsetMs(): number {
    return 0;
  }

  protected constructor(db: SqlDriver) {
    this.db = db;
    this.kind = db.dialect;
    this.orchestration = new OrchestrationStore(db);
  }

  protected async migrate(ctx: MigrationContext = {}): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.execute(`CREATE TABLE IF NOT EXISTS dip_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      const rows = await tx.query(`SELECT value FROM dip_meta WHERE key = 'schema_version'`);
      const current = rows[0] ? Number(rows[0]['value']) : 0;
      // An older dip on a newer catalog would write rows without the columns newer code relies on.
      if (current > MIGRATIONS.length) {
        throw new DipError(
          'config',
          `the catalog's schema is version ${current}, newer than this dip knows (version ${MIGRATIONS.length}): a newer dip upgraded it; upgrade this installation (every process sharing a catalog must run the same dip version or newer)`,
        );
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        for (const step of MIGRATIONS[v] ?? []) {
          if (typeof step === 'string') await tx.execute(step.replaceAll('{id}', idColumn(this.db.dialect)));
          else await step(tx, ctx);
        }
      }
      if (current < MIGRATIONS.length) {
        await tx.execute(
          `INSERT INTO dip_meta (key, value) VALUES ('schema_version', ?)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
          [String(MIGRATIONS.length)],
        );
      }
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async getTable(name: string): Promise<TableInfo | undefined> {
    const rows = await this.db.query(`SELECT ${TABLE_COLUMNS} FROM ${TABLE_FROM} WHERE t.name = ?`, [name]);
    return rows[0] ? toTable(rows[0]) : undefined;
  }

  async listTables(): Promise<TableInfo[]> {
    const rows = await this.db.query(`SELECT ${TABLE_COLUMNS} FROM ${TABLE_FROM} ORDER BY t.name`);
    return rows.map(toTable);
  }

  async listSchemaVersions(table: string): Promise<SchemaVersion[]> {
    const rows = await this.db.query(
      `SELECT v.*, t.name FROM dip_schema_versions v JOIN dip_tables t ON t.id = v.table_id
       WHERE t.name = ? ORDER BY v.version`,
      [table],
    );
    return rows.map(toSchemaVersion);
  }

  async schemaAt(table: string, asOfCommit?: number): Promise<SchemaVersion | undefined> {
    const rows = await this.db.query(
      `SELECT v.*, t.name FROM dip_schema_versions v JOIN dip_tables t ON t.id = v.table_id
       WHERE t.name = ? AND v.commit_id <= ? ORDER BY v.version DESC LIMIT 1`,
      [table, asOfCommit ?? Number.MAX_SAFE_INTEGER],
    );
    return rows[0] ? toSchemaVersion(rows[0]) : undefined;
  }

  async commit(request: CommitRequest): Promise<CommitInfo> {
    if (
      request.tables.length === 0 &&
      !request.state?.length &&
      !request.ledger?.length &&
      !request.qualityReports?.length
    ) {
      throw new DipError('internal', 'a commit must change at least one table, state or ledger entry');
    }
    return this.db.transaction(async (tx) => {
      // The database's clock, never earlier than the previous commit's: with writers on many
      // hosts, commit times must follow commit order for --as-of <time> to be a consistent cut.
      const clock = await tx.query(
        `SELECT ${this.db.nowSql} AS now, (SELECT MAX(committed_at) FROM dip_commits) AS last`,
      );
      const dbNow = str(clock[0]?.['now']);
      const last = strOrNull(clock[0]?.['last']);
      const committedAt = last !== null && last > dbNow ? last : dbNow;
      const inserted = await tx.query(
        `INSERT INTO dip_commits (committed_at, run_id, operation, summary) VALUES (?, ?, ?, ?) RETURNING id`,
        [committedAt, request.runId ?? null, request.operation, JSON.stringify(request.summary ?? {})],
      );
      const commitId = num(inserted[0]?.['id']);
      for (const change of request.tables) await applyTableChange(tx, commitId, change);
      for (const s of request.state ?? []) {
        await tx.execute(
          `INSERT INTO dip_state (pipeline, source, stream, value, commit_id) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (pipeline, source, stream) DO UPDATE SET value = excluded.value, commit_id = excluded.commit_id`,
          [s.pipeline, s.source, s.stream, JSON.stringify(s.value ?? null), commitId],
        );
      }
      for (const l of request.ledger ?? []) {
        const seen = await tx.query(
          `SELECT commit_id FROM dip_ledger WHERE pipeline = ? AND source = ? AND stream = ? AND path = ? AND bytes = ? AND modified_ms = ?`,
          [l.pipeline, l.source, l.stream, l.path, l.bytes, Math.trunc(l.modifiedMs)],
        );
        if (seen[0]) {
          // Another run committed this very input first: committing it again would duplicate it.
          throw new CommitConflictError(`${l.path} was already ingested by commit ${num(seen[0]['commit_id'])}`, {
            path: l.path,
            commit: num(seen[0]['commit_id']),
            reason: 'already_ingested',
          });
        }
        await tx.execute(
          `INSERT INTO dip_ledger (pipeline, source, stream, path, bytes, modified_ms, rows, commit_id, content_hash, source_file)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (pipeline, source, stream, path) DO UPDATE SET bytes = excluded.bytes,
             modified_ms = excluded.modified_ms, rows = excluded.rows, commit_id = excluded.commit_id,
             content_hash = excluded.content_hash, source_file = excluded.source_file`,
          [
            l.pipeline,
            l.source,
            l.stream,
            l.path,
            l.bytes,
            Math.trunc(l.modifiedMs),
            l.rows ?? null,
            commitId,
            l.contentHash ?? null,
            l.sourceFile ?? null,
          ],
        );
      }
      for (const q of request.qualityReports ?? []) await insertQualityReport(tx, q, commitId);
      return {
        id: commitId,
        committedAt: new Date(committedAt),
        runId: request.runId ?? null,
        operation: request.operation,
        tables: request.tables.map((t) => t.table),
        summary: request.summary ?? {},
      };
    });
  }

  async getCommit(id: number): Promise<CommitInfo | undefined> {
    const rows = await this.db.query(`SELECT * FROM dip_commits WHERE id = ?`, [id]);
    if (!rows[0]) return undefined;
    return (await this.withTables(rows))[0];
  }

  async listCommits(options: { table?: string; limit?: number } = {}): Promise<CommitInfo[]> {
    const limit = options.limit ?? 100;
    const rows = options.table
      ? await this.db.query(
          `SELECT c.* FROM dip_commits c JOIN dip_commit_tables ct ON ct.commit_id = c.id
           JOIN dip_tables t ON t.id = ct.table_id WHERE t.name = ? ORDER BY c.id DESC LIMIT ?`,
          [options.table, limit],
        )
      : await this.db.query(`SELECT * FROM dip_commits ORDER BY id DESC LIMIT ?`, [limit]);
    return this.withTables(rows);
  }

  async resolveAsOf(asOf: AsOf): Promise<number | undefined> {
    const rows = asOf.at
      ? await this.db.query(`SELECT MAX(id) AS id FROM dip_commits WHERE id <= ? AND committed_at <= ?`, [
          asOf.commit ?? Number.MAX_SAFE_INTEGER,
          asOf.at.toISOString(),
        ])
      : await this.db.query(`SELECT MAX(id) AS id FROM dip_commits WHERE id <= ?`, [
          asOf.commit ?? Number.MAX_SAFE_INTEGER,
        ]);
    return numOrNull(rows[0]?.['id']) ?? undefined;
  }

  async liveFiles(table: string, asOfCommit?: number): Promise<DataFile[]> {
    const rows =
      asOfCommit === undefined
        ? await this.db.query(
            `SELECT f.*, t.name FROM dip_files f JOIN dip_tables t ON t.id = f.table_id
             WHERE t.name = ? AND f.removed_commit IS NULL ORDER BY f.added_commit, f.id`,
            [table],
          )
        : await this.db.query(
            `SELECT f.*, t.name FROM dip_files f JOIN dip_tables t ON t.id = f.table_id
             WHERE t.name = ? AND f.added_commit <= ? AND (f.removed_commit IS NULL OR f.removed_commit > ?)
             ORDER BY f.added_commit, f.id`,
            [table, asOfCommit, asOfCommit],
          );
    return rows.map(toDataFile);
  }

  async referencedPaths(): Promise<Set<string>> {
    const rows = await this.db.query(`SELECT DISTINCT path FROM dip_files`);
    return new Set(rows.map((r) => str(r['path'])));
  }

  async expireRemovedFiles(before: Date, options: { dryRun?: boolean } = {}): Promise<string[]> {
    if (options.dryRun) {
      // The paths of rows removed before the cut-off that no row outside it still references.
      const rows = await this.db.query(
        `SELECT DISTINCT f.path FROM dip_files f JOIN dip_commits c ON c.id = f.removed_commit
         WHERE c.committed_at < ? AND NOT EXISTS (
           SELECT 1 FROM dip_files g LEFT JOIN dip_commits gc ON gc.id = g.removed_commit
           WHERE g.path = f.path AND (g.removed_commit IS NULL OR gc.committed_at >= ?))`,
        [before.toISOString(), before.toISOString()],
      );
      return rows.map((r) => str(r['path']));
    }
    return this.db.transaction(async (tx) => {
      const expired = await tx.query(
        `SELECT DISTINCT f.path FROM dip_files f JOIN dip_commits c ON c.id = f.removed_commit
         WHERE c.committed_at < ?`,
        [before.toISOString()],
      );
      if (expired.length === 0) return [];
      await tx.execute(
        `DELETE FROM dip_files WHERE removed_commit IN (SELECT id FROM dip_commits WHERE committed_at < ?)`,
        [before.toISOString()],
      );
      const newest = await tx.query(`SELECT MAX(id) AS id FROM dip_commits WHERE committed_at < ?`, [
        before.toISOString(),
      ]);
      await tx.execute(
        `INSERT INTO dip_meta (key, value) VALUES ('history_horizon', ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(Math.max(num(newest[0]?.['id']), await this.horizonIn(tx)))],
      );
      const paths = expired.map((r) => str(r['path']));
      const stillReferenced = new Set<string>();
      for (let i = 0; i < paths.length; i += 500) {
        const chunk = paths.slice(i, i + 500);
        const rows = await tx.query(
          `SELECT DISTINCT path FROM dip_files WHERE path IN (${chunk.map(() => '?').join(',')})`,
          chunk,
        );
        for (const r of rows) stillReferenced.add(str(r['path']));
      }
      return paths.filter((p) => !stillReferenced.has(p));
    });
  }

  async historyHorizon(): Promise<number> {
    return this.horizonIn(this.db);
  }

  private async horizonIn(db: SqlExecutor): Promise<number> {
    const rows = await db.query(`SELECT value FROM dip_meta WHERE key = 'history_horizon'`);
    return rows[0] ? Number(rows[0]['value']) : 0;
  }

  async getState(pipeline: string, source: string, stream: string): Promise<unknown> {
    const rows = await this.db.query(`SELECT value FROM dip_state WHERE pipeline = ? AND source = ? AND stream = ?`, [
      pipeline,
      source,
      stream,
    ]);
    return rows[0] ? JSON.parse(str(rows[0]['value'])) : undefined;
  }

  async listStates(pipeline: string): Promise<{ source: string; stream: string; value: unknown; commitId: number }[]> {
    const rows = await this.db.query(
      `SELECT source, stream, value, commit_id FROM dip_state WHERE pipeline = ? ORDER BY source, stream`,
      [pipeline],
    );
    return rows.map((r) => ({
      source: str(r['source']),
      stream: str(r['stream']),
      value: JSON.parse(str(r['value'])),
      commitId: Number(r['commit_id']),
    }));
  }

  async getLedger(pipeline: string, source: string, stream: string): Promise<Map<string, LedgerEntry>> {
    const rows = await this.db.query(`SELECT * FROM dip_ledger WHERE pipeline = ? AND source = ? AND stream = ?`, [
      pipeline,
      source,
      stream,
    ]);
    const out = new Map<string, LedgerEntry>();
    for (const r of rows) {
      const entry: LedgerEntry = {
        pipeline,
        source,
        stream,
        path: str(r['path']),
        bytes: num(r['bytes']),
        modifiedMs: num(r['modified_ms']),
      };
      const rowCount = numOrNull(r['rows']);
      if (rowCount !== null) entry.rows = rowCount;
      const hash = strOrNull(r['content_hash'] ?? null);
      if (hash !== null) entry.contentHash = hash;
      const sourceFile = strOrNull(r['source_file'] ?? null);
      if (sourceFile !== null) entry.sourceFile = sourceFile;
      out.set(entry.path, entry);
    }
    return out;
  }

  async saveQualityReport(report: QualityReportInput): Promise<QualityReportRecord> {
    return this.db.transaction((tx) => insertQualityReport(tx, report, null));
  }

  async listQualityReports(table: string, options: { limit?: number } = {}): Promise<QualityReportRecord[]> {
    const rows = await this.db.query(
      `SELECT * FROM dip_quality_reports WHERE table_name = ? ORDER BY id DESC LIMIT ?`,
      [table, options.limit ?? 20],
    );
    return rows.map(toQualityReport);
  }

  async startRun(run: { id: string; pipeline: string; host: string; pid: number }): Promise<RunRecord> {
    const startedAt = this.clock().toISOString();
    const stats: RunStats = { streams: {} };
    await this.db.execute(
      `INSERT INTO dip_runs (id, pipeline, status, started_at, host, pid, stats, heartbeat_at) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)`,
      [run.id, run.pipeline, startedAt, run.host, run.pid, JSON.stringify(stats), startedAt],
    );
    return {
      ...run,
      status: 'running',
      startedAt: new Date(startedAt),
      endedAt: null,
      error: null,
      cause: null,
      stats,
      heartbeatAt: new Date(startedAt),
    };
  }

  async updateRunStats(id: string, stats: RunStats): Promise<void> {
    await this.db.execute(`UPDATE dip_runs SET stats = ?, heartbeat_at = ? WHERE id = ?`, [
      JSON.stringify(stats),
      this.clock().toISOString(),
      id,
    ]);
  }

  async heartbeat(id: string): Promise<void> {
    await this.db.execute(`UPDATE dip_runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'`, [
      this.clock().toISOString(),
      id,
    ]);
  }

  async finishRun(
    id: string,
    outcome: { status: Exclude<RunStatus, 'running'>; error?: string | null; cause?: string | null; stats: RunStats },
  ): Promise<void> {
    await this.db.execute(
      `UPDATE dip_runs SET status = ?, ended_at = ?, error = ?, cause = ?, stats = ? WHERE id = ?`,
      [
        outcome.status,
        this.clock().toISOString(),
        outcome.error ?? null,
        outcome.cause ?? null,
        JSON.stringify(outcome.stats),
        id,
      ],
    );
  }

  async markCrashedRuns(isAlive: ProcessProbe, options: { staleAfterMs?: number } = {}): Promise<number> {
    const running = await this.db.query(
      `SELECT id, host, pid, started_at, heartbeat_at, stats FROM dip_runs WHERE status = 'running' AND orchestrated = 0`,
    );
    const staleBefore = this.clock().getTime() - (options.staleAfterMs ?? DEFAULT_STALE_MS);
    let marked = 0;
    for (const r of running) {
      const alive = isAlive(str(r['host']), num(r['pid']));
      const lastSign = Date.parse(str(r['heartbeat_at'] ?? r['started_at']));
      if (alive === true || (alive === undefined && lastSign >= staleBefore)) continue;
      // Stats are saved per finished stream: what a stream committed before the process died
      // is known only from its commits, so the crashed run reports exactly those.
      const id = str(r['id']);
      const stats = await this.committedRunStats(id, JSON.parse(str(r['stats'] ?? '{"streams":{}}')) as RunStats);
      marked += await this.db.execute(
        `UPDATE dip_runs SET status = 'crashed', ended_at = ?, error = ?, stats = ? WHERE id = ? AND status = 'running'`,
        [
          this.clock().toISOString(),
          'the process ended before the run finished (killed or crashed); uncommitted work was discarded',
          JSON.stringify(stats),
          id,
        ],
      );
    }
    return marked;
  }

  /** A run's stream stats with rows, quarantined records, inputs and commits taken from what its commits landed. */
  private async committedRunStats(runId: string, saved: RunStats): Promise<RunStats> {
    const commits = await this.db.query(
      `SELECT operation, summary FROM dip_commits WHERE run_id = ? AND operation <> 'state'`,
      [runId],
    );
    const streams: RunStats['streams'] = { ...saved.streams };
    const committed = new Map<string, { rows: number; quarantined: number; files: number; commits: number }>();
    for (const c of commits) {
      const summary = JSON.parse(str(c['summary'])) as Record<string, unknown>;
      if (typeof summary['source'] !== 'string' || typeof summary['stream'] !== 'string') continue;
      const key = `${summary['source']}.${summary['stream']}`;
      const n = committed.get(key) ?? { rows: 0, quarantined: 0, files: 0, commits: 0 };
      n.rows += Number(summary['rows'] ?? 0);
      n.quarantined += Number(summary['quarantined'] ?? 0);
      n.files += Array.isArray(summary['inputs']) ? summary['inputs'].length : 0;
      n.commits += 1;
      committed.set(key, n);
    }
    for (const [key, n] of committed) {
      const before = streams[key] ?? { rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 0 };
      streams[key] = { ...before, ...n };
    }
    return { ...saved, streams };
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const rows = await this.db.query(`SELECT * FROM dip_runs WHERE id = ?`, [id]);
    return rows[0] ? toRun(rows[0]) : undefined;
  }

  async listRuns(options: { pipeline?: string; limit?: number; offset?: number } = {}): Promise<RunRecord[]> {
    const limit = options.limit ?? 50;
    const offset = options.offset ?? 0;
    const rows = options.pipeline
      ? await this.db.query(
          `SELECT * FROM dip_runs WHERE pipeline = ? ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?`,
          [options.pipeline, limit, offset],
        )
      : await this.db.query(`SELECT * FROM dip_runs ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?`, [
          limit,
          offset,
        ]);
    return rows.map(toRun);
  }

  private async withTables(rows: Row[]): Promise<CommitInfo[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((r) => num(r['id']));
    const links = await this.db.query(
      `SELECT ct.commit_id, t.name FROM dip_commit_tables ct JOIN dip_tables t ON t.id = ct.table_id
       WHERE ct.commit_id IN (${ids.map(() => '?').join(',')}) ORDER BY t.name`,
      ids,
    );
    const byCommit = new Map<number, string[]>();
    for (const l of links) {
      const id = num(l['commit_id']);
      byCommit.set(id, [...(byCommit.get(id) ?? []), str(l['name'])]);
    }
    return rows.map((r) => ({
      id: num(r['id']),
      committedAt: new Date(str(r['committed_at'])),
      runId: strOrNull(r['run_id']),
      operation: str(r['operation']) as CommitOperation,
      tables: byCommit.get(num(r['id'])) ?? [],
      summary: JSON.parse(str(r['summary'])) as Record<string, unknown>,
    }));
  }
}

async function insertQualityReport(
  tx: SqlExecutor,
  q: QualityReportInput,
  commitId: number | null,
): Promise<QualityReportRecord> {
  const rows = await tx.query(
    `INSERT INTO dip_quality_reports (table_name, run_id, commit_id, created_at, status, rows, report) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    [q.table, q.runId, commitId, now(), q.status, q.rows, JSON.stringify(q.report)],
  );
  return toQualityReport(rows[0] as Row);
}

function toQualityReport(r: Row): QualityReportRecord {
  return {
    id: num(r['id']),
    table: str(r['table_name']),
    runId: strOrNull(r['run_id']),
    commitId: numOrNull(r['commit_id']),
    createdAt: new Date(str(r['created_at'])),
    status: str(r['status']),
    rows: num(r['rows']),
    report: JSON.parse(str(r['report'])) as Record<string, unknown>,
  };
}

async function applyTableChange(tx: SqlExecutor, commitId: number, change: TableChange): Promise<void> {
  let rows = await tx.query(
    `SELECT id, zone, format, head_commit, schema_version, primary_key FROM dip_tables WHERE name = ?`,
    [change.table],
  );
  if (!rows[0]) {
    rows = await tx.query(
      `INSERT INTO dip_tables (name, zone, format, primary_key, created_at) VALUES (?, ?, ?, ?, ?)
       RETURNING id, zone, format, head_commit, schema_version, primary_key`,
      [change.table, change.zone, change.format, JSON.stringify(change.primaryKey ?? []), now()],
    );
  }
  const table = rows[0] as Row;
  const tableId = num(table['id']);
  const head = numOrNull(table['head_commit']);
  if (str(table['format']) !== change.format || str(table['zone']) !== change.zone) {
    throw new DipError(
      'conflict',
      `table ${change.table} holds ${str(table['zone'])}/${str(table['format'])} files; this commit adds ${change.zone}/${change.format}`,
    );
  }
  if (change.expectedHead !== undefined && change.expectedHead !== head) {
    throw new CommitConflictError(
      `table ${change.table} changed since it was read (head commit ${head ?? 'none'}, expected ${change.expectedHead ?? 'none'}); retry the operation`,
      { table: change.table, head, expected: change.expectedHead },
    );
  }

  let version = numOrNull(table['schema_version']);
  if (change.expectedSchemaVersion !== undefined && change.expectedSchemaVersion !== version) {
    throw new CommitConflictError(
      `the schema of ${change.table} changed since it was read (version ${version ?? 'none'}, expected ${change.expectedSchemaVersion ?? 'none'})`,
      { table: change.table, version, expected: change.expectedSchemaVersion, reason: 'schema_changed' },
    );
  }
  if (change.schema) {
    const text = JSON.stringify(change.schema);
    const current =
      version === null
        ? undefined
        : await tx.query(`SELECT schema_json FROM dip_schema_versions WHERE table_id = ? AND version = ?`, [
            tableId,
            version,
          ]);
    if (!current?.[0] || str(current[0]['schema_json']) !== text) {
      version = (version ?? 0) + 1;
      await tx.execute(
        `INSERT INTO dip_schema_versions (table_id, version, schema_json, commit_id, created_at) VALUES (?, ?, ?, ?, ?)`,
        [tableId, version, text, commitId, now()],
      );
    }
  }

  if (change.remove === 'all') {
    await tx.execute(`UPDATE dip_files SET removed_commit = ? WHERE table_id = ? AND removed_commit IS NULL`, [
      commitId,
      tableId,
    ]);
  } else {
    for (const path of change.remove ?? []) {
      const changed = await tx.execute(
        `UPDATE dip_files SET removed_commit = ? WHERE table_id = ? AND path = ? AND removed_commit IS NULL`,
        [commitId, tableId, path],
      );
      if (changed === 0) {
        throw new CommitConflictError(
          `cannot remove ${path} from ${change.table}: it is not a live file of the table`,
          {
            table: change.table,
            path,
          },
        );
      }
    }
  }
  for (const f of change.add) {
    await tx.execute(
      `INSERT INTO dip_files (table_id, path, rows, bytes, schema_version, added_commit, meta) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [tableId, f.path, f.rows, f.bytes, version, commitId, JSON.stringify(f.meta ?? {})],
    );
  }
  const pk = change.primaryKey ? JSON.stringify(change.primaryKey) : str(table['primary_key']);
  await tx.execute(`UPDATE dip_tables SET head_commit = ?, schema_version = ?, primary_key = ? WHERE id = ?`, [
    commitId,
    version,
    pk,
    tableId,
  ]);
  await tx.execute(`INSERT INTO dip_commit_tables (commit_id, table_id) VALUES (?, ?)`, [commitId, tableId]);
}

function toTable(r: Row): TableInfo {
  return {
    id: num(r['id']),
    name: str(r['name']),
    zone: str(r['zone']) as Zone,
    format: str(r['format']) as FileFormat,
    primaryKey: JSON.parse(str(r['primary_key'])) as string[],
    createdAt: new Date(str(r['created_at'])),
    headCommit: numOrNull(r['head_commit']),
    schemaVersion: numOrNull(r['schema_version']),
    rows: num(r['total_rows']),
    files: num(r['total_files']),
    bytes: num(r['total_bytes']),
  };
}

function toSchemaVersion(r: Row): SchemaVersion {
  return {
    table: str(r['name']),
    version: num(r['version']),
    schema: JSON.parse(str(r['schema_json'])) as TableSchema,
    commitId: num(r['commit_id']),
    createdAt: new Date(str(r['created_at'])),
  };
}

function toDataFile(r: Row): DataFile {
  return {
    id: num(r['id']),
    table: str(r['name']),
    path: str(r['path']),
    rows: num(r['rows']),
    bytes: num(r['bytes']),
    schemaVersion: numOrNull(r['schema_version']),
    addedCommit: num(r['added_commit']),
    removedCommit: numOrNull(r['removed_commit']),
    meta: JSON.parse(str(r['meta'])) as Record<string, unknown>,
  };
}

function toRun(r: Row): RunRecord {
  return {
    id: str(r['id']),
    pipeline: str(r['pipeline']),
    status: str(r['status']) as RunStatus,
    startedAt: new Date(str(r['started_at'])),
    endedAt: r['ended_at'] ? new Date(str(r['ended_at'])) : null,
    host: str(r['host']),
    pid: num(r['pid']),
    error: strOrNull(r['error']),
    cause: strOrNull(r['cause']),
    stats: JSON.parse(str(r['stats'])) as RunStats,
    heartbeatAt: r['heartbeat_at'] ? new Date(str(r['heartbeat_at'])) : null,
  };
}
