/**
 * The social API emulator over real HTTP: OAuth2 client credentials, cursor and offset pages,
 * `since` after the clock advances, rate limits, injected 500s, and `dip emulate social-api`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SocialApiEmulator, type SocialApiOptions } from '../src/emulate/social-api.js';
import type { Account, Comment, Insights, Post } from '../src/emulate/social-data.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const started: SocialApiEmulator[] = [];
after(async () => {
  for (const api of started) await api.close();
});

async function emulator(options: SocialApiOptions = {}): Promise<SocialApiEmulator> {
  const api = await SocialApiEmulator.start(options);
  started.push(api);
  return api;
}

interface Reply<T> {
  status: number;
  headers: Headers;
  body: T;
}

interface Page<T> {
  data: T[];
  paging: { next_cursor: string | null; has_more: boolean };
}

interface ErrorBody {
  error: string;
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields);

async function requestToken(
  api: SocialApiEmulator,
  body: URLSearchParams,
  headers: Record<string, string> = {},
): Promise<Reply<Record<string, unknown>>> {
  const res = await fetch(api.tokenUrl, { method: 'POST', body, headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

async function token(api: SocialApiEmulator): Promise<string> {
  const r = await requestToken(
    api,
    form({ grant_type: 'client_credentials', client_id: 'dip-demo', client_secret: 'dip-demo-secret' }),
  );
  assert.equal(r.status, 200);
  return r.body['access_token'] as string;
}

async function get<T>(api: SocialApiEmulator, path: string, bearer: string | undefined): Promise<Reply<T>> {
  const res = await fetch(`${api.url}${path}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

/** Follows next_cursor from `path` to the end; every page must be a 200. */
async function walk<T>(api: SocialApiEmulator, path: string, bearer: string): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let pages = 0;
  let cursor: string | null = null;
  const sep = path.includes('?') ? '&' : '?';
  do {
    const r: Reply<Page<T>> = await get<Page<T>>(
      api,
      cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path,
      bearer,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    items.push(...r.body.data);
    pages++;
    assert.equal(r.body.paging.has_more, r.body.paging.next_cursor !== null);
    cursor = r.body.paging.next_cursor;
  } while (cursor);
  return { items, pages };
}

function assertPostOrder(posts: Post[]): void {
  for (let i = 1; i < posts.length; i++) {
    const a = posts[i - 1] as Post;
    const b = posts[i] as Post;
    assert.ok(
      a.updated_at < b.updated_at || (a.updated_at === b.updated_at && a.id < b.id),
      `${a.id}@${a.updated_at} before ${b.id}@${b.updated_at}`,
    );
  }
}

describe('OAuth2 client credentials', () => {
  it('issues bearer tokens for the right credentials (form body or Basic) and refuses the rest', async () => {
    const api = await emulator({ posts: 10 });
    const good = await requestToken(
      api,
      form({ grant_type: 'client_credentials', client_id: 'dip-demo', client_secret: 'dip-demo-secret' }),
    );
    assert.equal(good.status, 200);
    assert.equal(good.body['token_type'], 'Bearer');
    assert.equal(good.body['expires_in'], 3600);
    assert.match(good.body['access_token'] as string, /^sat_[0-9a-f]{32}$/);

    const basic = await requestToken(api, form({ grant_type: 'client_credentials' }), {
      authorization: `Basic ${Buffer.from('dip-demo:dip-demo-secret').toString('base64')}`,
    });
    assert.equal(basic.status, 200);
    assert.notEqual(basic.body['access_token'], good.body['access_token']);

    const wrong = await requestToken(
      api,
      form({ grant_type: 'client_credentials', client_id: 'dip-demo', client_secret: 'nope' }),
    );
    assert.deepEqual([wrong.status, wrong.body['error']], [401, 'invalid_client']);
    const wrongBasic = await requestToken(api, form({ grant_type: 'client_credentials' }), {
      authorization: `Basic ${Buffer.from('dip-demo:x').toString('base64')}`,
    });
    assert.deepEqual([wrongBasic.status, wrongBasic.body['error']], [401, 'invalid_client']);
    const grant = await requestToken(
      api,
      form({ grant_type: 'password', client_id: 'dip-demo', client_secret: 'dip-demo-secret' }),
    );
    assert.deepEqual([grant.status, grant.body['error']], [400, 'unsupported_grant_type']);

    assert.equal((await get(api, '/posts', good.body['access_token'] as string)).status, 200);
    for (const bearer of [undefined, 'sat_forged']) {
      const r = await get<ErrorBody>(api, '/posts', bearer);
      assert.deepEqual([r.status, r.body.error], [401, 'invalid_token']);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer /);
    }
    const s = api.stats();
    assert.equal(s.tokenRequests, 5);
    assert.deepEqual(s.byStatus, { 200: 3, 400: 1, 401: 4 });
  });

  it('refuses a token once it has expired', async () => {
    const api = await emulator({ posts: 10, tokenExpiresIn: 1, clientId: 'c', clientSecret: 's' });
    const t = await requestToken(api, form({ grant_type: 'client_credentials', client_id: 'c', client_secret: 's' }));
    assert.equal(t.body['expires_in'], 1);
    const bearer = t.body['access_token'] as string;
    assert.equal((await get(api, '/accounts', bearer)).status, 200);
    await new Promise((r) => setTimeout(r, 1100));
    const r = await get<ErrorBody>(api, '/accounts', bearer);
    assert.deepEqual([r.status, r.body.error], [401, 'invalid_token']);
  });
});

describe('GET /posts', () => {
  it('walks every post exactly once in (updated_at, id) order with cursor pages', async () => {
    const api = await emulator({ posts: 1234, seed: 42 });
    const bearer = await token(api);
    const { items, pages } = await walk<Post>(api, '/posts?limit=100', bearer);
    assert.equal(pages, 13);
    assert.equal(items.length, 1234);
    assert.equal(new Set(items.map((p) => p.id)).size, 1234);
    assertPostOrder(items);
    assert.deepEqual(items, api.data.allPosts());
    assert.deepEqual(
      new Set(items.map((p) => p.id)),
      new Set(Array.from({ length: 1234 }, (_, i) => `p_${String(i + 1).padStart(6, '0')}`)),
    );

    const first = items[0] as Post;
    assert.match(first.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(first.updated_at >= first.created_at && first.updated_at < '2026-11-01T00:00:00.000Z');
    assert.ok(first.hashtags.length > 0 && first.hashtags.every((h) => first.caption.includes(`#${h}`)));
    assert.ok(
      first.media.every((m) => (m.type === 'video' ? typeof m.duration_s === 'number' : m.duration_s === null)),
    );
    assert.equal(first.author.id, first.account_id);

    assert.equal((await get<Page<Post>>(api, '/posts', bearer)).body.data.length, 50);
    assert.equal((await get<Page<Post>>(api, '/posts?limit=5000', bearer)).body.data.length, 500);
    for (const bad of ['limit=0', 'limit=x', 'cursor=garbage', 'since=yesterday']) {
      const r = await get<ErrorBody>(api, `/posts?${bad}`, bearer);
      assert.equal(r.status, 400, bad);
      assert.match(r.body.error, /^invalid_(request|cursor)$/);
    }
    assert.equal((await get<ErrorBody>(api, '/nothing', bearer)).status, 404);
  });

  it('is deterministic for a seed, and `since` after advance() returns exactly the new and changed posts', async () => {
    const options = { posts: 300, seed: 7, newPostsPerHour: 30, updatesPerHour: 120 };
    const api = await emulator(options);
    const bearer = await token(api);
    const twin = await emulator(options);
    assert.deepEqual(twin.data.allPosts(), api.data.allPosts());
    assert.notDeepEqual((await emulator({ ...options, seed: 8 })).data.allPosts(), api.data.allPosts());

    const start = api.clock;
    assert.equal(start, '2026-11-01T00:00:00.000Z');
    assert.equal((await walk<Post>(api, `/posts?since=${start}`, bearer)).items.length, 0);
    const before = new Map(api.data.allPosts().map((p) => [p.id, p]));

    const changes = api.advance(2 * 3_600_000);
    assert.equal(changes.clock, '2026-11-01T02:00:00.000Z');
    assert.ok(changes.created.length > 20 && changes.updated.length > 100, JSON.stringify(changes).slice(0, 200));
    // Two one-hour steps end in the same state as one two-hour step.
    twin.advance(3_600_000);
    assert.deepEqual(twin.advance(3_600_000).clock, changes.clock);
    assert.deepEqual(twin.data.allPosts(), api.data.allPosts());

    const { items } = await walk<Post>(api, `/posts?since=${encodeURIComponent(start)}&limit=37`, bearer);
    assertPostOrder(items);
    assert.equal(items.length, changes.created.length + changes.updated.length);
    assert.deepEqual(items.map((p) => p.id).sort(), [...changes.created, ...changes.updated].sort());
    for (const p of items) {
      assert.ok(p.updated_at > start && p.updated_at <= changes.clock);
      const old = before.get(p.id);
      assert.equal(old === undefined, changes.created.includes(p.id));
      if (old)
        assert.ok(
          p.metrics.views > old.metrics.views &&
            p.metrics.likes >= old.metrics.likes &&
            p.metrics.comments >= old.metrics.comments,
        );
    }
    assert.equal(api.data.postCount, 300 + changes.created.length);

    // `since` is inclusive; posts changed at exactly the last clock time come back with since=clock.
    const atClock = api.data.allPosts().filter((p) => p.updated_at === changes.clock).length;
    assert.equal((await walk<Post>(api, `/posts?since=${changes.clock}&limit=500`, bearer)).items.length, atClock);
    const next = api.advance(30 * 60_000);
    const after = new Date(Date.parse(changes.clock) + 1).toISOString();
    const second = await walk<Post>(api, `/posts?since=${after}&limit=500`, bearer);
    assert.deepEqual(second.items.map((p) => p.id).sort(), [...next.created, ...next.updated].sort());
  });
});

describe('comments, insights and accounts', () => {
  it('pages through every comment of a post, in order, as many as metrics.comments says', async () => {
    const api = await emulator({ posts: 200, seed: 3, updatesPerHour: 600 });
    const bearer = await token(api);
    const post = api.data.allPosts().find((p) => p.metrics.comments >= 30 && p.metrics.comments <= 300);
    assert.ok(post, 'a post with 30-300 comments');
    const walkComments = async (id: string) =>
      (await walk<Comment>(api, `/posts/${id}/comments?limit=7`, bearer)).items;
    const comments = await walkComments(post.id);
    assert.equal(comments.length, post.metrics.comments);
    assert.equal(new Set(comments.map((c) => c.id)).size, comments.length);
    assert.ok(
      comments.every(
        (c) =>
          c.post_id === post.id &&
          c.text.length > 0 &&
          c.created_at >= post.created_at &&
          c.created_at <= post.updated_at,
      ),
    );
    for (let i = 1; i < comments.length; i++)
      assert.ok((comments[i - 1] as Comment).created_at <= (comments[i] as Comment).created_at);

    const grown = api
      .advance(3 * 3_600_000)
      .updated.map((id) => api.data.getPost(id) as Post)
      .find((p) => p.metrics.comments > 0 && p.metrics.comments <= 300);
    assert.ok(grown, 'an updated post with comments');
    const afterGrowth = await walkComments(grown.id);
    assert.equal(afterGrowth.length, grown.metrics.comments);
    assert.equal(new Set(afterGrowth.map((c) => c.id)).size, afterGrowth.length);

    const missing = await get<ErrorBody>(api, '/posts/p_999999/comments', bearer);
    assert.deepEqual([missing.status, missing.body.error], [404, 'not_found']);
  });

  it('serves insights whose breakdowns add up to the views', async () => {
    const api = await emulator({ posts: 20 });
    const bearer = await token(api);
    const post = api.data.getPost('p_000005') as Post;
    const r = await get<{ data: Insights }>(api, '/posts/p_000005/insights', bearer);
    assert.equal(r.status, 200);
    assert.equal(r.body.data.post_id, 'p_000005');
    const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
    assert.deepEqual(Object.keys(r.body.data.by_age), ['13-17', '18-24', '25-34', '35-44', '45-54', '55+']);
    assert.equal(Object.keys(r.body.data.by_country).length, 10);
    for (const dim of [r.body.data.by_country, r.body.data.by_age, r.body.data.by_gender])
      assert.equal(sum(dim), post.metrics.views);
  });

  it('pages accounts by offset with the total', async () => {
    const api = await emulator({ posts: 20, accounts: 23 });
    const bearer = await token(api);
    const seen: string[] = [];
    for (let offset = 0; ; offset += 10) {
      const r = await get<{ data: Account[]; total: number; offset: number; limit: number }>(
        api,
        `/accounts?offset=${offset}&limit=10`,
        bearer,
      );
      assert.equal(r.status, 200);
      assert.deepEqual([r.body.total, r.body.offset, r.body.limit], [23, offset, 10]);
      if (r.body.data.length === 0) break;
      seen.push(...r.body.data.map((a) => a.id));
    }
    assert.deepEqual(
      seen,
      Array.from({ length: 23 }, (_, i) => `a_${String(i + 1).padStart(4, '0')}`),
    );
    const defaults = await get<{ data: Account[]; limit: number }>(api, '/accounts', bearer);
    assert.deepEqual([defaults.body.data.length, defaults.body.limit], [23, 50]);
  });
});

describe('rate limits, faults and latency', () => {
  it('answers 429 with Retry-After over the per-token budget, and counts the window exactly', async () => {
    const api = await emulator({ posts: 10, rateLimit: { requests: 5, windowMs: 500 } });
    const bearer = await token(api);
    for (let i = 0; i < 5; i++) {
      const r = await get(api, '/accounts?limit=1', bearer);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-ratelimit-limit'), '5');
      assert.equal(r.headers.get('x-ratelimit-remaining'), String(4 - i));
      assert.match(r.headers.get('x-ratelimit-reset') ?? '', /^\d{10}$/);
    }
    const limited = await get<ErrorBody>(api, '/accounts?limit=1', bearer);
    assert.deepEqual([limited.status, limited.body.error], [429, 'rate_limited']);
    assert.equal(limited.headers.get('retry-after'), '1');
    assert.equal(limited.headers.get('x-ratelimit-remaining'), '0');
    assert.equal(
      (await get(api, '/accounts?limit=1', await token(api))).status,
      200,
      'another token has its own budget',
    );

    await new Promise((r) => setTimeout(r, 550));
    assert.equal((await get(api, '/accounts?limit=1', bearer)).status, 200);
    const s = api.stats();
    assert.equal(s.maxRequestsInWindow, 5);
    assert.equal(s.rateLimited, 1);
    assert.equal(s.byPath['/v1/accounts'], 8);
  });

  it('fails with 500 at errorRate 1 without changing state: the retried request returns the same page', async () => {
    const api = await emulator({ posts: 100 });
    const bearer = await token(api);
    const first = await get<Page<Post>>(api, '/posts?limit=10', bearer);
    const path = `/posts?limit=10&cursor=${first.body.paging.next_cursor ?? ''}`;
    api.configure({ errorRate: 1 });
    const failed = await get<ErrorBody>(api, path, bearer);
    assert.deepEqual([failed.status, failed.body.error], [500, 'internal_error']);
    assert.equal(failed.headers.get('x-ratelimit-limit'), '600');
    api.configure({ errorRate: 0 });
    const retried = await get<Page<Post>>(api, path, bearer);
    assert.equal(retried.status, 200);
    assert.deepEqual(retried.body.data, api.data.allPosts().slice(10, 20));
    assert.equal(api.stats().serverErrors, 1);
  });

  it('injects the same 500s for the same seed and request sequence', async () => {
    const statuses = async () => {
      const api = await emulator({ posts: 10, seed: 9, errorRate: 0.3 });
      const bearer = await token(api);
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push((await get(api, '/accounts?limit=1', bearer)).status);
      return out;
    };
    const a = await statuses();
    assert.deepEqual(await statuses(), a);
    assert.ok(a.includes(500) && a.includes(200), a.join(','));
  });

  it('adds the configured latency', async () => {
    const api = await emulator({ posts: 10, latencyMs: 120 });
    const bearer = await token(api);
    const t0 = performance.now();
    assert.equal((await get(api, '/accounts', bearer)).status, 200);
    assert.ok(performance.now() - t0 >= 115);
  });
});

describe('dip emulate social-api', () => {
  it('prints one JSON line with the URL and credentials, serves tokens, and exits 0 on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'emulate', 'social-api', '--port', '0', '--json', '--posts', '50'],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        const rl = createInterface({ input: child.stdout });
        rl.once('line', resolve);
        void exited.then((code) => reject(new Error(`exited ${code} before printing: ${stderr}`)));
      });
      const info = JSON.parse(line) as {
        url: string;
        token_url: string;
        client_id: string;
        client_secret: string;
        posts: number;
      };
      assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      assert.deepEqual(
        [info.token_url, info.client_id, info.client_secret, info.posts],
        [`${info.url}/oauth/token`, 'dip-demo', 'dip-demo-secret', 50],
      );
      const res = await fetch(info.token_url, {
        method: 'POST',
        body: form({ grant_type: 'client_credentials' }),
        headers: {
          authorization: `Basic ${Buffer.from(`${info.client_id}:${info.client_secret}`).toString('base64')}`,
        },
      });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { token_type: string }).token_type, 'Bearer');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  });
});
