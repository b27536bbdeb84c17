import type { Pool, PoolClient } from 'pg';
import { sqlState } from '../core/connection-errors.js';
import type { Row, SqlDriver, SqlExecutor, SqlValue } from './driver.js';
import { SqlCatalog } from './sql-catalog.js';

/** Serializes catalog transactions across every process that shares the catalog. */
const COMMIT_LOCK_KEY = 0x6469_7001;

function toDollarParams(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/**
 * Statements the server keeps parsed and planned per connection, by name: the catalog runs the
 * same few dozen statements over and over (claims, finishes, commits). Only short statements
 * get a name: ones built with a variable number of rows would fill each connection's cache.
 */
const PREPARED_MAX_SQL = 1_500;
const PREPARED_MAX_NAMES = 500;
const preparedNames = new Map<string, string>();
/**
 * `*` columns are fixed when a statement is prepared: after a newer dip adds a column (a
 * migration) PostgreSQL refuses the prepared statement ("cached plan must not change result
 * type") in every process still running. Such statements stay unnamed.
 */
/** `IN (?, ?, …)` lists and multi-row `VALUES (…), (…)`: one text per length, each would take a name. */
const VARIABLE_ARITY = /\bIN\s*\(\s*\?\s*,|\)\s*,\s*\(\s*\?/i;
const SELECTS_STAR = /(^|[\s,])(\w+\.)?\*\s*(,|FROM\b|$)/i;

function statement(sql: string, params: readonly SqlValue[]): { text: string; values: unknown[]; name?: string } {
  const text = toDollarParams(sql);
  const values = params as unknown[];
  if (text.length > PREPARED_MAX_SQL || SELECTS_STAR.test(text) || VARIABLE_ARITY.test(sql)) return { text, values };
  let name = preparedNames.get(text);
  if (name === undefined && preparedNames.size < PREPARED_MAX_NAMES) {
    name = `dip_${preparedNames.size}`;
    preparedNames.set(text, name);
  }
  return name === undefined ? { text, values } : { name, text, values };
}

function executorFor(client: Pool | PoolClient): SqlExecutor {
  return {
    query: async <T extends Row>(sql: string, params: readonly SqlValue[] = []) =>
      (await client.query(statement(sql, params))).rows as T[],
    execute: async (sql: string, params: readonly SqlValue[] = []) =>
      (await client.query(statement(sql, params))).rowCount ?? 0,
  };
}

class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly nowSql = `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  private readonly executor: SqlExecutor;

  constructor(private readonly pool: Pool) {
    this.executor = executorFor(pool);
  }

  query<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.executor.query<T>(sql, params);
  }

  execute(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.executor.execute(sql, params);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A connection the server drops while checked out emits 'error'; unheard, it would crash the
    // process. The query in flight fails on its own, which is what the caller sees.
    const ignore = () => undefined;
    client.on('error', ignore);
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [COMMIT_LOCK_KEY]);
      const result = await fn(executorFor(client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
      // A prepared statement whose result columns changed (a migration by a newer dip) fails on
      // this connection until it is closed; a new connection prepares it afresh.
      if (sqlState(err) === '0A000') broken ??= err as Error;
      throw err;
    } finally {
      client.off('error', ignore);
      // A connection that cannot even roll back is closed, not handed to the next transaction.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** The first connection: a server that accepts TCP but never answers must not hang startup. */
const CONNECT_TIMEOUT_MS = 15_000;
/** How often a long-running process re-measures its clock against the server's. */
const CLOCK_SYNC_MS = 5 * 60_000;
const CLOCK_SAMPLES = 3;

export class PostgresCatalog extends SqlCatalog {
  readonly schema: string;
  private offsetMs = 0;
  private syncTimer: NodeJS.Timeout | undefined;

  private constructor(driver: PostgresDriver, schema: string) {
    super(driver);
    this.schema = schema;
  }

  override get clockOffsetMs(): number {
    return this.offsetMs;
  }

  /**
   * Measures the server's clock against ours: of a few round trips, the shortest one bounds the
   * error best (the server read its clock somewhere inside it; we assume the middle).
   */
  async syncClock(): Promise<void> {
    let best: { rtt: number; offset: number } | undefined;
    for (let i = 0; i < CLOCK_SAMPLES; i++) {
      const sent = Date.now();
      const [row] = await this.db.query<{ ms: string | number }>(
        `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`,
      );
      const received = Date.now();
      const offset = Number(row?.ms) - (sent + received) / 2;
      if (Number.isFinite(offset) && (!best || received - sent < best.rtt)) best = { rtt: received - sent, offset };
    }
    if (best) this.offsetMs = Math.round(best.offset);
  }

  override async close(): Promise<void> {
    clearInterval(this.syncTimer);
    await super.close();
  }

  static async create(opts: {
    url: string;
    schema: string;
    maxConnections?: number;
    projectDir?: string;
  }): Promise<PostgresCatalog> {
    if (!/^[a-z_][a-z0-9_]*$/.test(opts.schema)) throw new Error(`invalid catalog schema name: ${opts.schema}`);
    const { default: pg } = await import('pg');
    const bootstrap = new pg.Client({ connectionString: opts.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
    bootstrap.on('error', () => undefined);
    await bootstrap.connect();
    try {
      await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS ${opts.schema}`);
    } catch (err) {
      // Concurrent creators race on the schema; the loser sees a unique violation.
      if (sqlState(err) !== '23505') throw err;
    } finally {
      await bootstrap.end();
    }
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.maxConnections ?? 4,
      options: `-c search_path=${opts.schema}`,
    });
    // An idle connection the server closed (restart, failover, idle timeout) is dropped from the
    // pool and replaced on demand; the event only needs a listener so it does not crash the process.
    pool.on('error', () => undefined);
    const catalog = new PostgresCatalog(new PostgresDriver(pool), opts.schema);
    try {
      await catalog.migrate({ projectDir: opts.projectDir });
      await catalog.syncClock();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    catalog.syncTimer = setInterval(() => void catalog.syncClock().catch(() => undefined), CLOCK_SYNC_MS).unref();
    return catalog;
  }
}
