import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { DipError } from '../src/core/errors.js';
import { HttpClient, type HttpRequestError, isHttpFailure } from '../src/sources/rest/http/client.js';
import { AdaptiveConcurrency, concurrencyOptions } from '../src/sources/rest/http/concurrency.js';
import { parseResetTime, rateLimitPauseUntil, SlidingWindowBudget } from '../src/sources/rest/http/rate-limit.js';
import { computeBackoff, parseRetryAfter, resolveAction } from '../src/sources/rest/http/retry.js';
import type { HttpClientOptions, HttpEvent, HttpRequest } from '../src/sources/rest/http/types.js';

interface Hit {
  n: number;
  at: number;
  wall: number;
  url: string;
  headers: IncomingMessage['headers'];
}

interface TestServer {
  url: string;
  hits: Hit[];
  maxInFlight: () => number;
  close: () => Promise<void>;
}

const servers: TestServer[] = [];
const clients: HttpClient[] = [];
after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

/** A local server; `handle` gets the 1-based hit number. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<TestServer> {
  const hits: Hit[] = [];
  let inFlight = 0;
  let peak = 0;
  const server = createServer((req, res) => {
    const hit: Hit = {
      n: hits.length + 1,
      at: performance.now(),
      wall: Date.now(),
      url: req.url ?? '',
      headers: req.headers,
    };
    hits.push(hit);
    inFlight++;
    peak = Math.max(peak, inFlight);
    res.on('close', () => inFlight--);
    handle(req, res, hit.n);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s: TestServer = {
    url: `http://127.0.0.1:${port}`,
    hits,
    maxInFlight: () => peak,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

function reply(res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers });
  res.end(body);
}

function client(overrides: Partial<HttpClientOptions> = {}): { c: HttpClient; events: HttpEvent[] } {
  const events: HttpEvent[] = [];
  const c = new HttpClient({
    retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 50, multiplier: 2, jitter: false, timeoutMs: 2000 },
    concurrency: { initial: 4, max: 4, min: 1 },
    redact: (t) => t,
    onEvent: (e) => events.push(e),
    ...overrides,
  });
  clients.push(c);
  return { c, events };
}

function get(url: string, resource = 'items', headers: Record<string, string> = {}): HttpRequest {
  return { method: 'GET', url, headers, resource };
}

const never = new AbortController().signal;

async function rejection(p: Promise<unknown>): Promise<HttpRequestError> {
  try {
    await p;
  } catch (err) {
    assert.ok(isHttpFailure(err), `expected HttpRequestError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to fail');
}

describe('retry helpers', () => {
  const policy = { attempts: 5, initialDelayMs: 100, maxDelayMs: 500, multiplier: 2, jitter: false, timeoutMs: 1000 };

  it('backs off exponentially up to the cap, with full jitter when enabled', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((a) => computeBackoff(policy, a)),
      [100, 200, 400, 500, 500],
    );
    assert.equal(
      computeBackoff({ ...policy, jitter: true }, 3, () => 0.5),
      200,
    );
    assert.equal(
      computeBackoff({ ...policy, jitter: true }, 3, () => 0),
      0,
    );
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('3', now), 3000);
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:10 GMT', now), 10_000);
    assert.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  it('resolves actions: exact code beats class, resource beats API, defaults last', () => {
    assert.equal(resolveAction(200, {}, false), 'ok');
    assert.equal(resolveAction(404, {}, false), 'fail');
    assert.equal(resolveAction(429, {}, false), 'retry');
    assert.equal(resolveAction(503, {}, false), 'retry');
    assert.equal(resolveAction(302, {}, false), 'fail');
    assert.equal(resolveAction(404, { '404': 'ignore' }, false), 'ignore');
    assert.equal(resolveAction(503, { '5xx': 'fail', '503': 'retry' }, false), 'retry');
    assert.equal(resolveAction(500, { '5xx': 'fail', '503': 'retry' }, false), 'fail');
    assert.equal(resolveAction(404, [{ '4xx': 'ignore' }, { '404': 'fail' }], false), 'ignore');
    assert.equal(resolveAction(401, { '4xx': 'ignore' }, true), 'reauth');
    assert.equal(resolveAction(401, { '4xx': 'ignore' }, false), 'ignore');
    assert.equal(resolveAction(401, { '401': 'fail' }, true), 'fail');
  });
});

describe('rate limit helpers', () => {
  const now = 1_700_000_000_000;

  it('reads reset values as delta seconds, epoch seconds or epoch ms', () => {
    assert.equal(parseResetTime('30', now), now + 30_000);
    assert.equal(parseResetTime('1700000060', now), now + 60_000);
    assert.equal(parseResetTime('1700000005000', now), now + 5000);
    assert.equal(parseResetTime('x', now), undefined);
  });

  it('pauses only when the quota is spent, for X-RateLimit and IETF headers', () => {
    assert.equal(rateLimitPauseUntil({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '5' }, now), now + 5000);
    assert.equal(rateLimitPauseUntil({ 'x-ratelimit-remaining': '3', 'x-ratelimit-reset': '5' }, now), undefined);
    assert.equal(rateLimitPauseUntil({ 'ratelimit-remaining': '0', 'ratelimit-reset': '2' }, now), now + 2000);
    assert.equal(rateLimitPauseUntil({ ratelimit: 'limit=100, remaining=0, reset=7' }, now), now + 7000);
    assert.equal(rateLimitPauseUntil({ ratelimit: '"default";r=0;t=4' }, now), now + 4000);
    assert.equal(
      rateLimitPauseUntil({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1699999990' }, now),
      undefined,
    );
    assert.equal(
      rateLimitPauseUntil({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '86400' }, now),
      now + 600_000,
    );
  });

  it('a sliding-window budget admits N requests per window, counted until their responses', () => {
    const b = new SlidingWindowBudget({ requests: 2, perMs: 1000 });
    assert.equal(b.waitMs(0), 0);
    const first = b.take();
    const second = b.take();
    assert.equal(b.waitMs(50), Number.POSITIVE_INFINITY, 'both still in flight');
    first.settle(100);
    second.settle(150);
    first.settle(900); // settling twice changes nothing
    assert.equal(b.waitMs(200), 100 + 1001 - 200);
    assert.equal(b.waitMs(1101), 0);
  });
});

describe('adaptive concurrency', () => {
  it('defaults initial to min(4, max)', () => {
    assert.deepEqual(concurrencyOptions(16), { max: 16, min: 1, initial: 4 });
    assert.deepEqual(concurrencyOptions(2), { max: 2, min: 1, initial: 2 });
  });

  it('grows by slow start to the ceiling under success, never beyond', () => {
    const changes: number[] = [];
    const l = new AdaptiveConcurrency({ initial: 1, max: 10, min: 1 }, (limit) => changes.push(limit));
    for (let i = 0; i < 100; i++) l.record({ overloaded: false, startedAt: performance.now(), latencyMs: 10 });
    assert.deepEqual(changes, [2, 4, 8, 10]);
    assert.equal(l.limit, 10);
  });

  it('halves once per overload episode, not below min, then grows by one', () => {
    const changes: Array<[number, string]> = [];
    const l = new AdaptiveConcurrency({ initial: 8, max: 8, min: 1 }, (limit, reason) => changes.push([limit, reason]));
    const before = performance.now() - 1;
    l.record({ overloaded: true, startedAt: performance.now() });
    l.record({ overloaded: true, startedAt: before }); // in flight during the first: same episode
    assert.equal(l.limit, 4);
    for (const expected of [2, 1, 1]) {
      l.record({ overloaded: true, startedAt: performance.now() + 1 });
      assert.equal(l.limit, expected);
    }
    for (let i = 0; i < 3; i++) l.record({ overloaded: false, startedAt: performance.now(), latencyMs: 5 });
    assert.deepEqual(changes, [
      [4, 'overload'],
      [2, 'overload'],
      [1, 'overload'],
      [2, 'success'],
      [3, 'success'],
    ]);
  });

  it('steps down by one when median latency doubles', () => {
    const l = new AdaptiveConcurrency({ initial: 4, max: 4, min: 1 });
    for (let i = 0; i < 20; i++) l.record({ overloaded: false, startedAt: 0, latencyMs: 100 });
    assert.equal(l.limit, 4);
    for (let i = 0; i < 20; i++) l.record({ overloaded: false, startedAt: 0, latencyMs: 300 });
    assert.equal(l.limit, 3);
  });

  it('queues acquirers FIFO and honours abort', async () => {
    const l = new AdaptiveConcurrency({ initial: 1, max: 1, min: 1 });
    await l.acquire(never);
    const order: number[] = [];
    const ac = new AbortController();
    const a = l.acquire(never).then(() => order.push(1));
    const b = l.acquire(ac.signal);
    const c = l.acquire(never).then(() => order.push(3));
    ac.abort();
    await assert.rejects(b, (e: unknown) => e instanceof DipError && e.kind === 'interrupted');
    l.release();
    await a;
    l.release();
    await c;
    assert.deepEqual(order, [1, 3]);
    assert.equal(l.maxInFlight, 1);
  });
});

describe('HttpClient against a local server', () => {
  it('waits for Retry-After on 429, then succeeds', async () => {
    const s = await serve((_req, res, n) =>
      n === 1 ? reply(res, 429, 'slow down', { 'retry-after': '1' }) : reply(res, 200, 'ok'),
    );
    const { c, events } = client();
    const t0 = performance.now();
    const r = await c.send(get(`${s.url}/items`), never);
    const elapsed = performance.now() - t0;
    assert.ok(r);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.equal(r.attempts, 2);
    assert.equal(s.hits.length, 2);
    assert.ok(elapsed >= 1000, `elapsed ${elapsed}`);
    const retries = events.filter((e) => e.type === 'retry');
    assert.deepEqual(retries, [
      { type: 'retry', resource: 'items', url: `${s.url}/items`, attempt: 1, status: 429, error: null, delayMs: 1000 },
    ]);
    assert.equal(c.stats().retries, 1);
    assert.deepEqual(c.stats().statusCounts, { '200': 1, '429': 1 });
  });

  it('fails fast when Retry-After is beyond the cap', async () => {
    const s = await serve((_req, res) => reply(res, 429, '', { 'retry-after': '3600' }));
    const { c } = client();
    const err = await rejection(c.send(get(`${s.url}/x`), never));
    assert.equal(err.kind, 'transient');
    assert.match(err.message, /retry after 3600 s/);
    assert.equal(s.hits.length, 1);
  });

  it('retries 500s with exponential backoff until success', async () => {
    const s = await serve((_req, res, n) => (n <= 3 ? reply(res, 500, 'boom') : reply(res, 200, '[]')));
    const { c, events } = client({
      retry: { attempts: 5, initialDelayMs: 10, maxDelayMs: 1000, multiplier: 2, jitter: false, timeoutMs: 2000 },
    });
    const r = await c.send(get(`${s.url}/items`), never);
    assert.equal(r?.attempts, 4);
    assert.equal(s.hits.length, 4);
    const delays = events.flatMap((e) => (e.type === 'retry' ? [e.delayMs] : []));
    assert.deepEqual(delays, [10, 20, 40]);
    assert.equal(c.stats().requests, 4);
  });

  it('exhausted attempts end in a transient error with status, excerpt and no secrets', async () => {
    const secret = 'SECRET123tok';
    const s = await serve((_req, res) => reply(res, 500, `oops ${secret} failed\n${'x'.repeat(1000)}`));
    const { c } = client({ redact: (t) => t.split(secret).join('***') });
    const err = await rejection(c.send(get(`${s.url}/items?token=${secret}`), never));
    assert.ok(err instanceof DipError);
    assert.equal(err.kind, 'transient');
    assert.equal(err.exitCode, 75);
    assert.equal(s.hits.length, 3);
    assert.equal(err.status, 500);
    assert.equal(err.attempts, 3);
    assert.equal(err.details['status'], 500);
    assert.equal(err.details['attempts'], 3);
    assert.equal(err.details['url'], `${s.url}/items?token=***`);
    const excerpt = err.details['bodyExcerpt'];
    assert.equal(typeof excerpt, 'string');
    assert.ok((excerpt as string).startsWith('oops *** failed x'));
    assert.equal((excerpt as string).length, 300);
    assert.ok(!err.message.includes(secret));
    assert.match(
      err.message,
      /^GET http:\/\/127\.0\.0\.1:\d+\/items\?token=\*\*\* failed after 3 attempts: HTTP 500 Internal Server Error: oops \*\*\* failed/,
    );
  });

  it('never starts more requests than the budget in any window (measured by the server)', async () => {
    const s = await serve((_req, res) => setTimeout(() => reply(res, 200, '{}'), 5));
    const { c, events } = client({
      hostBudget: { requests: 10, perMs: 500 },
      concurrency: { initial: 16, max: 16, min: 1 },
    });
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => c.send(get(`${s.url}/items?i=${i}`), never)),
    );
    const elapsed = performance.now() - t0;
    assert.equal(results.length, 40);
    assert.equal(s.hits.length, 40);
    const starts = s.hits.map((h) => h.at).sort((a, b) => a - b);
    let worst = 0;
    for (let i = 0; i < starts.length; i++) {
      const inWindow = starts.filter((t) => t >= (starts[i] as number) && t < (starts[i] as number) + 500).length;
      worst = Math.max(worst, inWindow);
    }
    assert.equal(worst, 10);
    assert.ok(elapsed >= 1500, `elapsed ${elapsed}`);
    assert.ok(events.some((e) => e.type === 'throttled' && e.reason === 'budget'));
    assert.ok(c.stats().throttledMs > 0);
  });

  it('applies resource budgets on top of the host budget', async () => {
    const s = await serve((_req, res) => reply(res, 200, '{}'));
    const { c } = client({ resourceBudgets: { slow: { requests: 2, perMs: 300 } } });
    await Promise.all([0, 1, 2].map((i) => c.send(get(`${s.url}/slow?i=${i}`, 'slow'), never)));
    await Promise.all([0, 1, 2].map((i) => c.send(get(`${s.url}/fast?i=${i}`, 'fast'), never)));
    const slow = s.hits.filter((h) => h.url.startsWith('/slow')).map((h) => h.at);
    assert.equal(slow.length, 3);
    assert.ok(
      (slow[2] as number) - (slow[0] as number) >= 295,
      `third slow start after ${(slow[2] as number) - (slow[0] as number)} ms`,
    );
  });

  it('404 is ignored when configured, terminal by default, and 5xx can be made terminal', async () => {
    const s = await serve((req, res) =>
      req.url?.startsWith('/gone') ? reply(res, 404, 'not here') : reply(res, 500, 'down'),
    );
    const ignoring = client({ responseActions: { '404': 'ignore' } }).c;
    assert.equal(await ignoring.send(get(`${s.url}/gone`), never), null);
    assert.equal(s.hits.length, 1);

    const err = await rejection(client().c.send(get(`${s.url}/gone`), never));
    assert.equal(err.kind, 'input');
    assert.equal(err.status, 404);
    assert.equal(err.attempts, 1);
    assert.equal(err.bodyExcerpt, 'not here');
    assert.equal(s.hits.length, 2);

    const failing = client({ responseActions: { '5xx': 'fail' } }).c;
    const e500 = await rejection(failing.send(get(`${s.url}/down`), never));
    assert.equal(e500.kind, 'input');
    assert.equal(e500.status, 500);
    assert.equal(s.hits.length, 3);

    const perResource = client({ resourceResponseActions: { gone: { '4xx': 'ignore' } } }).c;
    assert.equal(await perResource.send(get(`${s.url}/gone`, 'gone'), never), null);
    assert.equal(s.hits.length, 4);
  });

  it('401 asks the authenticator once and retries with fresh credentials', async () => {
    const s = await serve((req, res) =>
      req.headers.authorization === 'Bearer fresh' ? reply(res, 200, 'ok') : reply(res, 401, 'expired'),
    );
    let token = 'stale';
    let refreshes = 0;
    const authenticator = {
      apply: async (r: HttpRequest) => {
        r.headers['authorization'] = `Bearer ${token}`;
      },
      onUnauthorized: async () => {
        refreshes++;
        token = 'fresh';
        return true;
      },
      secrets: () => [token],
    };
    const request = get(`${s.url}/me`);
    const r = await client({ authenticator }).c.send(request, never);
    assert.equal(r?.status, 200);
    assert.equal(r?.attempts, 2);
    assert.equal(refreshes, 1);
    assert.deepEqual(
      s.hits.map((h) => h.headers.authorization),
      ['Bearer stale', 'Bearer fresh'],
    );
    assert.deepEqual(request.headers, {}, 'the caller’s request is not modified');

    token = 'revoked';
    const denied = {
      ...authenticator,
      onUnauthorized: async () => {
        refreshes++;
        return false;
      },
    };
    const err = await rejection(client({ authenticator: denied }).c.send(get(`${s.url}/me`), never));
    assert.equal(err.kind, 'input');
    assert.equal(err.status, 401);
    assert.equal(refreshes, 2);
    assert.equal(s.hits.length, 3);
  });

  it('times out slow attempts, retries, then fails transient', async () => {
    const s = await serve((_req, res) => {
      const t = setTimeout(() => reply(res, 200, 'late'), 2000);
      res.on('close', () => clearTimeout(t));
    });
    const { c, events } = client({
      retry: { attempts: 2, initialDelayMs: 10, maxDelayMs: 10, multiplier: 1, jitter: false, timeoutMs: 200 },
    });
    const t0 = performance.now();
    const err = await rejection(c.send(get(`${s.url}/slow`), never));
    const elapsed = performance.now() - t0;
    assert.equal(err.kind, 'transient');
    assert.equal(err.status, null);
    assert.equal(err.attempts, 2);
    assert.match(err.message, /timed out after 200 ms/);
    assert.equal(s.hits.length, 2);
    assert.ok(elapsed >= 400 && elapsed < 1500, `elapsed ${elapsed}`);
    const retry = events.find((e) => e.type === 'retry');
    assert.equal(retry?.type === 'retry' ? retry.error : undefined, 'timed out after 200 ms');
    assert.equal(c.stats().networkErrors, 2);
  });

  it('retries refused connections', async () => {
    const s = await serve((_req, res) => reply(res, 200));
    await s.close();
    const err = await rejection(client().c.send(get(`${s.url}/x`), never));
    assert.equal(err.kind, 'transient');
    assert.equal(err.attempts, 3);
    assert.equal(err.status, null);
    assert.match(err.message, /ECONNREFUSED/);
  });

  it('X-RateLimit-Remaining: 0 pauses the next request until the reset', async () => {
    const s = await serve((_req, res, n) =>
      reply(res, 200, 'ok', n === 1 ? { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' } : {}),
    );
    const { c, events } = client();
    await c.send(get(`${s.url}/a`), never);
    await c.send(get(`${s.url}/b`), never);
    const [first, second] = s.hits;
    assert.ok(first && second);
    assert.ok(second.wall - first.wall >= 1000, `gap ${second.wall - first.wall} ms`);
    const throttled = events.filter((e) => e.type === 'throttled');
    assert.equal(throttled.length, 1);
    assert.equal(throttled[0]?.type === 'throttled' ? throttled[0].reason : undefined, 'rate_limit_headers');
  });

  it('an abort during backoff rejects with interrupted', async () => {
    const s = await serve((_req, res) => reply(res, 503, '', { 'retry-after': '5' }));
    const ac = new AbortController();
    const t0 = performance.now();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(
      client().c.send(get(`${s.url}/x`), ac.signal),
      (e: unknown) => e instanceof DipError && e.kind === 'interrupted',
    );
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(s.hits.length, 1);
  });

  it('adaptive concurrency grows to the ceiling and never exceeds it', async () => {
    const s = await serve((_req, res) => setTimeout(() => reply(res, 200, '{}'), 50));
    const { c, events } = client({ concurrency: { initial: 2, max: 5, min: 1 } });
    await Promise.all(Array.from({ length: 40 }, (_, i) => c.send(get(`${s.url}/p?i=${i}`), never)));
    assert.equal(s.maxInFlight(), 5);
    assert.equal(c.stats().maxInFlight, 5);
    assert.deepEqual(
      events.flatMap((e) => (e.type === 'concurrency' ? [e.limit] : [])),
      [4, 5],
    );
  });

  it('adaptive concurrency halves once on a burst of 503s', async () => {
    const s = await serve((_req, res, n) => setTimeout(() => reply(res, n <= 8 ? 503 : 200, ''), 10));
    const { c, events } = client({ concurrency: { initial: 8, max: 8, min: 1 } });
    await Promise.all(Array.from({ length: 8 }, (_, i) => c.send(get(`${s.url}/p?i=${i}`), never)));
    assert.equal(s.hits.length, 16);
    assert.deepEqual(
      events.flatMap((e) => (e.type === 'concurrency' ? [[e.limit, e.reason]] : [])),
      [
        [4, 'overload'],
        [5, 'success'],
      ],
    );
    assert.equal(c.stats().retries, 8);
  });
});
