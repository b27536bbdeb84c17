/**
 * The CDC equivalence test: pgbench's tables streamed while pgbench runs thousands of
 * transactions, the pipeline process killed (SIGKILL) and restarted twice in the middle; at
 * the end the lake's current-state tables equal the source tables row for row, compared by
 * checksums computed in each database.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { findPostgresBinDir, type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Per table: row count and an md5 over every row's values in key order, same text in both databases. */
const CHECKS: Record<string, { pg: string; lake: string }> = {
  accounts: {
    pg: `SELECT count(*)::text AS n, md5(string_agg(aid || ':' || bid || ':' || abalance || ':' || rtrim(filler), ',' ORDER BY aid)) AS h FROM pgbench_accounts`,
    lake: `SELECT count(*)::VARCHAR AS n, md5(string_agg(aid || ':' || bid || ':' || abalance || ':' || rtrim(filler), ',' ORDER BY aid)) AS h FROM bronze.pgbench_accounts`,
  },
  tellers: {
    pg: `SELECT count(*)::text AS n, md5(string_agg(tid || ':' || bid || ':' || tbalance, ',' ORDER BY tid)) AS h FROM pgbench_tellers`,
    lake: `SELECT count(*)::VARCHAR AS n, md5(string_agg(tid || ':' || bid || ':' || tbalance, ',' ORDER BY tid)) AS h FROM bronze.pgbench_tellers`,
  },
  branches: {
    pg: `SELECT count(*)::text AS n, md5(string_agg(bid || ':' || bbalance, ',' ORDER BY bid)) AS h FROM pgbench_branches`,
    lake: `SELECT count(*)::VARCHAR AS n, md5(string_agg(bid || ':' || bbalance, ',' ORDER BY bid)) AS h FROM bronze.pgbench_branches`,
  },
  history: {
    pg: `SELECT count(*)::text AS n, md5(string_agg(id || ':' || tid || ':' || bid || ':' || aid || ':' || delta || ':' || (extract(epoch FROM mtime) * 1000000)::bigint, ',' ORDER BY id)) AS h FROM pgbench_history`,
    lake: `SELECT count(*)::VARCHAR AS n, md5(string_agg(id || ':' || tid || ':' || bid || ':' || aid || ':' || delta || ':' || epoch_us(mtime), ',' ORDER BY id)) AS h FROM bronze.pgbench_history`,
  },
};

describe('postgres CDC under pgbench with the pipeline killed twice', postgresTestOptions(), () => {
  let server: PostgresServer;
  let dir: string;
  let db: pg.Client;
  const pgbench = join(findPostgresBinDir() ?? '/usr/bin', 'pgbench');

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
    const init = spawnSync(pgbench, ['-i', '-s', '1', '-q', server.url], { encoding: 'utf8' });
    assert.equal(init.status, 0, init.stderr);
    // pgbench_history has no key; the current-state table needs one (pgbench names its columns on insert).
    await db.query('ALTER TABLE pgbench_history ADD COLUMN id bigserial PRIMARY KEY');
    dir = await mkdtemp(join(tmpdir(), 'dip-cdc-'));
    await writeFile(
      join(dir, 'dip.yaml'),
      `version: 1
engine: { threads: 2, memory_limit: 512MB }
pipelines:
  bench:
    sources:
      db:
        type: postgres
        connection: { url: "\${env:CDC_TEST_PG_URL}" }
        mode: cdc
        tables: [pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history]
        cdc: { flush_interval: 300ms, idle_timeout: 3s }
`,
    );
  });

  after(async () => {
    await db?.end();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ends with lake tables equal to the source tables', { timeout: 240_000 }, async () => {
    assert.ok(existsSync(pgbench), `pgbench not found at ${pgbench}`);
    const env = { ...process.env, CDC_TEST_PG_URL: server.url };
    const follow = (): ChildProcess =>
      spawn(process.execPath, [CLI, '-p', dir, 'run', 'bench', '--follow', '--quiet'], {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    const load = spawn(pgbench, ['-n', '-c', '4', '-j', '2', '-T', '14', '-R', '600', server.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let loadOut = '';
    load.stdout?.on('data', (d: Buffer) => (loadOut += d.toString()));
    load.stderr?.on('data', (d: Buffer) => (loadOut += d.toString()));
    const loadDone = new Promise<number | null>((resolve) => load.on('exit', resolve));

    let kills = 0;
    for (const ms of [1500, 2500]) {
      const child = follow();
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      // Kill it while it streams: after the initial snapshot has landed (slow machines take longer to get there).
      await Promise.race([snapshotLanded(dir, 90_000), exited]);
      await Promise.race([sleep(ms), exited]);
      assert.equal(child.exitCode, null, `the follower stopped on its own: ${stderr}`);
      child.kill('SIGKILL');
      await exited;
      kills++;
    }
    // A third follower stays until the load is over, then stops gracefully.
    const last = follow();
    let lastErr = '';
    last.stderr?.on('data', (d: Buffer) => (lastErr += d.toString()));
    const lastExit = new Promise<number | null>((resolve) => last.on('exit', resolve));
    assert.equal(await loadDone, 0, loadOut);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(loadOut)?.[1]);
    assert.ok(processed >= 3000, `pgbench ran only ${processed} transactions:\n${loadOut}`);
    await sleep(1000);
    last.kill('SIGTERM');
    await lastExit;
    assert.equal(kills, 2);

    // Catch up with what is left, then compare.
    const final = spawnSync(process.execPath, [CLI, '-p', dir, 'run', 'bench', '--quiet', '--json'], {
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(
      final.status,
      0,
      `final run (status ${final.status}, signal ${final.signal}): ${final.stderr}\n${final.stdout.slice(-3000)}\n(follower: ${lastErr})`,
    );
    for (const [name, check] of Object.entries(CHECKS)) {
      const source = (await db.query<{ n: string; h: string }>(check.pg)).rows[0];
      const q = spawnSync(process.execPath, [CLI, '-p', dir, 'query', '--json', check.lake], { env, encoding: 'utf8' });
      assert.equal(q.status, 0, q.stderr);
      const lake = (JSON.parse(q.stdout) as { n: string; h: string }[])[0];
      assert.deepEqual(lake, source, `${name}: lake differs from source`);
    }
    // Changes were streamed (not only re-read by snapshots): most pgbench updates are events in the change log.
    const q = spawnSync(
      process.execPath,
      [
        CLI,
        '-p',
        dir,
        'query',
        '--json',
        `SELECT count(*)::INTEGER AS n FROM bronze.pgbench_accounts_changes WHERE _cdc_op = 'u'`,
      ],
      { env, encoding: 'utf8' },
    );
    const updates = (JSON.parse(q.stdout) as { n: number }[])[0]?.n ?? 0;
    process.stderr.write(`cdc under pgbench: ${updates} update events for ${processed} transactions\n`);
    assert.ok(updates >= processed / 2, `only ${updates} update events for ${processed} transactions`);
    const history = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history')).rows[0]?.n);
    assert.equal(history, processed);
  });
});

/** Resolves once the initial snapshot of pgbench_accounts is committed to the project's catalog. */
async function snapshotLanded(dir: string, timeoutMs: number): Promise<void> {
  const Database = await (await import('../src/core/sqlite-native.js')).loadSqlite();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const db = new Database(join(dir, '.dip', 'catalog.db'), { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare(`SELECT head_commit FROM dip_tables WHERE name = 'bronze.pgbench_accounts'`).get() as
          | { head_commit: number | null }
          | undefined;
        if (row?.head_commit != null) return;
      } finally {
        db.close();
      }
    } catch {
      // not created yet, or busy: look again
    }
    if (Date.now() > deadline) throw new Error(`the initial snapshot did not land within ${timeoutMs} ms`);
    await sleep(100);
  }
}
