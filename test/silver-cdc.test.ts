/**
 * Silver over a CDC change log: PostgreSQL changes (updates, deletes, inserts) reach the silver
 * table incrementally, keyed and ordered by the change position, with deletes applied and PII
 * masked, and the silver table equals the source table.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { TestProject, projectWithSources } from './support/project.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';

const SALT = 'cdc-silver-salt-0123456789';
const sha = (s: string) =>
  createHash('sha256')
    .update(SALT + s)
    .digest('hex');

describe('silver over a CDC change log', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await server?.stop();
  });

  it('updates, deletes and inserts land incrementally; silver equals the source, emails hashed', async () => {
    await db.query(`CREATE TABLE members (id int PRIMARY KEY, email text NOT NULL, tier text NOT NULL)`);
    await db.query(
      `INSERT INTO members SELECT i, 'm' || i || '@club.test', CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'basic' END FROM generate_series(1, 200) i`,
    );
    const p = await TestProject.withSources({});
    try {
      const config = projectWithSources(
        {
          db: {
            type: 'postgres',
            connection: { url: server.url },
            mode: 'cdc',
            tables: ['members'],
            cdc: { flush_interval: '200ms', idle_timeout: '2s' },
          },
        },
        { raw: false },
      );
      const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
      pipeline['silver'] = {
        members: {
          from: 'members_changes',
          primary_key: ['id'],
          dedup: { sort_by: ['cdc_lsn', 'cdc_seq'], deleted_column: 'cdc_deleted' },
          exclude_columns: ['_cdc_before'],
          columns: { email: { pii: 'email', mask: 'hash' } },
          checks: [{ type: 'accepted_values', column: 'tier', values: ['basic', 'gold', 'platinum'] }],
        },
      };
      config['privacy'] = { salt: SALT };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
      await p.reopen();

      const first = await p.runOk();
      assert.equal(first.stats.streams['silver.members']?.rows, 200);
      await db.query(`UPDATE members SET tier = 'platinum', email = 'vip' || id || '@club.test' WHERE id <= 5`);
      await db.query(`UPDATE members SET tier = 'gold' WHERE id = 5`); // two changes of one row in one run: the later wins
      await db.query(`DELETE FROM members WHERE id BETWEEN 50 AND 59`);
      await db.query(`INSERT INTO members VALUES (201, 'n201@club.test', 'basic'), (202, 'n202@club.test', 'gold')`);
      const second = await p.runOk();
      assert.equal(second.status, 'succeeded');
      const lake = await p.lake();
      const [report] = await lake.catalog.listQualityReports('silver.members');
      assert.equal(
        (report?.report as { mode?: string } | undefined)?.mode,
        'incremental',
        'the change log only grew: no rebuild',
      );

      const silver = await p.rows(`SELECT id, email, tier FROM silver.members ORDER BY id`);
      const src = (await db.query(`SELECT id, email, tier FROM members ORDER BY id`)).rows as {
        id: number;
        email: string;
        tier: string;
      }[];
      assert.equal(silver.length, 192);
      assert.deepEqual(
        silver.map((r) => [Number(r['id']), r['email'], r['tier']]),
        src.map((r) => [r.id, sha(r.email), r.tier]),
      );
      assert.equal(await p.num(`SELECT count(*) FROM silver.members WHERE id BETWEEN 50 AND 59`), 0);
      assert.deepEqual((await p.rows(`SELECT tier FROM silver.members WHERE id = 5`))[0], { tier: 'gold' });
      assert.equal(
        await p.num(`SELECT count(*) FROM silver.members WHERE _dip_first_seen < _dip_last_seen`),
        5,
        'the five updated members span two arrivals',
      );
    } finally {
      await p.dispose();
    }
  });
});
