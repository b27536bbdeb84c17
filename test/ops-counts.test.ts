/**
 * A CDC current-state table's row count (issue 21, item 8): `dip status`, `dip tables`,
 * `dip describe` and `GET /tables` show the rows the table holds (its unmerged delta changes
 * applied: updates replace rows, deletes remove them), never merged rows plus changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type RunningServer, serve } from '../src/serve/server.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { projectWithSources, runCli, TestProject } from './support/project.js';

interface Listed {
  name: string;
  rows: number;
  pendingChanges?: number;
}

describe('row counts of a CDC current-state table', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;
  let p: TestProject;
  let api: RunningServer | undefined;

  const cli = async (...args: string[]): Promise<string> => {
    const r = await runCli(args, p.dir);
    assert.equal(r.code, 0, `dip ${args.join(' ')}: ${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
    await db.query(`CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL)`);
    await db.query(`INSERT INTO accounts SELECT g, g * 10 FROM generate_series(1, 50) g`);
    p = await TestProject.withSources({});
    const config = projectWithSources(
      {
        db: {
          type: 'postgres',
          connection: { url: server.url },
          mode: 'cdc',
          tables: ['accounts'],
          cdc: { flush_interval: '200ms', idle_timeout: '2s' },
        },
      },
      { raw: false },
    );
    await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
    await cli('run', 'p', '--quiet');
    // 7 inserts, 5 updates, 3 deletes: 15 changes, 54 rows.
    await db.query(`INSERT INTO accounts SELECT g, g * 10 FROM generate_series(51, 57) g`);
    await db.query(`UPDATE accounts SET balance = balance + 1 WHERE id <= 5`);
    await db.query(`DELETE FROM accounts WHERE id IN (20, 21, 22)`);
    await cli('run', 'p', '--quiet');
  });

  after(async () => {
    await api?.close({ graceMs: 0 });
    await p?.dispose();
    await db?.end();
    await server?.stop();
  });

  it('status, tables, describe and the API show the rows the table holds', async () => {
    const source = Number((await db.query(`SELECT count(*) AS n FROM accounts`)).rows[0].n);
    assert.equal(source, 54);
    const lake = await p.lake();
    const files = await lake.catalog.liveFiles('bronze.accounts');
    const pending = files.filter((f) => f.meta['cdc'] === 'delta').reduce((n, f) => n + f.rows, 0);
    assert.equal(pending, 15, 'the second run left its 15 changes as a delta, not merged');
    assert.equal(
      files.reduce((n, f) => n + f.rows, 0),
      65,
      'the files hold 50 merged rows + 15 changes',
    );
    assert.equal(await p.count('bronze.accounts'), 54);

    const status = JSON.parse(await cli('--json', 'status')) as { tables: Listed[] };
    const tables = JSON.parse(await cli('--json', 'tables')) as Listed[];
    const described = JSON.parse(await cli('--json', 'describe', 'bronze.accounts')) as { table: Listed };
    for (const [what, t] of [
      ['status', status.tables.find((x) => x.name === 'bronze.accounts')],
      ['tables', tables.find((x) => x.name === 'bronze.accounts')],
      ['describe', described.table],
    ] as const) {
      assert.deepEqual([t?.rows, t?.pendingChanges], [54, 15], what);
    }
    assert.match(await cli('status'), /bronze\.accounts\s+│?\s*54 \(15 changes not merged yet\)/);
    assert.match(await cli('describe', 'bronze.accounts'), /54 rows \(15 changes not merged yet\)/);

    api = await serve(lake, {
      host: '127.0.0.1',
      port: 0,
      tickMs: 1000,
      concurrency: 1,
      executor: 'in-process',
      scheduler: false,
      defaultMetrics: false,
    });
    const one = (await (await fetch(`${api.address}/tables/bronze.accounts`)).json()) as {
      rows: number;
      pending_changes: number;
    };
    assert.deepEqual([one.rows, one.pending_changes], [54, 15]);
    // The change log is a plain table: every event is a row.
    const log = tables.find((x) => x.name === 'bronze.accounts_changes');
    assert.equal(log?.rows, 65);
  });
});
