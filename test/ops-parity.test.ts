/**
 * The CLI and `dip serve` answer from one ops layer (src/ops/), so for the same project the
 * CLI's --json and the API give the same figures: tables (a CDC current-state table's true row
 * count, its pending delta changes applied), quarantine (per check, and the rows with their reasons),
 * runs (ids, statuses, tasks and their rows), quality reports and stream state. The new data
 * routes need the token like every other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type RunningServer, serve } from '../src/serve/server.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { projectWithSources, runCli, TestProject } from './support/project.js';

const TOKEN = 'ops-parity-token-0123456789abcdef';

describe('ops layer: CLI --json and the API agree', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;
  let p: TestProject;
  let api: RunningServer;

  const cli = async (...args: string[]): Promise<unknown> => {
    const r = await runCli(['--json', ...args], p.dir);
    assert.equal(r.code, 0, `dip ${args.join(' ')}: ${r.stderr}\n${r.stdout}`);
    return args[0] === 'run' ? r.stdout : (JSON.parse(r.stdout) as unknown);
  };
  // biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, asserted field by field
  const get = async (path: string, token: string | null = TOKEN): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${api.address}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    return { status: res.status, json: await res.json() };
  };

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
    await db.query(`CREATE TABLE members (id int PRIMARY KEY, email text NOT NULL, tier text NOT NULL)`);
    // 40 members, 3 of them in a tier the silver check refuses.
    await db.query(
      `INSERT INTO members SELECT i, 'm' || i || '@club.test', CASE WHEN i IN (7, 14, 21) THEN 'tin' WHEN i % 3 = 0 THEN 'gold' ELSE 'basic' END FROM generate_series(1, 40) i`,
    );
    p = await TestProject.withSources({});
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
        checks: [{ type: 'accepted_values', column: 'tier', values: ['basic', 'gold', 'platinum'], mostly: 0.9 }],
      },
    };
    // An orchestrated pipeline too, for `dip runs` (a CDC silver `from: <t>_changes` under `dip trigger`
    // is refused as "not a bronze table of this pipeline": the runs of `p` are `dip run` runs).
    (config['pipelines'] as Record<string, unknown>)['q'] = { sources: {}, tasks: { t: { shell: 'echo ok' } } };
    config['serve'] = { token: TOKEN };
    await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
    // Two runs; between them changes that land as a delta of bronze.members.
    await cli('run', 'p', '--quiet');
    await db.query(`UPDATE members SET tier = 'platinum' WHERE id <= 4`);
    await db.query(`DELETE FROM members WHERE id IN (30, 31)`);
    await cli('run', 'p', '--quiet');
    await cli('trigger', 'q');
    await cli('trigger', 'q');
    api = await serve(await p.lake(), {
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      tickMs: 1000,
      concurrency: 1,
      executor: 'in-process',
      scheduler: false,
      defaultMetrics: false,
    });
  });

  after(async () => {
    await api?.close({ graceMs: 0 });
    await p?.dispose();
    await db?.end();
    await server?.stop();
  });

  it('tables: the same rows per table, a CDC table counted as readers see it', async () => {
    const fromCli = (await cli('tables')) as { name: string; rows: number; pendingChanges?: number }[];
    const fromApi = (await get('/tables')).json.tables as { name: string; rows: number; pending_changes: number }[];
    assert.deepEqual(
      fromApi.map((t) => [t.name, t.rows, t.pending_changes]).sort(),
      fromCli.map((t) => [t.name, t.rows, t.pendingChanges ?? 0]).sort(),
    );
    // 40 merged rows (the snapshot); the 6 changes of the second run (4 updates, 2 deletes) are not
    // merged yet: the table holds 38 rows (issue 21: the true count, its pending changes applied).
    const members = fromApi.find((t) => t.name === 'bronze.members');
    const lake = await p.lake();
    const files = await lake.catalog.liveFiles('bronze.members');
    const pending = files.filter((f) => f.meta['cdc'] === 'delta').reduce((n, f) => n + f.rows, 0);
    assert.equal(pending, 6, 'the second run left its 6 changes (4 updates, 2 deletes) as a delta');
    assert.equal(members?.pending_changes, 6);
    assert.equal(members?.rows, 38);
    const one = (await get('/tables/bronze.members')).json;
    assert.deepEqual([one.rows, one.pending_changes], [38, 6]);
  });

  it('quarantine: the same counts per check, and the same rows with their reasons', async () => {
    const summaryCli = (await cli('quarantine', 'list')) as { summary: unknown[]; rows: unknown[] };
    const summaryApi = (await get('/quarantine')).json;
    assert.deepEqual(summaryApi, summaryCli);
    assert.deepEqual(summaryApi.summary, [
      { table: 'quarantine.silver__members', check: 'accepted_values_tier', rows: 3 },
    ]);
    const rowsCli = (await cli('quarantine', 'list', 'members', '--limit', '10')) as {
      rows: { id: number; reason: string }[];
    };
    const rowsApi = (await get('/quarantine?table=members&limit=10')).json;
    assert.deepEqual(rowsApi, rowsCli);
    assert.deepEqual(
      rowsApi.rows.map((r: { id: number }) => r.id).sort((a: number, b: number) => a - b),
      [7, 14, 21],
    );
    assert.ok(
      rowsApi.rows.every((r: { reason: string }) => r.reason.includes('tin')),
      JSON.stringify(rowsApi.rows),
    );
  });

  it('runs: the same runs, statuses, tasks and rows', async () => {
    // `dip run` runs: their stream stats.
    const status = (await cli('status')) as {
      runs: {
        id: string;
        pipeline: string;
        status: string;
        stats: { streams: Record<string, { rows: number; quarantined: number }> };
      }[];
    };
    const plain = status.runs.filter((r) => r.pipeline === 'p');
    assert.equal(plain.length, 2);
    for (const r of plain) {
      const fromApi = (await get(`/runs/${r.id}`)).json;
      assert.equal(fromApi.status, r.status);
      assert.deepEqual(fromApi.stats.streams, r.stats.streams);
    }
    const streams = plain.map((r) => r.stats.streams['silver.members']);
    assert.deepEqual(streams.map((s) => s?.quarantined).sort(), [0, 3]);
    // Orchestrated runs: `dip runs list/show` and GET /runs, /runs/:id.
    const listCli = (await cli('runs', 'list')) as { id: string; status: string; pipeline: string }[];
    const listApi = (await get('/runs')).json.runs as { id: string; status: string; pipeline: string }[];
    assert.equal(listCli.length, 2);
    assert.deepEqual(
      listApi.map((r) => [r.id, r.pipeline, r.status]),
      listCli.map((r) => [r.id, r.pipeline, r.status]),
    );
    assert.deepEqual(
      listApi.map((r) => r.status),
      ['succeeded', 'succeeded'],
    );
    for (const { id } of listCli) {
      const showCli = (await cli('runs', 'show', id)) as {
        run: { status: string };
        tasks: { task: string; status: string; rows: number }[];
      };
      const showApi = (await get(`/runs/${id}`)).json;
      assert.equal(showApi.status, showCli.run.status);
      assert.deepEqual(
        showApi.tasks.map((t: { task: string; status: string; rows: number }) => [t.task, t.status, t.rows]),
        showCli.tasks.map((t) => [t.task, t.status, t.rows]),
      );
      assert.deepEqual(
        showCli.tasks.map((t) => [t.task, t.status]),
        [['t', 'succeeded']],
      );
    }
  });

  it('quality and stream state: the same reports and positions', async () => {
    const qualityCli = (await cli('quality', 'members', '--runs', '5')) as {
      status: string;
      rows: number;
      runId: string;
      commitId: number | null;
      report: unknown;
    }[];
    const qualityApi = (await get('/tables/members/quality?runs=5')).json;
    assert.equal(qualityApi.table, 'silver.members');
    assert.deepEqual(
      qualityApi.reports.map((r: { status: string; rows: number; run_id: string; commit_id: number | null }) => [
        r.status,
        r.rows,
        r.run_id,
        r.commit_id,
      ]),
      qualityCli.map((r) => [r.status, r.rows, r.runId, r.commitId]),
    );
    assert.equal(qualityCli.length, 2);
    assert.deepEqual(
      qualityApi.reports.map((r: { report: unknown }) => r.report),
      qualityCli.map((r) => r.report),
    );
    const stateCli = (await cli('state', 'p')) as {
      source: string;
      stream: string;
      value: unknown;
      commitId: number;
    }[];
    const stateApi = (await get('/pipelines/p/state')).json;
    assert.deepEqual(
      stateApi.streams.map((s: { source: string; stream: string; value: unknown; commit_id: number }) => [
        s.source,
        s.stream,
        s.value,
        s.commit_id,
      ]),
      stateCli.map((s) => [s.source, s.stream, s.value, s.commitId]),
    );
    assert.ok(stateCli.length >= 1);
    const missing = await get('/pipelines/p/state?stream=nope');
    assert.equal(missing.status, 404);
    assert.match(missing.json.error.message, /^no saved state for stream nope of p \(streams with state: /);
    assert.equal((await get('/tables/nope/quality')).status, 404);
  });

  it('the new data routes need the token and are in the OpenAPI document', async () => {
    for (const path of ['/quarantine', '/quarantine?table=members', '/tables/members/quality', '/pipelines/p/state']) {
      const none = await get(path, null);
      assert.equal(none.status, 401, path);
      assert.doesNotMatch(JSON.stringify(none.json), /tin|club\.test|accepted_values/, path);
      assert.equal((await get(path, `${TOKEN}x`)).status, 403, path);
    }
    const doc = (await get('/openapi.json')).json;
    for (const path of ['/quarantine', '/tables/{name}/quality', '/pipelines/{name}/state'])
      assert.deepEqual(doc.paths[path].get.security, [{ bearer: [] }], path);
    assert.deepEqual(
      doc.paths['/quarantine'].get.parameters.map((x: { name: string }) => x.name),
      ['table', 'check', 'limit'],
    );
  });

  it('compact: POST /tables/:name/compact runs what dip compact runs, and the rows stay the same', async () => {
    const post = async (path: string, body: unknown, token: string | null = TOKEN) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token) headers['authorization'] = `Bearer ${token}`;
      const res = await fetch(`${api.address}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const rowsBefore = (await get('/tables/bronze.members_changes')).json.rows;
    const dryCli = (await cli('compact', 'bronze.members_changes', '--dry-run')) as {
      inputFiles: number;
      rows: number;
    }[];
    const dryApi = await post('/tables/bronze.members_changes/compact', { dry_run: true });
    assert.equal(dryApi.status, 200);
    assert.deepEqual(
      [dryApi.json['input_files'], dryApi.json['rows'], dryApi.json['commit_id']],
      [dryCli[0]?.inputFiles, dryCli[0]?.rows, null],
    );
    assert.equal(dryCli[0]?.inputFiles, 2, 'the change log holds one file per run');
    assert.equal(dryCli[0]?.rows, 46, '40 snapshot rows + 4 updates + 2 deletes');
    assert.equal((await post('/tables/bronze.members_changes/compact', {}, null)).status, 401);
    assert.equal((await post('/tables/silver.nope/compact', {})).status, 404);
    const done = await post('/tables/bronze.members_changes/compact', {});
    assert.equal(done.status, 200);
    assert.equal(typeof done.json['commit_id'], 'number');
    const lake = await p.lake();
    assert.equal((await lake.catalog.liveFiles('bronze.members_changes')).length, 1);
    assert.equal((await get('/tables/bronze.members_changes')).json.rows, rowsBefore);
  });
});
