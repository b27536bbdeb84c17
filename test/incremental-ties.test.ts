/**
 * Incremental database reads against real PostgreSQL and MariaDB: a table without a primary key
 * loses no row that shares the last cursor value and arrives later (identical rows counted, not
 * collapsed); a merge stream commits every chunk with its position; a run SIGKILLed between
 * chunks resumes without loss or duplicates.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { execMariadb, type MariadbServer, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { CLI, TestProject } from './support/project.js';

interface Dialect {
  name: string;
  type: 'postgres' | 'mysql';
  options: () => { skip?: string };
  start(): Promise<{ url: string; exec(sql: string): Promise<Record<string, unknown>[]>; stop(): Promise<void> }>;
  timestamp: string;
  text: string;
}

const dialects: Dialect[] = [
  {
    name: 'postgres',
    type: 'postgres',
    options: postgresTestOptions,
    timestamp: 'timestamp',
    text: 'text',
    async start() {
      const server: PostgresServer = await startPostgres();
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      return {
        url: server.url,
        exec: async (sql) => (await client.query(sql)).rows as Record<string, unknown>[],
        stop: async () => {
          await client.end();
          await server.stop();
        },
      };
    },
  },
  {
    name: 'mariadb',
    type: 'mysql',
    options: mariadbTestOptions,
    timestamp: 'DATETIME(6)',
    text: 'VARCHAR(40)',
    async start() {
      const server: MariadbServer = await startMariadb();
      return {
        url: server.url,
        exec: async (sql) => (await execMariadb(server.url, sql)) as Record<string, unknown>[],
        stop: () => server.stop(),
      };
    },
  },
];

const T = (minute: number) => `'2024-01-01 10:${String(minute).padStart(2, '0')}:00'`;
const row = (minute: number, v: number, note: string | null) =>
  `(${T(minute)}, ${v}, ${note === null ? 'NULL' : `'${note}'`})`;

/**
 * `dip run` as a child process, SIGKILLed `delayMs` after its `commits`-th unit commit (the
 * run's log on stderr), so the kill lands between or inside later chunks, never during start-up.
 */
function runAndKillAfter(
  dir: string,
  commits: number,
  delayMs: number,
): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '-p', dir, 'run', '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      seen += chunk.split('"msg":"unit_committed"').length - 1;
      if (seen >= commits && !timer) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code });
    });
  });
}

/** One number from `dip query` (the CLI, so no lake stays open in this process beside a run). */
function cliCount(dir: string, table: string): number {
  const r = spawnSync(process.execPath, [CLI, '-p', dir, 'query', '--json', `select count(*) as n from ${table}`], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return 0; // the table does not exist before its first commit
  return Number((JSON.parse(r.stdout) as { n: unknown }[])[0]?.n);
}

for (const d of dialects) {
  describe(`incremental reads on ${d.name}`, d.options(), () => {
    let db: Awaited<ReturnType<Dialect['start']>>;
    const projects: TestProject[] = [];

    before(async () => {
      db = await d.start();
    });

    after(async () => {
      for (const p of projects) await p.dispose();
      await db?.stop();
    });

    const project = async (tables: unknown[]) => {
      const p = await TestProject.withSources({
        db: { type: d.type, connection: { url: db.url }, mode: 'incremental', tables },
      });
      projects.push(p);
      return p;
    };

    /** Every row as `v|note`, sorted: a multiset to compare the lake with the source. */
    const sourceRows = async (table: string) =>
      (await db.exec(`SELECT v, note FROM ${table}`)).map((r) => `${r['v']}|${r['note'] ?? ''}`).sort();
    const lakeRows = async (p: TestProject, table: string) =>
      (await p.rows(`SELECT v, note FROM bronze.${table}`)).map((r) => `${r['v']}|${r['note'] ?? ''}`).sort();

    it('without a primary key, rows tied with the last cursor value that arrive later land once', async () => {
      await db.exec(`CREATE TABLE ties (updated_at ${d.timestamp} NOT NULL, v INT, note ${d.text})`);
      const first = [
        ...Array.from({ length: 12 }, (_, i) => row(1, i + 1, `a${i + 1}`)),
        ...Array.from({ length: 7 }, (_, i) => row(2, i + 13, `b${i + 13}`)),
        row(2, 20, 'dup'),
        row(2, 20, 'dup'),
      ];
      await db.exec(`INSERT INTO ties (updated_at, v, note) VALUES ${first.join(', ')}`);
      const p = await project([{ name: 'ties', cursor: 'updated_at', chunk_rows: 5 }]);
      const r1 = await p.runOk();
      assert.equal(r1.stats.streams['db.ties']?.rows, 21);
      // Chunks of 5 never split a cursor value: 1:00 (12 rows) and 2:00 (9 rows), one unit each.
      assert.equal(r1.stats.streams['db.ties']?.commits, 2);
      assert.deepEqual(await lakeRows(p, 'ties'), await sourceRows('ties'));

      // Late rows at the last value (one a third copy of a row landed twice), and newer ones.
      await db.exec(
        `INSERT INTO ties (updated_at, v, note) VALUES ${[row(2, 22, 'late'), row(2, 20, 'dup'), row(2, 23, null), row(3, 24, 'c24'), row(3, 25, 'c25')].join(', ')}`,
      );
      const r2 = await p.runOk();
      assert.equal(r2.stats.streams['db.ties']?.rows, 5);
      assert.equal(await p.count('bronze.ties'), 26);
      assert.deepEqual(await lakeRows(p, 'ties'), await sourceRows('ties'));
      assert.equal(await p.num(`SELECT count(*) FROM bronze.ties WHERE note = 'dup'`), 3);

      const r3 = await p.runOk();
      assert.equal(r3.stats.streams['db.ties']?.rows, 0, 'nothing new: nothing read twice');
      assert.equal(r3.stats.streams['db.ties']?.commits, 0);

      // Only late ties, nothing newer: they land alone.
      await db.exec(`INSERT INTO ties (updated_at, v, note) VALUES ${row(3, 26, 'c26')}`);
      const r4 = await p.runOk();
      assert.equal(r4.stats.streams['db.ties']?.rows, 1);
      assert.deepEqual(await lakeRows(p, 'ties'), await sourceRows('ties'));
      assert.equal(await p.count('bronze.ties'), 27);

      const lake = await p.lake();
      const state = (await lake.catalog.getState('p', 'db', 'ties')) as {
        last: string[];
        tied: Record<string, number>;
      };
      assert.equal(
        Object.values(state.tied).reduce((a, b) => a + b, 0),
        3,
        'three rows at 10:03 landed',
      );
      assert.ok(Object.keys(state.tied).every((h) => /^[0-9a-f]{16}$/.test(h)));
    });

    it('incremental merge commits every chunk with its position', async () => {
      await db.exec('CREATE TABLE chunked (id INT PRIMARY KEY, updated_at INT NOT NULL, v INT, note VARCHAR(10))');
      const values = Array.from({ length: 150 }, (_, i) => `(${i + 1}, ${1000 + i}, ${i}, 'n${i}')`);
      await db.exec(`INSERT INTO chunked (id, updated_at, v, note) VALUES ${values.join(', ')}`);
      const p = await project([{ name: 'chunked', cursor: 'updated_at', chunk_rows: 10 }]);
      const r = await p.runOk();
      const s = r.stats.streams['db.chunked'];
      assert.deepEqual([s?.files, s?.commits, s?.rows], [15, 15, 150], '15 chunks, 15 commits');
      const lake = await p.lake();
      const commits = (await lake.catalog.listCommits({ table: 'bronze.chunked', limit: 100 })).reverse();
      assert.equal(commits.length, 15);
      assert.ok(commits.every((c) => c.operation === 'merge'));
      for (const [i, c] of commits.entries()) {
        assert.equal(await p.count('bronze.chunked', { commit: c.id }), 10 * (i + 1), `rows as of chunk ${i + 1}`);
        assert.deepEqual(
          (c.summary as { inputs?: string[] }).inputs?.[0]?.endsWith(`updated_at ≤ ${1009 + 10 * i}`),
          true,
        );
      }
      assert.deepEqual(((await lake.catalog.getState('p', 'db', 'chunked')) as { last: string[] }).last, [
        '1149',
        '150',
      ]);
    });

    it('a run SIGKILLed between chunks resumes without loss or duplicates', async () => {
      await db.exec(`CREATE TABLE killed_log (updated_at ${d.timestamp} NOT NULL, v INT, note ${d.text})`);
      await db.exec('CREATE TABLE killed_rows (id INT PRIMARY KEY, updated_at INT NOT NULL, v INT, note VARCHAR(10))');
      // 40 cursor values × 75 rows without a key (chunks hold whole cursor values), 6,000 keyed rows.
      for (let m = 0; m < 40; m += 10) {
        const batch: string[] = [];
        for (let minute = m; minute < m + 10; minute++)
          for (let i = 0; i < 75; i++) batch.push(row(minute, minute * 100 + i, `k${i % 50}`));
        await db.exec(`INSERT INTO killed_log (updated_at, v, note) VALUES ${batch.join(', ')}`);
      }
      for (let start = 0; start < 6000; start += 1000) {
        const batch = Array.from(
          { length: 1000 },
          (_, i) => `(${start + i + 1}, ${(start + i) % 3000}, ${start + i}, 'r')`,
        );
        await db.exec(`INSERT INTO killed_rows (id, updated_at, v, note) VALUES ${batch.join(', ')}`);
      }
      const p = await project([
        { name: 'killed_log', cursor: 'updated_at', chunk_rows: 100 },
        { name: 'killed_rows', cursor: 'updated_at', chunk_rows: 150 },
      ]);
      const total = { killed_log: 3000, killed_rows: 6000 };
      let partial = 0;
      let kills = 0;
      for (let attempt = 0; attempt < 4; attempt++) {
        const r = await runAndKillAfter(p.dir, 5 + attempt * 2, (attempt * 37) % 100);
        assert.ok(r.killed, `run ${attempt + 1} was killed (exit ${r.code})`);
        kills++;
        const n = cliCount(p.dir, 'bronze.killed_log');
        const m = cliCount(p.dir, 'bronze.killed_rows');
        if ((n > 0 && n < total.killed_log) || (m > 0 && m < total.killed_rows)) partial++;
        assert.ok(n <= total.killed_log && m <= total.killed_rows, `never more than the source (${n}, ${m})`);
      }
      assert.deepEqual([kills, partial], [4, 4], 'every kill left the tables part-way');
      await p.runOk();
      assert.equal(await p.count('bronze.killed_log'), total.killed_log);
      assert.deepEqual(await lakeRows(p, 'killed_log'), await sourceRows('killed_log'));
      assert.equal(await p.count('bronze.killed_rows'), total.killed_rows);
      assert.equal(await p.num('SELECT count(DISTINCT id) FROM bronze.killed_rows'), total.killed_rows);
      assert.equal(await p.num('SELECT sum(v) FROM bronze.killed_rows'), (5999 * 6000) / 2);
      const again = await p.runOk();
      assert.deepEqual(
        [again.stats.streams['db.killed_log']?.rows, again.stats.streams['db.killed_rows']?.rows],
        [0, 0],
      );
    });
  });
}
