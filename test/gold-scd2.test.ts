/**
 * SCD Type 2 dimensions. From a PostgreSQL CDC change log: a script of inserts, several updates
 * of one row between two runs, deletes, a re-insert of a deleted key and a key change; after each
 * run (and after a build killed with SIGKILL) the dimension equals the history computed from the
 * script itself (every version, validity intervals exact to the commit timestamp PostgreSQL
 * recorded). From a silver table: timestamp and check strategies, the dbt-snapshot names, and an
 * unchanged re-run that adds no versions.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CLI, TestProject, projectConfig, projectWithSources } from './support/project.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';

interface Version {
  id: number;
  tier: string;
  from: string;
  to: string | null;
}

describe('SCD2 from a PostgreSQL change log', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;
  before(async () => {
    server = await startPostgres({ settings: { track_commit_timestamp: 'on' } });
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
  });
  after(async () => {
    await db?.end();
    await server?.stop();
  });

  it('equals the history of the change script after every run and after a SIGKILL during a build', async () => {
    await db.query(`CREATE TABLE members (id int PRIMARY KEY, tier text NOT NULL)`);
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
      pipeline['gold'] = {
        dim_member: {
          kind: 'scd2',
          from: 'bronze.members_changes',
          unique_key: ['id'],
          strategy: 'cdc',
          columns_from: ['tier'],
          surrogate_key: { name: 'member_key', strategy: 'sequence' },
        },
      };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);

      // The history as the script makes it, with each statement's commit time from PostgreSQL.
      const history: Version[] = [];
      const open = (id: number) => history.find((v) => v.id === id && v.to === null);
      const exec = async (sql: string): Promise<string> => {
        await db.query(sql);
        const r = await db.query(
          `SELECT (extract(epoch FROM timestamp) * 1000000)::bigint::text AS us FROM pg_last_committed_xact()`,
        );
        return String(r.rows[0].us);
      };
      const insert = async (id: number, tier: string) => {
        const at = await exec(`INSERT INTO members VALUES (${id}, '${tier}')`);
        history.push({ id, tier, from: at, to: null });
      };
      const update = async (id: number, tier: string) => {
        const at = await exec(`UPDATE members SET tier = '${tier}' WHERE id = ${id}`);
        (open(id) as Version).to = at;
        history.push({ id, tier, from: at, to: null });
      };
      const remove = async (id: number) => {
        const at = await exec(`DELETE FROM members WHERE id = ${id}`);
        (open(id) as Version).to = at;
      };
      const rekey = async (id: number, next: number) => {
        const at = await exec(`UPDATE members SET id = ${next} WHERE id = ${id}`);
        const old = open(id) as Version;
        old.to = at;
        history.push({ id: next, tier: old.tier, from: at, to: null });
      };
      const dimension = async () =>
        (
          await p.rows(
            `SELECT id, tier, CAST(epoch_us(valid_from) AS VARCHAR) AS f, CAST(epoch_us(valid_to) AS VARCHAR) AS t, is_current FROM gold.dim_member WHERE member_key >= 0 ORDER BY id, valid_from`,
          )
        ).map((r) => [Number(r['id']), r['tier'], r['f'], r['t'] ?? null, r['is_current']]);
      const expected = () =>
        [...history]
          .sort((a, b) => a.id - b.id || Number(BigInt(a.from) - BigInt(b.from)))
          .map((v) => [v.id, v.tier, v.from, v.to, v.to === null]);

      await p.runOk(); // the slot and an empty snapshot
      for (let i = 1; i <= 6; i++) await insert(i, 'basic');
      await p.runOk();
      assert.deepEqual(await dimension(), expected());
      assert.equal(history.length, 6);

      // Several updates of one row between two runs: each is a version.
      await update(1, 'silver');
      await update(1, 'gold');
      await update(1, 'platinum');
      await update(2, 'gold');
      await remove(3);
      await insert(7, 'basic');
      await p.runOk();
      assert.deepEqual(await dimension(), expected());
      assert.equal(await p.num(`SELECT count(*) FROM gold.dim_member WHERE id = 1`), 4);
      const keyOf = await p.rows(
        `SELECT member_key, id, valid_from FROM gold.dim_member WHERE member_key >= 0 ORDER BY 1`,
      );

      // A deleted key comes back; a key changes; a row is deleted and its id reused.
      await insert(3, 'gold');
      await rekey(4, 40);
      await remove(5);
      await update(40, 'silver');
      await insert(5, 'silver');
      await p.runOk();
      assert.deepEqual(await dimension(), expected());
      assert.equal(await p.num(`SELECT count(*) FROM gold.dim_member WHERE member_key IN (-1, -2)`), 2);
      // Sequence keys stay with their versions.
      const keysNow = await p.rows(
        `SELECT member_key, id, valid_from FROM gold.dim_member WHERE member_key >= 0 ORDER BY 1`,
      );
      assert.deepEqual(keysNow.slice(0, keyOf.length), keyOf);

      // More changes, ingested; the build is killed at several moments, then completes.
      await update(2, 'basic');
      await remove(6);
      await update(7, 'gold');
      await p.runOk('p', { gold: false });
      await p.reopen();
      for (const delay of [250, 600, 1200]) {
        const child = spawn(process.execPath, [CLI, '-p', p.dir, 'build', 'dim_member', '--quiet'], {
          stdio: 'ignore',
        });
        const exited = new Promise((r) => child.once('exit', r));
        await new Promise((r) => setTimeout(r, delay));
        child.kill('SIGKILL'); // a build that already ended (a quiet machine) is not waited for twice
        await exited;
      }
      await p.reopen();
      await p.runOk();
      assert.deepEqual(await dimension(), expected());
      assert.equal(await p.num(`SELECT count(*) FROM gold.dim_member WHERE member_key >= 0 AND is_current`), 6);
    } finally {
      await p.dispose();
    }
  });
});

describe('SCD2 from a silver table', () => {
  it('timestamp and check strategies, dbt names, deletes as versions, unchanged re-runs add nothing', async () => {
    const p = await TestProject.create({ customers: { path: 'data/customers.csv' } });
    try {
      const config = projectConfig(
        { customers: { path: 'data/customers.csv', write_disposition: 'replace' } },
        { raw: false },
      );
      const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
      pipeline['silver'] = { customers: { from: 'customers', primary_key: ['id'] } };
      pipeline['gold'] = {
        dim_ts: {
          kind: 'scd2',
          from: 'silver.customers',
          unique_key: ['id'],
          strategy: 'timestamp',
          updated_at: 'updated_at',
        },
        dim_check: {
          kind: 'scd2',
          from: 'silver.customers',
          unique_key: ['id'],
          strategy: 'check',
          check_cols: ['city'],
          names: 'dbt',
          valid_to_current: '9999-12-31',
          hard_deletes: 'new_record',
        },
      };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
      const file = (rows: string[]) => p.write('data/customers.csv', `id,name,city,updated_at\n${rows.join('\n')}\n`);
      await file([
        '1,Ann,Oslo,2024-01-01 00:00:00',
        '2,Bob,Rome,2024-01-01 00:00:00',
        '3,Cid,Lima,2024-01-01 00:00:00',
      ]);
      await p.runOk();
      assert.equal(await p.count('gold.dim_ts'), 3);
      assert.equal(await p.count('gold.dim_check'), 3);

      // 1 moves (newer updated_at); 2 renamed only (check on city: no version; timestamp: a version); 3 gone; 4 new.
      await file([
        '1,Ann,Bergen,2024-02-01 00:00:00',
        '2,Bobby,Rome,2024-02-01 00:00:00',
        '4,Dee,Kyiv,2024-02-01 00:00:00',
      ]);
      await p.touch('data/customers.csv');
      await p.runOk();
      assert.deepEqual(
        (
          await p.rows(
            `SELECT id, city, CAST(valid_from AS VARCHAR) AS f, CAST(valid_to AS VARCHAR) AS t, is_current FROM gold.dim_ts ORDER BY id, valid_from`,
          )
        ).map((r) => [
          Number(r['id']),
          r['city'],
          r['f'],
          Number(r['id']) === 3 && r['t'] !== null ? 'closed' : r['t'],
          r['is_current'],
        ]),
        [
          [1, 'Oslo', '2024-01-01 00:00:00+00', '2024-02-01 00:00:00+00', false],
          [1, 'Bergen', '2024-02-01 00:00:00+00', null, true],
          [2, 'Rome', '2024-01-01 00:00:00+00', '2024-02-01 00:00:00+00', false],
          [2, 'Rome', '2024-02-01 00:00:00+00', null, true],
          [3, 'Lima', '2024-01-01 00:00:00+00', 'closed', false], // closed when the snapshot without it landed
          [4, 'Kyiv', '2024-02-01 00:00:00+00', null, true],
        ],
      );
      const check = await p.rows(
        `SELECT id, city, dbt_valid_to = TIMESTAMPTZ '9999-12-31' AS open, dbt_is_deleted AS deleted, dbt_scd_id IS NOT NULL AS has_id, dbt_updated_at = dbt_valid_from AS same FROM gold.dim_check ORDER BY id, dbt_valid_from`,
      );
      assert.deepEqual(
        check.map((r) => [Number(r['id']), r['city'], r['open'], r['deleted'], r['has_id'], r['same']]),
        [
          [1, 'Oslo', false, false, true, true],
          [1, 'Bergen', true, false, true, true],
          [2, 'Rome', true, false, true, true],
          [3, 'Lima', false, false, true, true],
          [3, 'Lima', true, true, true, true],
          [4, 'Kyiv', true, false, true, true],
        ],
      );
      // Unchanged: a replace stream reads the file again (new bronze and silver commits), yet no version is added.
      const idle = await p.runOk();
      assert.equal(idle.stats.streams['gold.dim_ts']?.rows, 0);
      assert.equal(idle.stats.streams['gold.dim_check']?.rows, 0);
      await p.touch('data/customers.csv', new Date(Date.now() + 60_000));
      const again = await p.runOk();
      assert.equal(again.stats.streams['gold.dim_check']?.rows, 0);
      assert.equal(await p.count('gold.dim_ts'), 6);
      assert.equal(await p.count('gold.dim_check'), 6);
    } finally {
      await p.dispose();
    }
  });
});

describe('SCD2 from a change log with late changes', () => {
  it('a change that arrives after later ones repairs the history; a hard delete as a flagged version', async () => {
    const p = await TestProject.create({});
    try {
      const config = projectConfig({ changes: { path: 'data/changes-*.csv' } }, { raw: false });
      const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
      const cdc = { position: ['lsn'], timestamp: 'ts', deleted: 'deleted', op: 'op' };
      pipeline['gold'] = {
        dim: { kind: 'scd2', from: 'bronze.changes', unique_key: ['id'], strategy: 'cdc', columns_from: ['v'], cdc },
        dim_flagged: {
          kind: 'scd2',
          from: 'bronze.changes',
          unique_key: ['id'],
          strategy: 'cdc',
          columns_from: ['v'],
          cdc,
          hard_deletes: 'new_record',
          names: { valid_from: 'start_at', valid_to: 'end_at', is_current: 'current' },
          valid_to_current: '9999-12-31',
        },
      };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
      const head = 'id,v,lsn,ts,deleted,op\n';
      await p.write(
        'data/changes-1.csv',
        `${head}1,a,10,2024-01-01 00:00:00,false,c\n1,c,30,2024-03-01 00:00:00,false,u\n2,x,15,2024-01-15 00:00:00,false,c\n`,
      );
      await p.runOk();
      const versions = async (table: string, from = 'valid_from', to = 'valid_to') =>
        (
          await p.rows(
            `SELECT id, v, CAST(${from} AS DATE)::VARCHAR AS f, CAST(${to} AS DATE)::VARCHAR AS t FROM gold.${table} ORDER BY id, ${from}`,
          )
        ).map((r) => [Number(r['id']), r['v'], r['f'], r['t']]);
      assert.deepEqual(await versions('dim'), [
        [1, 'a', '2024-01-01', '2024-03-01'],
        [1, 'c', '2024-03-01', null],
        [2, 'x', '2024-01-15', null],
      ]);
      // Late: the change at lsn 20 is read after the one at 30; key 2 is deleted.
      await p.write(
        'data/changes-2.csv',
        `${head}1,b,20,2024-02-01 00:00:00,false,u\n2,,40,2024-04-01 00:00:00,true,d\n`,
      );
      await p.runOk();
      assert.deepEqual(await versions('dim'), [
        [1, 'a', '2024-01-01', '2024-02-01'],
        [1, 'b', '2024-02-01', '2024-03-01'],
        [1, 'c', '2024-03-01', null],
        [2, 'x', '2024-01-15', '2024-04-01'],
      ]);
      assert.deepEqual(await versions('dim_flagged', 'start_at', 'end_at'), [
        [1, 'a', '2024-01-01', '2024-02-01'],
        [1, 'b', '2024-02-01', '2024-03-01'],
        [1, 'c', '2024-03-01', '9999-12-31'],
        [2, 'x', '2024-01-15', '2024-04-01'],
        [2, 'x', '2024-04-01', '9999-12-31'],
      ]);
      assert.deepEqual(
        (
          await p.rows(
            `SELECT id, is_deleted, current FROM gold.dim_flagged WHERE end_at = TIMESTAMPTZ '9999-12-31' ORDER BY id`,
          )
        ).map((r) => [Number(r['id']), r['is_deleted'], r['current']]),
        [
          [1, false, true],
          [2, true, true],
        ],
      );
    } finally {
      await p.dispose();
    }
  });
});
