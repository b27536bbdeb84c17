/**
 * Shared rate budgets in the PostgreSQL catalog: a row per slot in `<schema>.dip_rate_slots`
 * (created on first use; it holds only slots counting now), taken under a transaction-level
 * advisory lock per key and timed by the database's clock.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { SharedBudgets, SharedBudgetSlot } from './types.js';

const NOW_MS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`;

export class PostgresBudgets implements SharedBudgets {
  readonly kind = 'postgres';
  private ready: Promise<void> | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly table: string,
  ) {}

  static async connect(url: string, schema: string): Promise<PostgresBudgets> {
    const { default: pgModule } = await import('pg');
    const pool = new pgModule.Pool({ connectionString: url, max: 4 });
    pool.on('error', () => undefined);
    return new PostgresBudgets(pool, `"${schema.replace(/"/g, '""')}".dip_rate_slots`);
  }

  private setup(): Promise<void> {
    this.ready ??= (async () => {
      const schema = this.table.slice(0, this.table.lastIndexOf('.'));
      await this.pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await this.pool.query(
        `CREATE TABLE IF NOT EXISTS ${this.table} (budget TEXT NOT NULL, id TEXT NOT NULL, until_ms BIGINT NOT NULL, PRIMARY KEY (budget, id))`,
      );
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  async take(
    key: string,
    budget: { requests: number; windowMs: number },
    leaseMs: number,
  ): Promise<{ slot: SharedBudgetSlot } | { waitMs: number }> {
    await this.setup();
    const id = randomUUID();
    const client = await this.pool.connect();
    let wait = 0;
    try {
      await client.query('BEGIN');
      await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`dip_rate:${key}`]);
      await client.query(`DELETE FROM ${this.table} WHERE budget = $1 AND until_ms <= ${NOW_MS}`, [key]);
      const { rows } = await client.query<{ n: string; first: string | null; now: string }>(
        `SELECT count(*) AS n, min(until_ms) AS first, ${NOW_MS} AS now FROM ${this.table} WHERE budget = $1`,
        [key],
      );
      const row = rows[0];
      if (row && Number(row.n) >= budget.requests) wait = Math.max(1, Number(row.first) - Number(row.now));
      else
        await client.query(`INSERT INTO ${this.table} (budget, id, until_ms) VALUES ($1, $2, ${NOW_MS} + $3)`, [
          key,
          id,
          leaseMs,
        ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    if (wait > 0) return { waitMs: wait };
    return {
      slot: {
        settle: async () => {
          await this.pool.query(`UPDATE ${this.table} SET until_ms = ${NOW_MS} + $3 WHERE budget = $1 AND id = $2`, [
            key,
            id,
            budget.windowMs,
          ]);
        },
      },
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
