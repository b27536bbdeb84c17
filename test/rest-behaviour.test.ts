/**
 * The REST source's behaviour under load and over time: rate limits and failures (every
 * record exactly once, the budget never exceeded), incremental loads, parent/child
 * resources, failed requests re-fetched with --retry-failed, pagination loops, time windows.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { RestFixtures, items } from './support/api-server.js';

const { api, project, dispose } = new RestFixtures();
after(dispose);

/** The most requests that started inside any window of `ms`. */
function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while ((t[i] as number) - (t[j] as number) >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('rate limits and failures', () => {
  it('429 with Retry-After and random 500s: every record once, budget kept, retries reported', async () => {
    const data = items(600);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const window: number[] = [];
    const server = await api((req) => {
      const now = Date.now();
      while (window.length && now - (window[0] as number) >= 1000) window.shift();
      window.push(now);
      if (window.length > 12) return { status: 429, headers: { 'retry-after': '1' }, body: { error: 'rate limited' } };
      if (random() < 0.15) return { status: 500, body: { error: 'boom' } };
      const offset = Number(req.query.get('offset'));
      return { body: { data: data.slice(offset, offset + 20), total: data.length } };
    });
    const p = await project({
      base_url: server.url,
      http: {
        rate_limit: { requests: 10, per: '1s' },
        concurrency: { max: 6 },
        retry: { attempts: 8, initial_delay: '20ms', max_delay: '200ms' },
      },
      resources: {
        rows: {
          records: '$.data',
          paginator: { type: 'offset', limit: 20, total_path: '$.total' },
          primary_key: ['id'],
        },
      },
    });
    const r = await p.runOk();
    assert.deepEqual(
      [await p.count('bronze.rows'), await p.num('select count(distinct id) from bronze.rows')],
      [600, 600],
    );
    assert.ok(
      maxInWindow(
        server.requests.map((q) => q.at),
        1000,
      ) <= 10,
      'declared budget of 10 requests per second never exceeded',
    );
    const failures = server.requests.length - 30;
    const stats = r.stats.streams['api.rows']?.source ?? {};
    assert.ok(failures > 0, 'the server failed some requests');
    assert.equal(stats['retries'], failures, 'every failed request was retried, and reported');
  });

  it('a pagination loop (the same cursor forever) fails with a clear error', async () => {
    const server = await api(() => ({ body: { data: items(5), next: 'abc' } }));
    const p = await project({
      base_url: server.url,
      resources: { loop: { records: '$.data', paginator: { type: 'cursor', cursor_path: '$.next', param: 'c' } } },
    });
    const r = await p.run();
    assert.equal(r.status, 'failed');
    assert.match(r.errors[0]?.message ?? '', /pagination loop/);
    assert.ok(server.requests.length <= 3, `stopped after ${server.requests.length} requests`);
  });

  it('max_pages stops a runaway listing with an error naming the limit', async () => {
    let n = 0;
    const server = await api(() => ({ body: { data: items(2, ++n * 10), next: String(n) } }));
    const p = await project({
      base_url: server.url,
      resources: {
        many: { records: '$.data', max_pages: 5, paginator: { type: 'cursor', cursor_path: '$.next', param: 'c' } },
      },
    });
    const r = await p.run();
    assert.match(r.errors[0]?.message ?? '', /max_pages=5/);
    assert.equal(server.requests.length, 5);
  });
});

describe('incremental', () => {
  it('a second run fetches only new and changed records', async () => {
    let data = items(50);
    const server = await api((req) => {
      const since = req.query.get('since');
      const sorted = [...data].sort((a, b) => a.updated_at.localeCompare(b.updated_at) || a.id - b.id);
      const rows = since ? sorted.filter((d) => d.updated_at >= since) : sorted;
      const cursor = Number(req.query.get('cursor') ?? 0);
      return {
        body: { data: rows.slice(cursor, cursor + 10), next: cursor + 10 < rows.length ? String(cursor + 10) : null },
      };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        rows: {
          records: '$.data',
          paginator: { type: 'cursor', cursor_path: '$.next', param: 'cursor' },
          primary_key: ['id'],
          write_disposition: 'merge',
          incremental: { cursor_field: 'updated_at', param: 'since', start: '2020-01-01T00:00:00Z' },
        },
      },
    });
    await p.runOk();
    assert.equal(await p.count('bronze.rows'), 50);
    // 3 changed, 5 new; the last record (the current cursor value) is served again but skipped.
    const later = '2026-06-01T00:00:00.000Z';
    data = data
      .map((d) => (d.id <= 3 ? { ...d, amount: -d.id, updated_at: later } : d))
      .concat(items(5, 51).map((d) => ({ ...d, updated_at: later })));
    server.requests.length = 0;
    const r = await p.runOk();
    assert.equal(server.requests[0]?.query.get('since'), items(50)[49]?.updated_at);
    assert.equal(r.stats.streams['api.rows']?.rows, 8);
    assert.equal(r.stats.streams['api.rows']?.source?.['skipped_records'], 1);
    assert.equal(await p.count('bronze.rows'), 55);
    assert.equal(await p.num('select sum(amount) from bronze.rows where id <= 3'), -6);
    // A third run with nothing new writes no rows.
    const again = await p.runOk();
    assert.equal(again.stats.streams['api.rows']?.rows, 0);
  });
});

describe('parent and child resources', () => {
  const posts = items(12).map((d) => ({ id: `p${d.id}`, title: d.name }));
  const comments = (postId: string) =>
    Array.from({ length: Number(postId.slice(1)) % 4 }, (_, i) => ({ id: `${postId}-c${i}`, text: `comment ${i}` }));

  it('children are fetched per parent record, with parent fields copied in', async () => {
    const server = await api((req) => {
      if (req.path === '/posts') return { body: { data: posts } };
      const m = /^\/posts\/(p\d+)\/comments$/.exec(req.path);
      return m ? { body: { data: comments(m[1] as string) } } : { status: 404, body: {} };
    });
    const p = await project({
      base_url: server.url,
      http: { concurrency: { max: 4 } },
      resources: {
        comments: {
          path: '/posts/{parent.id}/comments',
          records: '$.data',
          parent: { resource: 'posts', fields: { post_id: 'id', post_title: 'title' } },
        },
        posts: { records: '$.data', primary_key: ['id'] },
      },
    });
    await p.runOk();
    assert.equal(server.to('/posts').length, 1, 'the parent is read once; children use its records');
    const expected = posts.reduce((n, post) => n + comments(post.id).length, 0);
    assert.equal(await p.count('bronze.comments'), expected);
    assert.equal(await p.num(`select count(*) from bronze.comments where post_id = 'p7' and post_title = 'item 7'`), 3);
    assert.equal(await p.num(`select count(*) from bronze.comments where not starts_with(id, post_id || '-')`), 0);
  });

  it('a child request that keeps failing is recorded and re-fetched with --retry-failed', async () => {
    let broken = true;
    const server = await api((req) => {
      if (req.path === '/posts') return { body: { data: posts } };
      const m = /^\/posts\/(p\d+)\/comments$/.exec(req.path);
      if (m?.[1] === 'p7' && broken) return { status: 503, body: { error: 'unavailable' } };
      return { body: { data: comments(m?.[1] as string) } };
    });
    const p = await project({
      base_url: server.url,
      http: { retry: { attempts: 2, initial_delay: '10ms' } },
      resources: {
        posts: { records: '$.data' },
        comments: {
          path: '/posts/{parent.id}/comments',
          records: '$.data',
          parent: { resource: 'posts', fields: { post_id: 'id' } },
        },
      },
    });
    const first = await p.run();
    assert.equal(first.status, 'failed');
    assert.match(first.errors[0]?.message ?? '', /1 request\(s\) of comments still failed.*--retry-failed/s);
    const total = posts.reduce((n, post) => n + comments(post.id).length, 0);
    assert.equal(await p.count('bronze.comments'), total - 3, 'every other parent landed');
    broken = false;
    server.requests.length = 0;
    await p.runOk('p', { retryFailed: true, streams: ['comments'] });
    assert.deepEqual(
      server.requests.map((r) => r.path),
      ['/posts/p7/comments'],
      'exactly the failed request again',
    );
    assert.equal(await p.count('bronze.comments'), total);
    const state = (await (await p.lake()).catalog.getState('p', 'api', 'comments')) as { failed?: unknown[] };
    assert.equal(state.failed, undefined);
  });
});

describe('time windows', () => {
  it('a range is read in windows; the next run starts where the last window ended', async () => {
    const server = await api((req) => ({ body: { data: [{ day: req.query.get('from'), to: req.query.get('to') }] } }));
    const p = await project({
      base_url: server.url,
      resources: {
        daily: {
          records: '$.data',
          window: {
            start_param: 'from',
            end_param: 'to',
            from: '2026-01-01',
            to: '2026-01-05T00:00:00Z',
            step: '1d',
            format: 'date',
          },
        },
      },
    });
    await p.runOk();
    assert.deepEqual(
      (await p.rows('select day, "to" from bronze.daily order by day')).map(
        (r) => `${String(r['day'])}..${String(r['to'])}`,
      ),
      ['2026-01-01..2026-01-02', '2026-01-02..2026-01-03', '2026-01-03..2026-01-04', '2026-01-04..2026-01-05'],
    );
    const state = (await (await p.lake()).catalog.getState('p', 'api', 'daily')) as { windows_done_until?: string };
    assert.equal(state.windows_done_until, '2026-01-05T00:00:00.000Z');
    server.requests.length = 0;
    await p.runOk();
    assert.equal(server.requests.length, 0, 'no window left to read');
  });
});

describe('a child stream run on its own', () => {
  it('reads its parent listing itself (without committing it) and uses nested parent fields', async () => {
    const posts = items(5).map((d) => ({ id: d.id, author: { id: `a${d.id}`, name: 'x' }, body: 'long text' }));
    const server = await api((req) => {
      if (req.path === '/posts') return { body: posts };
      const m = /^\/authors\/(a\d+)\/posts\/(\d+)$/.exec(req.path);
      return { body: [{ seen: `${m?.[1]}/${m?.[2]}` }] };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        posts: {},
        detail: {
          path: '/authors/{parent.author.id}/posts/{parent.id}',
          parent: { resource: 'posts', fields: { author_id: 'author.id' } },
        },
      },
    });
    await p.runOk('p', { streams: ['detail'] });
    assert.deepEqual(
      (await p.rows('select seen, author_id from bronze.detail order by seen')).map(
        (r) => `${String(r['seen'])} ${String(r['author_id'])}`,
      ),
      ['a1/1 a1', 'a2/2 a2', 'a3/3 a3', 'a4/4 a4', 'a5/5 a5'],
    );
    assert.equal(await (await p.lake()).catalog.getTable('bronze.posts'), undefined, 'the parent was read, not landed');
  });
});

describe('resources in parallel', () => {
  it('independent resources are fetched at the same time; a child still waits for its parent', async () => {
    const server = await api(
      (req) => {
        if (req.path.startsWith('/r')) return { body: [{ id: 1, resource: req.path }] };
        if (req.path === '/parents') return { body: [{ id: 7 }] };
        return { body: [{ child_of: req.path }] };
      },
      { latencyMs: 150 },
    );
    const p = await project({
      base_url: server.url,
      resources: {
        r1: {},
        r2: {},
        r3: {},
        parents: {},
        kids: { path: '/parents/{parent.id}/kids', parent: { resource: 'parents' } },
      },
    });
    await p.runOk();
    assert.ok(
      server.maxInFlight >= 3,
      `requests of different resources overlapped (max in flight ${server.maxInFlight})`,
    );
    const parent = server.to('/parents')[0];
    const kid = server.to('/parents/7/kids')[0];
    assert.ok(parent && kid && kid.at >= parent.at + 150, 'the child was requested after its parent answered');
    assert.equal(server.to('/parents').length, 1);
    assert.equal(await p.count('bronze.kids'), 1);
  });
});
