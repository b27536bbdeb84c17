import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RestAuthConfig } from '../src/config/rest.js';
import { DipError } from '../src/core/errors.js';
import { decryptState, deriveStateKey, isEncryptedState } from '../src/sources/rest/state-crypto.js';
import { createAuthenticator, type AuthContext } from '../src/sources/rest/auth.js';
import type { HttpRequest, StateStore } from '../src/sources/rest/http/types.js';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void | Promise<void>;

interface TestServer {
  url: string;
  close(): Promise<void>;
}

async function listen(handler: Handler): Promise<TestServer> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function memoryState(initial?: unknown): StateStore & { value: unknown; saves: number } {
  const store = {
    value: initial,
    saves: 0,
    load: async () => store.value,
    save: async (value: unknown) => {
      await new Promise((r) => setTimeout(r, 20));
      store.value = value;
      store.saves += 1;
    },
  };
  return store;
}

const signal = new AbortController().signal;

function request(url: string, headers: Record<string, string> = {}): HttpRequest {
  return { method: 'GET', url, headers: { ...headers }, resource: 'items' };
}

async function expectDipError(promise: Promise<unknown>, kind: DipError['kind']): Promise<DipError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DipError, `expected a DipError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    return err;
  }
  assert.fail('expected the promise to reject');
}

describe('static credentials', () => {
  let echo: TestServer;
  before(async () => {
    echo = await listen((req, _body, res) => json(res, 200, { url: req.url, headers: req.headers }));
  });
  after(() => echo.close());

  /** Applies the auth, sends the request to the echo server and returns what it received. */
  async function sent(config: RestAuthConfig, path = '/items', headers: Record<string, string> = {}) {
    const auth = createAuthenticator(config, { baseUrl: echo.url, state: memoryState() });
    const req = request(`${echo.url}${path}`, headers);
    await auth.apply(req, signal);
    const res = await fetch(req.url, { headers: req.headers });
    const body = (await res.json()) as { url: string; headers: Record<string, string> };
    return { ...body, auth };
  }

  test('api_key in a header', async () => {
    const r = await sent({ type: 'api_key', name: 'X-API-Key', value: 'k-123', in: 'header' }, '/items', {
      'x-api-key': 'stale',
    });
    assert.equal(r.headers['x-api-key'], 'k-123');
    assert.deepEqual(r.auth.secrets(), ['k-123']);
  });

  test('api_key in the query replaces an existing parameter and keeps the others', async () => {
    const r = await sent(
      { type: 'api_key', name: 'api_key', value: 'k 1&2', in: 'query' },
      '/items?page=2&api_key=old',
    );
    assert.equal(r.url, '/items?page=2&api_key=k+1%262');
    assert.equal(r.headers['x-api-key'], undefined);
  });

  test('api_key in a cookie merges with the cookies already set', async () => {
    const r = await sent({ type: 'api_key', name: 'key', value: 'k-9', in: 'cookie' }, '/items', {
      cookie: 'session=abc; key=old',
    });
    assert.equal(r.headers['cookie'], 'session=abc; key=k-9');
    const alone = await sent({ type: 'api_key', name: 'key', value: 'k-9', in: 'cookie' });
    assert.equal(alone.headers['cookie'], 'key=k-9');
  });

  test('bearer', async () => {
    const r = await sent({ type: 'bearer', token: 'tok-1' }, '/items', { Authorization: 'Bearer old' });
    assert.equal(r.headers['authorization'], 'Bearer tok-1');
    assert.deepEqual(r.auth.secrets(), ['tok-1']);
  });

  test('basic', async () => {
    const r = await sent({ type: 'basic', username: 'ann', password: 'p:w' });
    const encoded = Buffer.from('ann:p:w').toString('base64');
    assert.equal(r.headers['authorization'], `Basic ${encoded}`);
    assert.deepEqual(r.auth.secrets(), ['p:w', encoded]);
  });

  test('header templates are filled from secrets', async () => {
    const r = await sent({
      type: 'headers',
      headers: { Authorization: 'Token token={secret}', 'X-Account': '{account}-{secret}', 'X-Plain': 'v1' },
      secrets: { secret: 's3', account: 'acme' },
    });
    assert.equal(r.headers['authorization'], 'Token token=s3');
    assert.equal(r.headers['x-account'], 'acme-s3');
    assert.equal(r.headers['x-plain'], 'v1');
    assert.deepEqual(r.auth.secrets(), ['s3', 'acme', 'Token token=s3', 'acme-s3']);
  });

  test('an unknown placeholder is a config error naming the header and placeholder', () => {
    assert.throws(
      () =>
        createAuthenticator(
          { type: 'headers', headers: { 'X-Token': 'T {tokn}' }, secrets: { token: 'x' } },
          { baseUrl: echo.url, state: memoryState() },
        ),
      (err: unknown) =>
        err instanceof DipError && err.kind === 'config' && /X-Token/.test(err.message) && /\{tokn\}/.test(err.message),
    );
  });

  test('static credentials never renew on 401', () => {
    const auth = createAuthenticator({ type: 'bearer', token: 't' }, { baseUrl: echo.url, state: memoryState() });
    assert.equal(auth.onUnauthorized, undefined);
  });
});

interface TokenRequest {
  path: string;
  authorization: string | undefined;
  form: Record<string, string>;
}

/** A token endpoint that counts requests and answers with the given function. */
async function tokenServer(
  answer: (
    form: URLSearchParams,
    req: IncomingMessage,
    n: number,
  ) => { status: number; body: unknown; delayMs?: number },
) {
  const requests: TokenRequest[] = [];
  const server = await listen(async (req, body, res) => {
    const form = new URLSearchParams(body);
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization, form: Object.fromEntries(form) });
    const reply = answer(form, req, requests.length);
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    json(res, reply.status, reply.body);
  });
  return { ...server, requests };
}

const clientCredentials = (
  tokenUrl: string,
  extra: Partial<Extract<RestAuthConfig, { type: 'oauth2_client_credentials' }>> = {},
): RestAuthConfig => ({
  type: 'oauth2_client_credentials',
  token_url: tokenUrl,
  client_id: 'dip',
  client_secret: 'top-secret-value',
  client_auth: 'body',
  refresh_before: '60s',
  ...extra,
});

function bearerOf(req: HttpRequest): string {
  return req.headers['Authorization'] ?? '';
}

describe('oauth2 client credentials', () => {
  test('20 concurrent applies share one token request; no I/O before the first apply', async () => {
    const server = await tokenServer((_f, _r, n) => ({
      status: 200,
      body: { access_token: `at-${n}`, token_type: 'bearer', expires_in: 3600 },
      delayMs: 50,
    }));
    try {
      const state = memoryState();
      let loads = 0;
      const auth = createAuthenticator(clientCredentials(`${server.url}/oauth/token`), {
        baseUrl: server.url,
        state: { ...state, load: async () => (loads++, undefined) },
      });
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(server.requests.length, 0);
      const reqs = Array.from({ length: 20 }, () => request(`${server.url}/items`));
      await Promise.all(reqs.map((r) => auth.apply(r, signal)));
      assert.equal(server.requests.length, 1);
      assert.deepEqual(new Set(reqs.map(bearerOf)), new Set(['Bearer at-1']));
      await auth.apply(request(`${server.url}/items`), signal);
      assert.equal(server.requests.length, 1);
      assert.equal(loads, 0);
    } finally {
      await server.close();
    }
  });

  test('an expired token is renewed', async () => {
    const server = await tokenServer((_f, _r, n) => ({
      status: 200,
      body: { access_token: `at-${n}`, expires_in: 1 },
    }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`, { refresh_before: '0s' }), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const first = request(`${server.url}/items`);
      await auth.apply(first, signal);
      await new Promise((r) => setTimeout(r, 1100));
      const second = request(`${server.url}/items`);
      await auth.apply(second, signal);
      assert.equal(server.requests.length, 2);
      assert.deepEqual([bearerOf(first), bearerOf(second)], ['Bearer at-1', 'Bearer at-2']);
    } finally {
      await server.close();
    }
  });

  test('a token is renewed refresh_before its expiry, or at half its lifetime when that is shorter', async () => {
    const server = await tokenServer((_f, _r, n) => ({
      status: 200,
      body: { access_token: `at-${n}`, expires_in: 2 },
    }));
    try {
      const ctx = { baseUrl: server.url, state: memoryState() };
      const early = createAuthenticator(clientCredentials(`${server.url}/token`, { refresh_before: '1s' }), ctx);
      // refresh_before longer than the token lives must not renew on every request.
      const capped = createAuthenticator(clientCredentials(`${server.url}/token`, { refresh_before: '1h' }), ctx);
      for (const auth of [early, capped, early, capped]) await auth.apply(request(`${server.url}/a`), signal);
      assert.equal(server.requests.length, 2);
      await new Promise((r) => setTimeout(r, 1050));
      const r = request(`${server.url}/a`);
      await early.apply(r, signal);
      assert.equal(server.requests.length, 3);
      assert.equal(bearerOf(r), 'Bearer at-3');
    } finally {
      await server.close();
    }
  });

  test('onUnauthorized drops the token and fetches a new one, but stops a loop of rejected fresh tokens', async () => {
    const server = await tokenServer((_f, _r, n) => ({
      status: 200,
      body: { access_token: `at-${n}`, expires_in: 3600 },
    }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      await auth.apply(request(`${server.url}/a`), signal);
      assert.equal(await auth.onUnauthorized?.(signal), true);
      assert.equal(server.requests.length, 2);
      const r = request(`${server.url}/a`);
      await auth.apply(r, signal);
      assert.equal(bearerOf(r), 'Bearer at-2');
      assert.equal(await auth.onUnauthorized?.(signal), true);
      assert.equal(await auth.onUnauthorized?.(signal), false, 'a fresh token rejected twice in a row');
      assert.equal(server.requests.length, 3);
    } finally {
      await server.close();
    }
  });

  test('a late 401 for a token already replaced neither fetches another nor counts against the current one', async () => {
    const server = await tokenServer((_f, _r, n) => ({
      status: 200,
      body: { access_token: `at-${n}`, expires_in: 3600 },
    }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const old = request(`${server.url}/a`);
      await auth.apply(old, signal);
      assert.equal(await auth.onUnauthorized?.(signal, old), true);
      assert.equal(server.requests.length, 2, 'the rejected token was replaced');
      for (let i = 0; i < 5; i++)
        assert.equal(await auth.onUnauthorized?.(signal, old), true, 'late answers to the old token');
      assert.equal(server.requests.length, 2, 'no token fetched for them');
      const current = request(`${server.url}/a`);
      await auth.apply(current, signal);
      assert.equal(bearerOf(current), 'Bearer at-2');
      assert.equal(await auth.onUnauthorized?.(signal, current), true, 'the current token refused: renewed');
      assert.equal(server.requests.length, 3);
    } finally {
      await server.close();
    }
  });

  test('client_auth body and basic are what the server receives; scope, audience, extra params and a relative token_url', async () => {
    const server = await tokenServer((form, req) => {
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const [id, secret] = basic
        ? Buffer.from(basic, 'base64').toString().split(':')
        : [form.get('client_id'), form.get('client_secret')];
      const ok = id === 'dip' && secret === 'top-secret-value' && form.get('grant_type') === 'client_credentials';
      return ok
        ? { status: 200, body: { access_token: 'at', expires_in: 3600 } }
        : { status: 401, body: { error: 'invalid_client' } };
    });
    try {
      const extra = { scope: 'read write', audience: 'https://api', extra_params: { resource: 'r1' } };
      const body = createAuthenticator(clientCredentials('/oauth/token', { ...extra, client_auth: 'body' }), {
        baseUrl: `${server.url}/v2/`,
        state: memoryState(),
      });
      await body.apply(request(`${server.url}/a`), signal);
      const basic = createAuthenticator(clientCredentials(`${server.url}/oauth/token`, { client_auth: 'basic' }), {
        baseUrl: server.url,
        state: memoryState(),
      });
      await basic.apply(request(`${server.url}/a`), signal);

      const [viaBody, viaBasic] = server.requests;
      assert.deepEqual(viaBody, {
        path: '/v2/oauth/token',
        authorization: undefined,
        form: {
          grant_type: 'client_credentials',
          scope: 'read write',
          audience: 'https://api',
          client_id: 'dip',
          client_secret: 'top-secret-value',
          resource: 'r1',
        },
      });
      assert.deepEqual(viaBasic, {
        path: '/oauth/token',
        authorization: `Basic ${Buffer.from('dip:top-secret-value').toString('base64')}`,
        form: { grant_type: 'client_credentials' },
      });
      assert.ok(basic.secrets().includes(`Basic ${Buffer.from('dip:top-secret-value').toString('base64')}`));
    } finally {
      await server.close();
    }
  });

  test('refused credentials are an input error with the OAuth error and without the secret', async () => {
    const server = await tokenServer(() => ({
      status: 401,
      body: { error: 'invalid_client', error_description: 'client secret top-secret-value is wrong' },
    }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const err = await expectDipError(auth.apply(request(`${server.url}/a`), signal), 'input');
      assert.match(err.message, /invalid_client/);
      assert.match(err.message, /HTTP 401/);
      assert.ok(!err.message.includes('top-secret-value'), err.message);
      assert.equal(server.requests.length, 1, 'refusals are not retried');
    } finally {
      await server.close();
    }
  });

  test('5xx is retried; persistent 5xx and unreachable endpoints are transient', async () => {
    const server = await tokenServer((_f, _r, n) =>
      n <= 2 ? { status: 503, body: {} } : { status: 200, body: { access_token: 'at-ok' } },
    );
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const r = request(`${server.url}/a`);
      await auth.apply(r, signal);
      assert.equal(bearerOf(r), 'Bearer at-ok');
      assert.equal(server.requests.length, 3);
    } finally {
      await server.close();
    }
    const down = await tokenServer(() => ({ status: 502, body: {} }));
    try {
      const auth = createAuthenticator(clientCredentials(`${down.url}/token`), {
        baseUrl: down.url,
        state: memoryState(),
      });
      await expectDipError(auth.apply(request(`${down.url}/a`), signal), 'transient');
      assert.equal(down.requests.length, 3);
    } finally {
      await down.close();
    }
    // The port of the closed server now refuses connections.
    const auth = createAuthenticator(clientCredentials(`${down.url}/token`), {
      baseUrl: down.url,
      state: memoryState(),
    });
    const err = await expectDipError(auth.apply(request(`${down.url}/a`), signal), 'transient');
    assert.ok(!err.message.includes('top-secret-value'));
  });

  test('secrets() holds the client secret and, once fetched, the access token', async () => {
    const server = await tokenServer(() => ({ status: 200, body: { access_token: 'at-secret-1', expires_in: 3600 } }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      assert.deepEqual(auth.secrets(), ['top-secret-value']);
      await auth.apply(request(`${server.url}/a`), signal);
      assert.deepEqual(auth.secrets().sort(), ['at-secret-1', 'top-secret-value']);
    } finally {
      await server.close();
    }
  });

  test('a caller that gives up does not cancel the token request the others wait for', async () => {
    const server = await tokenServer(() => ({ status: 200, body: { access_token: 'at-slow' }, delayMs: 150 }));
    try {
      const auth = createAuthenticator(clientCredentials(`${server.url}/token`), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const impatient = new AbortController();
      const a = auth.apply(request(`${server.url}/a`), impatient.signal);
      const b = request(`${server.url}/b`);
      const waiting = auth.apply(b, signal);
      setTimeout(() => impatient.abort(), 20);
      await expectDipError(a, 'interrupted');
      await waiting;
      assert.equal(bearerOf(b), 'Bearer at-slow');
      assert.equal(server.requests.length, 1);
    } finally {
      await server.close();
    }
  });

  test('a bad token_url or refresh_before is a config error at creation', () => {
    const ctx: AuthContext = { baseUrl: 'not a url', state: memoryState() };
    assert.throws(
      () => createAuthenticator(clientCredentials('/token'), ctx),
      (e: unknown) => e instanceof DipError && e.kind === 'config',
    );
    assert.throws(
      () =>
        createAuthenticator(clientCredentials('https://x/token', { refresh_before: 'soon' }), {
          ...ctx,
          baseUrl: 'https://x',
        }),
      (e: unknown) => e instanceof DipError && e.kind === 'config' && /refresh_before/.test(e.message),
    );
  });
});

describe('oauth2 refresh token', () => {
  // The stored refresh token is encrypted (issue 14 item 15): the assertions read it through the key.
  const STATE_KEY = 'test-state-key';
  const opened = (value: unknown): unknown => {
    assert.ok(isEncryptedState(value), `state is stored encrypted: ${JSON.stringify(value)}`);
    return decryptState(value, deriveStateKey(STATE_KEY, 'test'), 'test');
  };

  /** Issues a new refresh token on every use and refuses any that was used before. */
  async function rotatingServer(initial: string) {
    let valid = new Set([initial]);
    let issued = 0;
    const server = await tokenServer((form) => {
      const rt = form.get('refresh_token') ?? '';
      if (form.get('grant_type') !== 'refresh_token' || form.get('client_id') !== 'dip')
        return { status: 400, body: { error: 'invalid_request' } };
      if (!valid.has(rt))
        return { status: 400, body: { error: 'invalid_grant', error_description: 'refresh token already used' } };
      issued += 1;
      const next = `rt-${issued}`;
      valid = new Set([next]);
      return { status: 200, body: { access_token: `at-${issued}`, refresh_token: next, expires_in: 3600 } };
    });
    return server;
  }

  const refreshConfig = (tokenUrl: string, refreshToken = 'rt-0'): RestAuthConfig => ({
    type: 'oauth2_refresh_token',
    token_url: tokenUrl,
    client_id: 'dip',
    refresh_token: refreshToken,
    client_auth: 'body',
    refresh_before: '60s',
    state_key: STATE_KEY,
  });

  test('a rotated refresh token is saved before use, and the next authenticator starts from it', async () => {
    const server = await rotatingServer('rt-0');
    try {
      const state = memoryState();
      const first = createAuthenticator(refreshConfig(`${server.url}/token`), { baseUrl: server.url, state });
      const r1 = request(`${server.url}/a`);
      await first.apply(r1, signal);
      assert.equal(bearerOf(r1), 'Bearer at-1');
      assert.equal(state.saves, 1, 'saved before apply resolved');
      assert.equal((opened(state.value) as { refresh_token: string }).refresh_token, 'rt-1');

      // Same configuration (its rt-0 is spent by now): the second run must use the stored rt-1.
      const second = createAuthenticator(refreshConfig(`${server.url}/token`), { baseUrl: server.url, state });
      const r2 = request(`${server.url}/a`);
      await second.apply(r2, signal);
      assert.equal(bearerOf(r2), 'Bearer at-2');
      const stored = opened(state.value) as { refresh_token: string; rotated_at: string };
      assert.equal(stored.refresh_token, 'rt-2');
      assert.ok(!Number.isNaN(Date.parse(stored.rotated_at)));
      assert.deepEqual(
        server.requests.map((r) => r.form['refresh_token']),
        ['rt-0', 'rt-1'],
      );
      assert.deepEqual(second.secrets().sort(), ['at-2', 'rt-0', 'rt-1', 'rt-2']);

      // The refresh on 401 continues the chain.
      assert.equal(await second.onUnauthorized?.(signal), true);
      assert.equal((opened(state.value) as { refresh_token: string }).refresh_token, 'rt-3');
    } finally {
      await server.close();
    }
  });

  test('a stale stored token falls back to a renewed configured one', async () => {
    const server = await rotatingServer('rt-new');
    try {
      const state = memoryState({ refresh_token: 'rt-revoked', rotated_at: '2024-01-01T00:00:00.000Z' });
      const auth = createAuthenticator(refreshConfig(`${server.url}/token`, 'rt-new'), { baseUrl: server.url, state });
      const r = request(`${server.url}/a`);
      await auth.apply(r, signal);
      assert.equal(bearerOf(r), 'Bearer at-1');
      assert.deepEqual(
        server.requests.map((q) => q.form['refresh_token']),
        ['rt-revoked', 'rt-new'],
      );
      assert.equal((opened(state.value) as { refresh_token: string }).refresh_token, 'rt-1');
    } finally {
      await server.close();
    }
  });

  test('a spent refresh token is an input error naming invalid_grant', async () => {
    const server = await rotatingServer('rt-other');
    try {
      const auth = createAuthenticator(refreshConfig(`${server.url}/token`, 'rt-spent'), {
        baseUrl: server.url,
        state: memoryState(),
      });
      const err = await expectDipError(auth.apply(request(`${server.url}/a`), signal), 'input');
      assert.match(err.message, /invalid_grant/);
      assert.ok(!err.message.includes('rt-spent'), err.message);
    } finally {
      await server.close();
    }
  });
});
