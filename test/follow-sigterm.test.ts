/**
 * Stopping `dip run --follow` (issue 21, item 6): SIGTERM is the documented way to stop a
 * follower. It ends at a commit boundary with everything read committed: exit 0, the run
 * `succeeded`, and a restart reads nothing again. A SIGKILLed follower's run shows the rows its
 * committed units landed. Against throwaway PostgreSQL (logical replication) and MariaDB
 * (binlog) servers.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { execMariadb, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { CLI, TestProject, runCli } from './support/project.js';
import { postgresTestOptions, startPostgres } from './support/postgres.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunJson {
  runId: string;
  status: string;
  stats: { streams: Record<string, { rows: number; commits: number }> };
}

/** A throwaway database server with a table `items` (id int primary key, label text) holding rows 1..100. */
interface Database {
  url: string;
  /** Runs one statement (literal SQL: the tests build it from numbers only). */
  exec(sql: string): Promise<void>;
  stop(): Promise<void>;
}

const DATABASES: { name: string; type: string; skip: { skip?: string }; start: () => Promise<Database> }[] = [
  {
    name: 'PostgreSQL',
    type: 'postgres',
    skip: postgresTestOptions(),
    async start() {
      const server = await startPostgres();
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      await client.query(`CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)`);
      await client.query(`INSERT INTO items SELECT g, 'row ' || g FROM generate_series(1, 100) g`);
      return {
        url: server.url,
        exec: async (sql) => void (await client.query(sql)),
        stop: async () => {
          await client.end();
          await server.stop();
        },
      };
    },
  },
  {
    name: 'MariaDB',
    type: 'mysql',
    skip: mariadbTestOptions(),
    async start() {
      const server = await startMariadb();
      await execMariadb(
        server.url,
        `CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(100) NOT NULL)`,
        `INSERT INTO items SELECT seq, CONCAT('row ', seq) FROM seq_1_to_100`,
      );
      return {
        url: server.url,
        exec: async (sql) => void (await execMariadb(server.url, sql)),
        stop: () => server.stop(),
      };
    },
  },
];

for (const database of DATABASES)
  describe(`dip run --follow stopped by a signal (${database.name})`, database.skip, () => {
    let server: Database;
    let p: TestProject;
    const env = () => ({ FOLLOW_TEST_URL: server.url });
    const db = { query: (sql: string) => server.exec(sql) };

    before(async () => {
      server = await database.start();
      p = await TestProject.withSources({});
      await p.write(
        'dip.yaml',
        `version: 1
engine: { threads: 1, memory_limit: 256MB }
pipelines:
  p:
    sources:
      db:
        type: ${database.type}
        connection: { url: "\${env:FOLLOW_TEST_URL}" }
        mode: cdc
        tables: [items]
        cdc: { flush_interval: 200ms, idle_timeout: 3s }
`,
      );
    });

    after(async () => {
      await server?.stop();
      await p?.dispose();
    });

    function follow(): { child: ChildProcess; exit: Promise<number | null>; out: () => string; err: () => string } {
      const child = spawn(process.execPath, [CLI, '-p', p.dir, '--json', 'run', 'p', '--follow', '--quiet'], {
        env: { ...process.env, NO_COLOR: '1', ...env() },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
      const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, exit, out: () => out, err: () => err };
    }

    /** Change events in the lake's change log (read with the CLI: the follower holds the lake). */
    async function changeEvents(): Promise<number> {
      const r = await runCli(['--json', 'query', 'select count(*) as n from bronze.items_changes'], p.dir, env());
      if (r.code !== 0) return -1;
      return Number((JSON.parse(r.stdout) as { n: number }[])[0]?.n ?? -1);
    }

    async function waitForEvents(n: number, ms = 60_000): Promise<void> {
      const end = Date.now() + ms;
      let seen = -1;
      while (Date.now() < end) {
        seen = await changeEvents();
        if (seen >= n) return;
        await sleep(300);
      }
      assert.fail(`the change log holds ${seen} events, expected ${n}`);
    }

    it('SIGTERM: exit 0, the run succeeded, everything read committed, nothing read again on restart', {
      timeout: 180_000,
    }, async () => {
      const f = follow();
      await waitForEvents(100); // the snapshot
      for (let i = 101; i <= 130; i++) await db.query(`INSERT INTO items VALUES (${i}, 'row ${i}')`);
      await db.query(`UPDATE items SET label = CONCAT(label, ' (updated)') WHERE id <= 10`);
      await db.query(`DELETE FROM items WHERE id BETWEEN 11 AND 15`);
      // 30 inserts, 10 updates (one transaction), 5 deletes (one transaction)
      await waitForEvents(145);
      f.child.kill('SIGTERM');
      const code = await f.exit;
      assert.equal(code, 0, `exit code ${code}: ${f.err()}`);
      const [result] = JSON.parse(f.out()) as RunJson[];
      assert.equal(result?.status, 'succeeded');
      const status = JSON.parse((await runCli(['--json', 'status'], p.dir, env())).stdout) as {
        runs: { id: string; status: string; error: string | null }[];
      };
      const listed = status.runs.find((r) => r.id === result?.runId);
      assert.deepEqual([listed?.status, listed?.error], ['succeeded', null]);
      assert.equal(await changeEvents(), 145, 'every change read before the stop is in the lake');

      // A restart (without --follow) reads what changed since, and nothing it already has.
      await db.query(`INSERT INTO items VALUES (131, 'row 131')`);
      const again = await runCli(['--json', 'run', 'p', '--quiet'], p.dir, env());
      assert.equal(again.code, 0, again.stderr);
      const [second] = JSON.parse(again.stdout) as RunJson[];
      assert.equal(second?.status, 'succeeded');
      assert.equal(second?.stats.streams['db.items']?.rows, 1, 'only the new insert, nothing read again');
      assert.equal(await changeEvents(), 146, 'no event twice');
      const count = await runCli(['--json', 'query', 'select count(*) as n from bronze.items'], p.dir, env());
      assert.equal(Number((JSON.parse(count.stdout) as { n: number }[])[0]?.n), 126);
    });

    it('SIGKILL: the crashed run shows the rows its committed units landed', { timeout: 180_000 }, async () => {
      const before = await changeEvents();
      const f = follow();
      await sleep(1500);
      for (let i = 201; i <= 220; i++) await db.query(`INSERT INTO items VALUES (${i}, 'row ${i}')`);
      await waitForEvents(before + 20);
      f.child.kill('SIGKILL');
      await f.exit;
      const status = await runCli(['--json', 'status'], p.dir, env());
      assert.equal(status.code, 0, status.stderr);
      const runs = (JSON.parse(status.stdout) as { runs: { status: string; stats: RunJson['stats'] }[] }).runs;
      const killed = runs[0];
      assert.equal(killed?.status, 'crashed');
      assert.equal(killed?.stats.streams['db.items']?.rows, 20);
    });
  });
