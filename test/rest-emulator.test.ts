/**
 * End to end against the social metrics emulator: OAuth2 client credentials, cursor pages,
 * a per-token rate limit answered with 429 + Retry-After, random 500s, and data that changes
 * between runs. Then `dip run` killed mid-way several times: nothing lost, nothing twice.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import { TestApi, items } from './support/api-server.js';
import { TestProject } from './support/project.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('social API emulator', () => {
  it('OAuth2 + cursors + 429s + 500s: exact data; the next run loads only what changed', async () => {
    const emulator = await SocialApiEmulator.start({
      seed: 11,
      posts: 400,
      errorRate: 0.2,
      rateLimit: { requests: 3, windowMs: 1000 },
    });
    cleanups.push(() => emulator.close());
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
        http: { concurrency: { max: 4 }, retry: { attempts: 10, initial_delay: '20ms', max_delay: '500ms' } },
        resources: {
          posts: {
            params: { limit: 20 },
            records: '$.data',
            paginator: {
              type: 'cursor',
              cursor_path: '$.paging.next_cursor',
              param: 'cursor',
              has_more_path: '$.paging.has_more',
            },
            primary_key: ['id'],
            write_disposition: 'merge',
            incremental: { cursor_field: 'updated_at', param: 'since' },
          },
        },
      },
    });
    cleanups.push(() => p.dispose());
    const first = await p.runOk();
    const stats = emulator.stats();
    const expected = emulator.data.allPosts();
    assert.equal(await p.count('bronze.posts'), 400);
    assert.equal(
      await p.num('select sum(metrics.views) from bronze.posts'),
      expected.reduce((n, post) => n + post.metrics.views, 0),
    );
    const source = first.stats.streams['social.posts']?.source ?? {};
    assert.ok(stats.serverErrors > 0, `the emulator failed ${stats.serverErrors} requests`);
    // The client reads X-RateLimit-Remaining: 0 and waits for the reset instead of provoking 429s.
    assert.ok(
      (source['throttled_ms'] ?? 0) >= 1000 || stats.rateLimited > 0,
      `throttled ${source['throttled_ms']} ms, ${stats.rateLimited} 429s`,
    );
    assert.ok(stats.maxRequestsInWindow <= 3, 'the emulator let through no more than its limit');
    assert.equal(stats.tokenRequests, 1);
    assert.equal(source['retries'], stats.serverErrors + stats.rateLimited);

    const change = emulator.advance(3 * 3_600_000);
    assert.ok(change.created.length > 0 && change.updated.length > 0);
    const second = await p.runOk();
    assert.equal(second.stats.streams['social.posts']?.rows, change.created.length + change.updated.length);
    const now = emulator.data.allPosts();
    assert.equal(await p.count('bronze.posts'), now.length);
    assert.equal(
      await p.num('select sum(metrics.likes) from bronze.posts'),
      now.reduce((n, post) => n + post.metrics.likes, 0),
    );
  });
});

describe('REST exactly-once under SIGKILL', () => {
  it('dip run killed mid-way three times, then finished: every record once', async () => {
    const data = items(1500);
    const server = await TestApi.start(
      (req) => {
        const since = req.query.get('since');
        const rows = since ? data.filter((d) => d.updated_at >= since) : data;
        const cursor = Number(req.query.get('cursor') ?? 0);
        return {
          body: { data: rows.slice(cursor, cursor + 25), next: cursor + 25 < rows.length ? String(cursor + 25) : null },
        };
      },
      { latencyMs: 15 },
    );
    cleanups.push(() => server.close());
    const p = await TestProject.withSources({
      api: {
        type: 'rest',
        base_url: server.url,
        resources: {
          rows: {
            records: '$.data',
            batch_records: 75,
            primary_key: ['id'],
            paginator: { type: 'cursor', cursor_path: '$.next', param: 'cursor' },
            incremental: { cursor_field: 'updated_at', param: 'since' },
          },
        },
      },
    });
    cleanups.push(() => p.dispose());
    // Killed once the server has answered k requests of that run: mid-listing however fast the machine is.
    const kills: boolean[] = [];
    for (const k of [12, 20, 28]) {
      const before = server.requests.length;
      kills.push(
        await new Promise<boolean>((resolve) => {
          const child = spawn(process.execPath, [CLI, '-p', p.dir, 'run', '--quiet'], { stdio: 'ignore' });
          const poll = setInterval(() => {
            if (server.requests.length - before >= k) child.kill('SIGKILL');
          }, 5);
          child.on('exit', (_code, signal) => {
            clearInterval(poll);
            resolve(signal === 'SIGKILL');
          });
        }),
      );
    }
    assert.deepEqual(kills, [true, true, true], 'every run was killed mid-way');
    const resumed = await p.runOk();
    assert.ok((resumed.stats.streams['api.rows']?.rows ?? 0) < 1500, 'the last run resumed instead of starting over');
    assert.deepEqual(
      [
        await p.count('bronze.rows'),
        await p.num('select count(distinct id) from bronze.rows'),
        await p.num('select sum(id) from bronze.rows'),
      ],
      [1500, 1500, (1500 * 1501) / 2],
    );
    // Raw pages: each of the 60 pages once (a killed run's uncommitted pages are not in the lake).
    assert.equal(
      await p.num(`select count(distinct json_extract_string(position, 'url')) from raw.rows`),
      await p.count('raw.rows'),
    );
  });
});
