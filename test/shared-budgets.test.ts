/**
 * Shared rate budgets: three `dip run` processes read one emulated API (src/emulate/social-api.ts)
 * at once, each declaring `rate_limit: 10 per 1s` for the host, with up to 4 requests in flight
 * each. Without sharing they could send 30 a second; with the budget counted in Redis
 * (`coordination.redis_url`), or in the PostgreSQL catalog, the server never sees more than 10
 * data requests in any 1 s window, and every post lands. (Each process's one OAuth token
 * request goes around the budget: the REST client's budgets cover the API's data requests.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { CLI, makeTempDir } from './support/project.js';
import { type RedisServer, redisTestOptions, startRedis } from './support/redis-server.js';

const POSTS = 150;
const PAGE = 10;
const PROCESSES = 3;

function restSource(url: string, table: string): Record<string, unknown> {
  return {
    type: 'rest',
    base_url: url,
    auth: {
      type: 'oauth2_client_credentials',
      token_url: '/oauth/token',
      client_id: 'dip-demo',
      client_secret: 'dip-demo-secret',
    },
    http: { concurrency: { max: 4, initial: 4 }, rate_limit: { requests: 10, per: '1s' } },
    resources: {
      [table]: {
        path: '/posts',
        params: { limit: PAGE },
        records: '$.data',
        paginator: {
          type: 'cursor',
          cursor_path: '$.paging.next_cursor',
          param: 'cursor',
          has_more_path: '$.paging.has_more',
        },
        primary_key: ['id'],
        write_disposition: 'replace',
      },
    },
  };
}

function dip(
  dir: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '-p', dir, ...args], {
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/** Three processes at once; returns the emulator's busiest 1 s window and each process's outcome. */
async function threeAtOnce(
  runs: { dir: string; args: string[] }[],
  emulator: SocialApiEmulator,
  env: Record<string, string>,
): Promise<number> {
  emulator.resetStats();
  const results = await Promise.all(runs.map((r) => dip(r.dir, r.args, env)));
  for (const r of results) assert.equal(r.code, 0, r.out);
  const stats = emulator.stats();
  // 15 pages each, and one token request each.
  assert.equal(stats.byPath['/v1/posts'], PROCESSES * (POSTS / PAGE));
  assert.equal(stats.rateLimited, 0);
  return emulator.maxArrivalsInWindow(1000);
}

async function count(dir: string, table: string): Promise<number> {
  const r = await dip(dir, ['query', '--json', `select count(distinct id)::INTEGER as n from bronze.${table}`]);
  assert.equal(r.code, 0, r.out);
  return (JSON.parse(r.out) as { n: number }[])[0]?.n ?? -1;
}

describe('a rate budget shared through Redis holds across three processes', redisTestOptions(), () => {
  let redis: RedisServer;
  let emulator: SocialApiEmulator;
  before(async () => {
    redis = await startRedis();
    emulator = await SocialApiEmulator.start({ seed: 5, posts: POSTS, rateLimit: null });
  });
  after(async () => {
    await emulator?.close();
    await redis?.stop();
  });

  it('the server never sees more than 10 requests in any 1 s window', async () => {
    const dirs: string[] = [];
    for (let i = 0; i < PROCESSES; i++) {
      const dir = await makeTempDir('dip-budget-');
      const config = {
        version: 1,
        project: `budget-${i}`,
        engine: { threads: 1, memory_limit: '256MB' },
        coordination: { redis_url: '${env:DIP_TEST_REDIS_URL}' },
        pipelines: { p: { raw: { enabled: false }, sources: { social: restSource(emulator.url, 'posts') } } },
      };
      await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config, null, 2));
      dirs.push(dir);
    }
    const busiest = await threeAtOnce(
      dirs.map((dir) => ({ dir, args: ['run', '--quiet'] })),
      emulator,
      { DIP_TEST_REDIS_URL: redis.url },
    );
    assert.ok(busiest <= 10, `the emulator saw ${busiest} requests in one 1 s window`);
    assert.ok(busiest >= 8, `the budget was used (${busiest} in the busiest window)`);
    for (const dir of dirs) assert.equal(await count(dir, 'posts'), POSTS);
  });
});

describe(
  'a rate budget shared through the PostgreSQL catalog holds across three processes',
  postgresTestOptions(),
  () => {
    let pg: PostgresServer;
    let emulator: SocialApiEmulator;
    before(async () => {
      pg = await startPostgres();
      emulator = await SocialApiEmulator.start({ seed: 6, posts: POSTS, rateLimit: null });
    });
    after(async () => {
      await emulator?.close();
      await pg?.stop();
    });

    it('three pipelines of one project, run at once: never more than 10 requests in any 1 s window', async () => {
      const dir = await makeTempDir('dip-budget-pg-');
      await mkdir(join(dir, '.dip'), { recursive: true });
      const names = ['a', 'b', 'c'];
      const config = {
        version: 1,
        project: 'budget-pg',
        engine: { threads: 1, memory_limit: '256MB' },
        catalog: { kind: 'postgres', url: '${env:DIP_TEST_PG_URL}', schema: 'dip_budget' },
        pipelines: Object.fromEntries(
          names.map((n) => [
            n,
            { raw: { enabled: false }, sources: { [`social_${n}`]: restSource(emulator.url, `posts_${n}`) } },
          ]),
        ),
      };
      await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config, null, 2));
      const env = { DIP_TEST_PG_URL: pg.url };
      // The catalog exists before the three start (each would otherwise race to create it).
      const status = await dip(dir, ['status', '--json'], env);
      assert.equal(status.code, 0, status.out);
      const busiest = await threeAtOnce(
        names.map((n) => ({ dir, args: ['run', n, '--quiet'] })),
        emulator,
        env,
      );
      assert.ok(busiest <= 10, `the emulator saw ${busiest} requests in one 1 s window`);
      assert.ok(busiest >= 8, `the budget was used (${busiest} in the busiest window)`);
      for (const n of names) {
        const r = await dip(
          dir,
          ['query', '--json', `select count(distinct id)::INTEGER as n from bronze.posts_${n}`],
          env,
        );
        assert.equal(r.code, 0, r.out);
        assert.deepEqual(JSON.parse(r.out), [{ n: POSTS }]);
      }
    });
  },
);
