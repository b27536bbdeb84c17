import { rm } from 'node:fs/promises';
import { mkdirPrivate } from '../core/private-files.js';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { Column } from '../catalog/types.js';
import { Serial } from '../core/serial.js';

export interface EngineOptions {
  threads?: number | undefined;
  memoryLimit?: string | undefined;
  /**
   * Where DuckDB spills when work exceeds the memory limit: a directory of this engine's own
   * (DuckDB deletes every `duckdb_temp_*` file in it on close), created 0700 when DuckDB
   * opens and removed on close.
   */
  tempDirectory?: string | undefined;
  /** How DuckDB reaches lake files that are not local (storage/types.ts `EngineAccess`). */
  access?: EngineAccess | undefined;
}

/**
 * For a storage DuckDB cannot read by path: `setup` runs once DuckDB opened (load an extension,
 * create a secret); `prepare` sees every statement before it runs and returns the one to run
 * (fetching the lake files it names into a local cache, or pointing them at the bucket).
 */
export interface EngineAccess {
  setup(run: (sql: string) => Promise<void>): Promise<void>;
  prepare(sql: string): Promise<string>;
}

export type JsonRow = Record<string, unknown>;

interface Handles {
  instance: DuckDBInstance;
  connection: DuckDBConnection;
}

/**
 * DuckDB in process: the compute engine for Parquet, CSV, JSON and SQL over lake tables.
 * DuckDB is loaded (~0.15 s, more on a busy machine) only when the first statement runs, or
 * earlier in the background when `warm()` says statements are coming: commands and runs that
 * never query (a `dip run` with nothing new to read) do not pay for it, and sources that start
 * fetching first do not wait for it.
 */
export class Engine {
  /** Statements run one at a time on the one connection (streams of a run may stage concurrently). */
  private readonly statements = new Serial();
  private handles: Handles | undefined;
  private opening: Promise<Handles> | undefined;

  private constructor(
    private readonly options: EngineOptions,
    private readonly describeFailure: (err: unknown) => unknown,
  ) {}

  /** An engine that opens DuckDB when first needed; `describeFailure` turns an open error into the one statements report. */
  static start(options: EngineOptions = {}, describeFailure: (err: unknown) => unknown = (err) => err): Engine {
    return new Engine(options, describeFailure);
  }

  /** Starts opening DuckDB in the background (an open failure surfaces at the first statement). */
  warm(): void {
    this.ready().catch(() => undefined);
  }

  private ready(): Promise<Handles> {
    if (!this.opening) {
      this.opening = Engine.open(this.options).catch((err: unknown) => Promise.reject(this.describeFailure(err)));
      this.opening.then((h) => (this.handles = h)).catch(() => undefined);
    }
    return this.opening;
  }

  private static async open(options: EngineOptions): Promise<Handles> {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const config: Record<string, string> = {};
    if (options.threads) config['threads'] = String(options.threads);
    if (options.memoryLimit) config['memory_limit'] = options.memoryLimit;
    if (options.tempDirectory) {
      await mkdirPrivate(options.tempDirectory);
      config['temp_directory'] = options.tempDirectory;
    }
    const instance = await DuckDBInstance.create(':memory:', config);
    const connection = await instance.connect();
    // Progress is polled (see `copy`), never printed by DuckDB itself.
    await connection.run('SET enable_progress_bar = true');
    await connection.run('SET enable_progress_bar_print = false');
    await options.access?.setup(async (sql) => void (await connection.run(sql)));
    return { instance, connection };
  }

  private exclusive<T>(fn: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    return this.statements.run(async () => fn((await this.ready()).connection));
  }

  /** The statement as it runs: the storage's `prepare` (if any) sees it first. */
  private prepared(sql: string): Promise<string> {
    return this.options.access ? this.options.access.prepare(sql) : Promise.resolve(sql);
  }

  async run(sql: string): Promise<void> {
    await this.exclusive(async (c) => c.run(await this.prepared(sql)));
  }

  /** Rows as JSON-safe objects (BIGINT and DECIMAL come back as strings). */
  async all(sql: string): Promise<JsonRow[]> {
    const reader = await this.exclusive(async (c) => c.runAndReadAll(await this.prepared(sql)));
    return reader.getRowObjectsJson() as JsonRow[];
  }

  /** Rows plus column names and DuckDB types, in result order. */
  async table(sql: string): Promise<{ columns: Column[]; rows: JsonRow[] }> {
    const reader = await this.exclusive(async (c) => c.runAndReadAll(await this.prepared(sql)));
    const names = reader.columnNames();
    const types = reader.columnTypes();
    return {
      columns: names.map((name, i) => ({ name, type: String(types[i]) })),
      rows: reader.getRowObjectsJson() as JsonRow[],
    };
  }

  /**
   * Runs a COPY … TO statement and returns how many rows it wrote; `onProgress` receives the
   * fraction done (0..1) while it runs.
   */
  async copy(sql: string, onProgress?: (fraction: number) => void): Promise<number> {
    const timer = onProgress
      ? setInterval(() => {
          const p = this.handles?.connection.progress.percentage ?? 0;
          if (p > 0) onProgress(Math.min(p, 100) / 100);
        }, 250)
      : undefined;
    try {
      const rows = await this.all(sql);
      return Number(rows[0]?.['Count'] ?? 0);
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  /** The columns a query would return, without running it. */
  async describe(relationSql: string): Promise<Column[]> {
    const rows = await this.all(`DESCRIBE ${relationSql}`);
    return rows.map((r) => ({ name: String(r['column_name']), type: String(r['column_type']) }));
  }

  /** Stops the running statement (it fails with an interrupt error). */
  interrupt(): void {
    this.handles?.connection.interrupt();
  }

  async close(): Promise<void> {
    const handles = await this.opening?.catch(() => undefined);
    await this.statements.idle();
    handles?.connection.closeSync();
    handles?.instance.closeSync();
    if (handles && this.options.tempDirectory) await rm(this.options.tempDirectory, { recursive: true, force: true });
  }
}
