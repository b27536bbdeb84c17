/**
 * `{interval.*}` templates: exact values, every string of a source config filled (and nothing
 * else touched), errors that name the field, and end to end — the REST emulator receiving the
 * rendered `since`, a test API receiving rendered path/params/headers/body, and PostgreSQL
 * queries and table filters reading exactly the rows of two intervals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadProject, type LoadedProject } from '../src/config/load.js';
import { sourceSchema, type SourceConfig } from '../src/config/schema.js';
import { DipError } from '../src/core/errors.js';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import { Lake } from '../src/lake/lake.js';
import { query } from '../src/lake/query.js';
import { intervalVariables, renderIntervalTemplates } from '../src/core/interval-templates.js';
import type { Interval } from '../src/orchestrate/schedule.js';
import { runPipeline, type RunResult } from '../src/pipeline/run.js';
import { TestApi } from './support/api-server.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { TestProject } from './support/project.js';

const day: Interval = { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-03-02T00:00:00Z') };

function configError(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof DipError, `expected a DipError, got ${String(err)}`);
    assert.equal(err.kind, 'config');
    assert.match(err.message, pattern);
    return true;
  };
}

describe('interval variables', () => {
  it('whole seconds drop the milliseconds; dates and epochs are UTC', () => {
    assert.deepEqual(intervalVariables(day), {
      'interval.start': '2026-03-01T00:00:00Z',
      'interval.start_date': '2026-03-01',
      'interval.start_epoch': '1772323200',
      'interval.start_ms': '1772323200000',
      'interval.end': '2026-03-02T00:00:00Z',
      'interval.end_date': '2026-03-02',
      'interval.end_epoch': '1772409600',
      'interval.end_ms': '1772409600000',
    });
  });

  it('keeps non-zero milliseconds; epoch seconds round down; the date is the UTC date', () => {
    const v = intervalVariables({
      start: new Date('2026-02-28T23:30:00.250Z'),
      end: new Date('2026-03-01T00:15:00.007Z'),
    });
    assert.equal(v['interval.start'], '2026-02-28T23:30:00.250Z');
    assert.equal(v['interval.start_epoch'], '1772321400');
    assert.equal(v['interval.start_ms'], '1772321400250');
    assert.equal(v['interval.start_date'], '2026-02-28');
    assert.equal(v['interval.end'], '2026-03-01T00:15:00.007Z');
    assert.equal(v['interval.end_epoch'], '1772324100');
  });
});

describe('renderIntervalTemplates', () => {
  const rest = (): SourceConfig =>
    sourceSchema.parse({
      type: 'rest',
      base_url: 'https://api.example.com/v1',
      headers: { Authorization: 'Bearer ${env:API_TOKEN}', 'X-Window': '{interval.start_ms}-{interval.end_ms}' },
      params: { limit: 100, include_deleted: false },
      resources: {
        posts: {
          params: {
            since: '{interval.start}',
            until: '{interval.end}',
            'page[size]': 50,
            after: '{incremental.start}',
          },
          incremental: { cursor_field: 'updated_at' },
        },
        comments: {
          path: '/days/{interval.start_date}/posts/{parent.id}/comments',
          parent: { resource: 'posts' },
          method: 'POST',
          body: {
            range: { from: '{interval.start_epoch}', to: '{interval.end_epoch}' },
            ids: ['{parent.id}', '{interval.end_date}'],
            n: 3,
            '{interval.start}': 'key kept',
          },
        },
      },
    });

  it('fills every string value, leaves keys, numbers, booleans and other placeholders alone, and copies', () => {
    const config = rest();
    const before = structuredClone(config);
    const out = renderIntervalTemplates(config, day, 'sources.api');
    assert.deepEqual(config, before, 'the input is not modified');
    assert.ok(out.type === 'rest' && config.type === 'rest');
    assert.notEqual(out.resources, config.resources);
    assert.deepEqual(out.headers, {
      Authorization: 'Bearer ${env:API_TOKEN}',
      'X-Window': '1772323200000-1772409600000',
    });
    assert.deepEqual(out.params, { limit: 100, include_deleted: false });
    assert.deepEqual(out.resources['posts']?.params, {
      since: '2026-03-01T00:00:00Z',
      until: '2026-03-02T00:00:00Z',
      'page[size]': 50,
      after: '{incremental.start}',
    });
    assert.equal(out.resources['comments']?.path, '/days/2026-03-01/posts/{parent.id}/comments');
    assert.deepEqual(out.resources['comments']?.body, {
      range: { from: '1772323200', to: '1772409600' },
      ids: ['{parent.id}', '2026-03-02'],
      n: 3,
      '{interval.start}': 'key kept',
    });
    // Everything else is the same config.
    assert.deepEqual({ ...out, headers: config.headers, resources: config.resources }, config);
  });

  it('fills SQL of database queries and table filters, and file paths', () => {
    const db = sourceSchema.parse({
      type: 'postgres',
      connection: { url: '${env:PG_URL}' },
      tables: [
        'plain',
        { name: 'events', where: "ts >= '{interval.start}' AND ts < '{interval.end}' AND tags @> '{a,b}'" },
      ],
      queries: { daily: { sql: "SELECT * FROM t WHERE day = DATE '{interval.start_date}'" } },
    });
    const out = renderIntervalTemplates(db, day, 'sources.db');
    assert.ok(out.type === 'postgres');
    assert.deepEqual(out.tables, [
      'plain',
      { name: 'events', where: "ts >= '2026-03-01T00:00:00Z' AND ts < '2026-03-02T00:00:00Z' AND tags @> '{a,b}'" },
    ]);
    assert.equal(out.queries['daily']?.sql, "SELECT * FROM t WHERE day = DATE '2026-03-01'");
    assert.equal(out.connection.url, '${env:PG_URL}');

    const files = sourceSchema.parse({
      type: 'files',
      streams: { orders: { path: ['static/*.csv', 'drops/{interval.start_date}/{a,b}*.csv'] } },
    });
    const rendered = renderIntervalTemplates(files, day, 'sources.files');
    assert.ok(rendered.type === 'files');
    assert.deepEqual(rendered.streams['orders']?.path, ['static/*.csv', 'drops/2026-03-01/{a,b}*.csv']);
  });

  it('an unknown {interval.…} name is a config error naming the field and the known names', () => {
    const config = sourceSchema.parse({
      type: 'rest',
      base_url: 'https://api.example.com',
      resources: { posts: { params: { since: '{interval.begin}' } } },
    });
    assert.throws(
      () => renderIntervalTemplates(config, day, 'sources.api'),
      configError(
        /^sources\.api\.resources\.posts\.params\.since: unknown placeholder \{interval\.begin\}; known: \{interval\.start\}, \{interval\.end\}, \{interval\.start_date\}, \{interval\.end_date\}, \{interval\.start_epoch\}, \{interval\.end_epoch\}, \{interval\.start_ms\}, \{interval\.end_ms\}$/,
      ),
    );
    // Also without an interval: the name is wrong either way. Array positions and odd keys are shown.
    assert.throws(
      () =>
        renderIntervalTemplates(
          { streams: { s: { path: ['a.csv', 'b/{interval.start-date}.csv'] } }, 'x y': '{interval.}' },
          null,
          'sources.files',
        ),
      configError(/^sources\.files\.streams\.s\.path\[1\]: unknown placeholder \{interval\.start-date\}/),
    );
    assert.throws(
      () => renderIntervalTemplates({ 'x y': '{interval.}' }, day, 'sources.f'),
      configError(/^sources\.f\["x y"\]: unknown placeholder \{interval\.\}/),
    );
  });

  it('without an interval, a template is a config error saying how to run with one; without templates the config passes', () => {
    const config = sourceSchema.parse({
      type: 'rest',
      base_url: 'https://api.example.com',
      resources: { posts: { params: { since: '{interval.start}', after: '{incremental.start}' } } },
    });
    assert.throws(
      () => renderIntervalTemplates(config, null, 'sources.api'),
      configError(
        /^the pipeline uses \{interval\.start\} at sources\.api\.resources\.posts\.params\.since, but this run has no data interval; run it from a schedule, a backfill or a trigger \(or pass --interval-start\/--interval-end\)$/,
      ),
    );
    const plain = sourceSchema.parse({
      type: 'rest',
      base_url: 'https://api.example.com',
      resources: { posts: { path: '/p/{parent.id}', parent: { resource: 'x' } }, x: {} },
    });
    assert.deepEqual(renderIntervalTemplates(plain, null, 'sources.api'), plain);
  });
});

/** Runs pipeline `p` of a test project with its sources rendered for `interval`. */
async function runForInterval(
  p: TestProject,
  interval: Interval,
): Promise<{
  result: RunResult;
  rows: (sql: string) => Promise<Record<string, unknown>[]>;
  close: () => Promise<void>;
}> {
  const loaded = await loadProject(p.dir);
  const pipeline = loaded.config.pipelines['p'];
  assert.ok(pipeline);
  const sources = Object.fromEntries(
    Object.entries(pipeline.sources).map(([name, s]) => [
      name,
      renderIntervalTemplates(s, interval, `pipelines.p.sources.${name}`),
    ]),
  );
  const rendered: LoadedProject = {
    ...loaded,
    config: { ...loaded.config, pipelines: { ...loaded.config.pipelines, p: { ...pipeline, sources } } },
  };
  const lake = await Lake.open(rendered);
  try {
    const result = await runPipeline(lake, 'p');
    if (result.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(result.errors, null, 2)}`);
    return { result, rows: async (sql) => (await query(lake, sql)).rows, close: () => lake.close() };
  } catch (err) {
    await lake.close();
    throw err;
  }
}

describe('rendered sources end to end', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('REST emulator: the rendered {interval.start} reaches the API as since= and filters the posts', async () => {
    const emulator = await SocialApiEmulator.start({ seed: 7, posts: 120, rateLimit: null });
    cleanups.push(() => emulator.close());
    const all = emulator.data.allPosts();
    // A whole second inside the range of updated_at values, so about half the posts are newer.
    const middle = Date.parse(all[Math.floor(all.length / 2)]?.updated_at ?? '');
    const interval: Interval = {
      start: new Date(Math.floor(middle / 1000) * 1000),
      end: new Date(Math.floor(middle / 1000) * 1000 + 86_400_000),
    };
    const expectedSince = interval.start.toISOString().replace('.000Z', 'Z');
    const expected = all.filter((post) => Date.parse(post.updated_at) >= interval.start.getTime());
    assert.ok(
      expected.length > 10 && expected.length < all.length - 10,
      `a filter that matters: ${expected.length} of ${all.length}`,
    );

    const p = await TestProject.withSources({
      social: {
        type: 'rest',
        base_url: emulator.url,
        auth: {
          type: 'oauth2_client_credentials',
          token_url: '/oauth/token',
          client_id: emulator.clientId,
          client_secret: emulator.clientSecret,
        },
        resources: {
          posts: {
            params: { limit: 20, since: '{interval.start}' },
            records: '$.data',
            paginator: {
              type: 'cursor',
              cursor_path: '$.paging.next_cursor',
              param: 'cursor',
              has_more_path: '$.paging.has_more',
            },
            primary_key: ['id'],
          },
        },
      },
    });
    cleanups.push(() => p.dispose());
    const run = await runForInterval(p, interval);
    try {
      assert.equal(run.result.stats.streams['social.posts']?.rows, expected.length);
      const ids = (await run.rows('select id from bronze.posts order by id')).map((r) => r['id']);
      assert.deepEqual(ids, expected.map((post) => post.id).sort());
      const urls = (await run.rows(`select distinct position->>'url' as url from raw.posts`)).map(
        (r) => new URL(String(r['url'])),
      );
      assert.ok(urls.length >= 2, 'several pages');
      assert.deepEqual([...new Set(urls.map((u) => u.searchParams.get('since')))], [expectedSince]);
    } finally {
      await run.close();
    }
  });

  it('REST test API: rendered path, params, headers and body arrive exactly; {parent.*} still works', async () => {
    const api = await TestApi.start((req) => {
      if (req.path === '/accounts') return { body: [{ id: 'a/1' }, { id: 'b2' }] };
      return { body: [{ id: `${req.path}:${req.method}` }] };
    });
    cleanups.push(() => api.close());
    const p = await TestProject.withSources({
      api: {
        type: 'rest',
        base_url: api.url,
        headers: { 'X-Window': '{interval.start_ms}..{interval.end_ms}' },
        resources: {
          accounts: { params: { from: '{interval.start}', to: '{interval.end}', day: '{interval.start_date}' } },
          stats: {
            path: '/accounts/{parent.id}/stats/{interval.start_date}',
            parent: { resource: 'accounts' },
            method: 'POST',
            body: { range: { from: '{interval.start_epoch}', to: '{interval.end_epoch}' }, account: '{parent.id}' },
          },
        },
      },
    });
    cleanups.push(() => p.dispose());
    const interval: Interval = { start: new Date('2026-03-01T06:00:00Z'), end: new Date('2026-03-01T07:00:00.500Z') };
    const run = await runForInterval(p, interval);
    await run.close();
    const list = api.to('/accounts');
    assert.equal(list.length, 1);
    assert.deepEqual(Object.fromEntries(list[0]?.query ?? []), {
      from: '2026-03-01T06:00:00Z',
      to: '2026-03-01T07:00:00.500Z',
      day: '2026-03-01',
    });
    assert.equal(list[0]?.headers['x-window'], '1772344800000..1772348400500');
    const stats = api.requests.filter((r) => r.path !== '/accounts').sort((a, b) => (a.path < b.path ? -1 : 1));
    assert.deepEqual(
      stats.map((r) => r.path),
      ['/accounts/a%2F1/stats/2026-03-01', '/accounts/b2/stats/2026-03-01'],
    );
    assert.deepEqual(
      stats.map((r) => JSON.parse(r.body) as unknown),
      [
        { range: { from: '1772344800', to: '1772348400' }, account: 'a/1' },
        { range: { from: '1772344800', to: '1772348400' }, account: 'b2' },
      ],
    );
    assert.ok(stats.every((r) => r.method === 'POST' && r.headers['x-window'] === '1772344800000..1772348400500'));
  });
});

describe('rendered PostgreSQL queries and table filters', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
    // One event per hour from 2026-03-01 00:00 UTC for three days: ids 1..72.
    await db.query('CREATE TABLE events (id int PRIMARY KEY, created_at timestamptz NOT NULL, kind text NOT NULL)');
    await db.query(
      `INSERT INTO events SELECT i, timestamptz '2026-03-01 00:00:00+00' + (i - 1) * interval '1 hour', CASE WHEN i % 3 = 0 THEN 'x' ELSE 'y' END FROM generate_series(1, 72) i`,
    );
  });

  after(async () => {
    await db?.end();
    await server?.stop();
  });

  it('queries.<name>.sql and tables[].where read exactly the rows of each interval', async () => {
    const p = await TestProject.withSources({
      db: {
        type: 'postgres',
        connection: { url: server.url },
        tables: [
          {
            name: 'events',
            stream: 'x_events',
            where: "kind = 'x' AND created_at >= '{interval.start}' AND created_at < '{interval.end}'",
          },
        ],
        queries: {
          interval_events: {
            sql: "SELECT id, created_at FROM events WHERE created_at >= '{interval.start}' AND created_at < '{interval.end}'",
            primary_key: ['id'],
          },
        },
      },
    });
    try {
      const summary = async (run: Awaited<ReturnType<typeof runForInterval>>, table: string) => {
        const row = (
          await run.rows(
            `select count(*)::INTEGER as n, min(id)::INTEGER as lo, max(id)::INTEGER as hi from bronze.${table}`,
          )
        )[0];
        return [row?.['n'], row?.['lo'], row?.['hi']];
      };
      // The first day: ids 1..24 (00:00 .. 23:00), the end bound excluded.
      const first = await runForInterval(p, {
        start: new Date('2026-03-01T00:00:00Z'),
        end: new Date('2026-03-02T00:00:00Z'),
      });
      try {
        assert.equal(first.result.stats.streams['db.interval_events']?.rows, 24);
        assert.deepEqual(await summary(first, 'interval_events'), [24, 1, 24]);
        assert.deepEqual(await summary(first, 'x_events'), [8, 3, 24]);
      } finally {
        await first.close();
      }
      // 2026-03-02 06:00 .. 2026-03-03 00:00: ids 31..48; replace swaps the table for them.
      const second = await runForInterval(p, {
        start: new Date('2026-03-02T06:00:00Z'),
        end: new Date('2026-03-03T00:00:00Z'),
      });
      try {
        assert.equal(second.result.stats.streams['db.interval_events']?.rows, 18);
        assert.deepEqual(await summary(second, 'interval_events'), [18, 31, 48]);
        assert.deepEqual(await summary(second, 'x_events'), [6, 33, 48]);
      } finally {
        await second.close();
      }
    } finally {
      await p.dispose();
    }
  });
});
