import { resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { Serial } from '../core/serial.js';
import { ensurePrivateFile } from '../core/private-files.js';
import { loadSqlite } from '../core/sqlite-native.js';
import type { Row, SqlDriver, SqlExecutor, SqlValue } from './driver.js';
import { SqlCatalog } from './sql-catalog.js';

/**
 * better-sqlite3 is synchronous; an async mutex keeps a transaction's statements from
 * interleaving with other calls on the same connection. WAL + synchronous=FULL makes a
 * commit durable when it returns; busy_timeout lets `dip query` read while `dip run` writes.
 */
class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly nowSql = `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`;
  private readonly lock = new Serial();
  private readonly executor: SqlExecutor;

  /** Prepared statements by SQL text: the orchestrator repeats a few statements thousands of times. */
  private readonly statements = new Map<string, BetterSqlite3.Statement>();

  constructor(private readonly db: BetterSqlite3.Database) {
    this.executor = {
      query: async <T extends Row>(sql: string, params: readonly SqlValue[] = []) =>
        this.statement(sql).all(...params) as T[],
      execute: async (sql: string, params: readonly SqlValue[] = []) => this.statement(sql).run(...params).changes,
    };
  }

  private statement(sql: string): BetterSqlite3.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      // Bounded: generated statements (IN lists, multi-row inserts) vary in text.
      if (this.statements.size >= 500) this.statements.clear();
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  query<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.serialized(() => this.executor.query<T>(sql, params));
  }

  execute(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.serialized(() => this.executor.execute(sql, params));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.serialized(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.executor);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    await this.serialized(async () => this.db.close());
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(fn);
  }
}

export class SqliteCatalog extends SqlCatalog {
  readonly path: string;

  private constructor(driver: SqliteDriver, path: string) {
    super(driver);
    this.path = path;
  }

  static async create(path: string, options: { projectDir?: string } = {}): Promise<SqliteCatalog> {
    const abs = resolve(path);
    // 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
    await ensurePrivateFile(abs, [`${abs}-wal`, `${abs}-shm`, `${abs}-journal`]);
    const Database = await loadSqlite();
    const db = new Database(abs);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 15000');
    db.pragma('foreign_keys = ON');
    const catalog = new SqliteCatalog(new SqliteDriver(db), abs);
    await catalog.migrate({ projectDir: options.projectDir });
    return catalog;
  }
}
