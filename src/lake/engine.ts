import { mkdir } from 'node:fs/promises';
import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { Column } from '../catalog/types.js';

export interface EngineOptions {
  threads?: number | undefined;
  memoryLimit?: string | undefined;
  /** Where DuckDB spills when work exceeds the memory limit. */
  tempDirectory?: string | undefined;
}

export type JsonRow = Record<string, unknown>;

/** DuckDB in process: the compute engine for Parquet, CSV, JSON and SQL over lake tables. */
export class Engine {
  /** Statements run one at a time on the one connection (streams of a run may stage concurrently). */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
  ) {}

  static async create(options: EngineOptions = {}): Promise<Engine> {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const config: Record<string, string> = {};
    if (options.threads) config['threads'] = String(options.threads);
    if (options.memoryLimit) config['memory_limit'] = options.memoryLimit;
    if (options.tempDirectory) {
      await mkdir(options.tempDirectory, { recursive: true });
      config['temp_directory'] = options.tempDirectory;
    }
    const instance = await DuckDBInstance.create(':memory:', config);
    const connection = await instance.connect();
    // Progress is polled (see `copy`), never printed by DuckDB itself.
    await connection.run('SET enable_progress_bar = true');
    await connection.run('SET enable_progress_bar_print = false');
    return new Engine(instance, connection);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async run(sql: string): Promise<void> {
    await this.exclusive(() => this.connection.run(sql));
  }

  /** Rows as JSON-safe objects (BIGINT and DECIMAL come back as strings). */
  async all(sql: string): Promise<JsonRow[]> {
    const reader = await this.exclusive(() => this.connection.runAndReadAll(sql));
    return reader.getRowObjectsJson() as JsonRow[];
  }

  /** Rows plus column names and DuckDB types, in result order. */
  async table(sql: string): Promise<{ columns: Column[]; rows: JsonRow[] }> {
    const reader = await this.exclusive(() => this.connection.runAndReadAll(sql));
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
          const p = this.connection.progress.percentage;
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
    this.connection.interrupt();
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}
