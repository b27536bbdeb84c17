/** A dip older than its catalog refuses it instead of writing rows newer code would misread. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadSqlite } from '../src/core/sqlite-native.js';
import pg from 'pg';
import { openCatalog } from '../src/catalog/index.js';
import { DipError } from '../src/core/errors.js';
import { postgresTestOptions, startPostgres } from './support/postgres.js';

/** better-sqlite3 12 on Node 20, 13 on Node 22+ (src/core/sqlite-native.ts). */
const Database = await loadSqlite();

const newer = (err: unknown) => {
  assert.ok(err instanceof DipError, String(err));
  assert.equal(err.kind, 'config');
  assert.match(
    err.message,
    /^the catalog's schema is version 99, newer than this dip knows \(version \d+\): a newer dip upgraded it; upgrade this installation/,
  );
  return true;
};

describe('catalog schema versions', () => {
  it('SQLite: a catalog upgraded by a newer dip is refused with a config error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dip-version-'));
    try {
      const path = join(dir, 'catalog.db');
      await (await openCatalog({ kind: 'sqlite', path }, dir)).close();
      const db = new Database(path);
      db.prepare(`UPDATE dip_meta SET value = '99' WHERE key = 'schema_version'`).run();
      db.close();
      await assert.rejects(openCatalog({ kind: 'sqlite', path }, dir), newer);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: the same', postgresTestOptions(), async () => {
    const server = await startPostgres();
    try {
      await (await openCatalog({ kind: 'postgres', url: server.url, schema: 'dip_v' }, '.')).close();
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      await c.query(`UPDATE dip_v.dip_meta SET value = '99' WHERE key = 'schema_version'`);
      await c.end();
      await assert.rejects(openCatalog({ kind: 'postgres', url: server.url, schema: 'dip_v' }, '.'), newer);
    } finally {
      await server.stop();
    }
  });

  it(
    'PostgreSQL: a running catalog keeps working after a newer dip adds columns to every table (prepared statements name their columns)',
    postgresTestOptions(),
    async () => {
      const server = await startPostgres();
      const catalog = await openCatalog({ kind: 'postgres', url: server.url, schema: 'dip_up' }, '.');
      try {
        const o = catalog.orchestration;
        let n = 0;
        const cycle = async () => {
          const t0 = new Date(Date.UTC(2026, 0, 1, ++n));
          const [id] = await o.createRuns(
            [
              {
                pipeline: 'p',
                interval: { start: t0, end: new Date(t0.getTime() + 3_600_000) },
                trigger: 'schedule',
                priority: 10,
                maxActive: 1,
                tasks: [{ name: 'a', deps: [], pool: null, mutex: null, maxAttempts: 1 }],
              },
            ],
            t0,
          );
          const runId = id as string;
          await o.promote(t0);
          const claim = await o.claim({ runId, task: 'a' }, 'w', 60_000, () => 1, t0);
          assert.ok(claim.ok);
          const done = await o.finish({ runId, task: 'a' }, 'w', 1, { ok: true, rows: 1 }, t0);
          assert.equal(done.runFinished?.status, 'succeeded');
          assert.equal((await o.getRun(runId))?.status, 'succeeded');
          assert.equal((await o.listRuns({ pipeline: 'p' })).length, n);
          assert.equal((await o.listTasks(runId))[0]?.status, 'succeeded');
          assert.equal((await o.listAttempts(runId))[0]?.status, 'succeeded');
          assert.equal((await o.attemptsEndedAfter(0)).length, n);
          await catalog.listTables();
          await catalog.listRuns();
        };
        await cycle();
        await cycle();
        const c = new pg.Client({ connectionString: server.url });
        await c.connect();
        const tables = await c.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = 'dip_up'`,
        );
        for (const { table_name } of tables.rows)
          await c.query(`ALTER TABLE dip_up.${table_name} ADD COLUMN added_by_a_newer_dip TEXT`);
        await c.end();
        assert.ok(tables.rows.length >= 10);
        await cycle();
        await cycle();
      } finally {
        await catalog.close();
        await server.stop();
      }
    },
  );

  it(
    'PostgreSQL: statements built with a variable number of values take no prepared-statement names',
    postgresTestOptions(),
    async () => {
      const server = await startPostgres();
      const { PostgresCatalog } = await import('../src/catalog/postgres.js');
      const catalog = await PostgresCatalog.create({ url: server.url, schema: 'dip_names', maxConnections: 1 });
      try {
        const prepared = () => preparedStatements(catalog);
        const before = await prepared();
        for (let n = 1; n <= 60; n++)
          await catalog.orchestration.statusOf(Array.from({ length: n }, (_, i) => `run_${i}`));
        const after = await prepared();
        assert.ok(after - before <= 1, `statusOf with 1..60 ids prepared ${after - before} statements`);
      } finally {
        await catalog.close();
        await server.stop();
      }
    },
  );
});

/** Prepared statements of the catalog's one pooled connection (pg_prepared_statements is per session, so read through its driver). */
async function preparedStatements(catalog: object): Promise<number> {
  const db = (catalog as { db?: { query(sql: string): Promise<{ n: number | string }[]> } }).db as {
    query(sql: string): Promise<{ n: number | string }[]>;
  };
  const [row] = await db.query('SELECT count(*)::int AS n FROM pg_prepared_statements');
  return Number(row?.n ?? 0);
}
