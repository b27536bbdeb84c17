/**
 * The gateway (issue 16): auth by API key (hashed, two active), bearer, and HMAC signatures made
 * by the providers' own code (`@octokit/webhooks-methods` for GitHub, `stripe`'s
 * generateTestHeaderString for Stripe), a generic HMAC header; bodies as object, array and
 * NDJSON; 413 past the body limit; JSON Schema (400, and the refused event in quarantine with its
 * reason once landed); redeliveries by event id and by Idempotency-Key (200, landed once); 429 +
 * Retry-After past the backlog limit; 503 while draining. Then `dip run` lands exactly what was
 * acknowledged.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sign } from '@octokit/webhooks-methods';
import Stripe from 'stripe';
import { loadProject } from '../src/config/load.js';
import { type GatewayServer, startGateway } from '../src/gateway/server.js';
import { TestProject } from './support/project.js';

const GH_SECRET = 'gh-secret-1';
const STRIPE_SECRET = 'whsec_test_secret';
const HMAC_SECRET = 'generic-secret';
const KEY_A = 'key-a-old';
const KEY_B = 'key-b-new';
const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const stripe = new Stripe('sk_test_dummy');

describe('dip gateway: endpoints, auth, body, schema, idempotency, backpressure', () => {
  let p: TestProject;
  let gw: GatewayServer;
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${gw.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  before(async () => {
    p = await TestProject.withSources({
      hooks: {
        type: 'gateway',
        max_backlog: 40,
        endpoints: {
          github: {
            path: '/hooks/github',
            auth: { type: 'github', secret: '${env:DIP_TEST_GH_SECRET}' },
            id_header: 'x-github-delivery',
          },
          stripe: {
            path: '/hooks/stripe',
            auth: { type: 'stripe', secret: STRIPE_SECRET, tolerance: '5m' },
            event_id: 'id',
          },
          pins: {
            auth: { type: 'api_key', keys: [sha(KEY_A), sha(KEY_B)] },
            event_id: 'id',
            schema: 'schemas/pin.json',
            max_body: '2kb',
          },
          likes: { auth: { type: 'bearer', tokens: ['tok-1'] } },
          generic: {
            auth: { type: 'hmac', secret: HMAC_SECRET, header: 'x-signature', encoding: 'base64', prefix: 'v1=' },
          },
        },
      },
    });
    await p.write(
      'schemas/pin.json',
      JSON.stringify({
        type: 'object',
        required: ['id', 'user_id'],
        properties: { id: { type: 'string' }, user_id: { type: 'integer' }, title: { type: 'string' } },
      }),
    );
    process.env['DIP_TEST_GH_SECRET'] = GH_SECRET;
    gw = await startGateway(await loadProject(p.dir), { host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await gw?.close();
    await p?.dispose();
    delete process.env['DIP_TEST_GH_SECRET'];
  });

  it('serves each endpoint on its path (default /ingest/<pipeline>/<source>/<endpoint>)', () => {
    assert.deepEqual(
      gw.gateway.endpoints.map((e) => e.path),
      ['/hooks/github', '/hooks/stripe', '/ingest/p/hooks/pins', '/ingest/p/hooks/likes', '/ingest/p/hooks/generic'],
    );
  });

  it('GitHub: a signature by @octokit/webhooks-methods passes; wrong or missing → 401', async () => {
    const body = JSON.stringify({ action: 'opened', number: 1 });
    const ok = await post('/hooks/github', body, {
      'x-hub-signature-256': await sign(GH_SECRET, body),
      'x-github-delivery': 'd-1',
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { accepted: 1, duplicates: 0 });
    const wrong = await post('/hooks/github', body, { 'x-hub-signature-256': await sign('not-the-secret', body) });
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: 'signature does not match' });
    const tampered = await post('/hooks/github', body.replace('1', '2'), {
      'x-hub-signature-256': await sign(GH_SECRET, body),
    });
    assert.equal(tampered.status, 401);
    const missing = await post('/hooks/github', body);
    assert.equal(missing.status, 401);
    assert.deepEqual(await missing.json(), { error: 'missing X-Hub-Signature-256 header' });
    // A redelivery (same X-GitHub-Delivery) is answered 200 and stored once.
    const again = await post('/hooks/github', body, {
      'x-hub-signature-256': await sign(GH_SECRET, body),
      'x-github-delivery': 'd-1',
    });
    assert.deepEqual([again.status, await again.json()], [200, { accepted: 0, duplicates: 1 }]);
  });

  it('Stripe: a header from stripe.webhooks.generateTestHeaderString passes; stale timestamp or wrong secret → 401', async () => {
    const body = JSON.stringify({ id: 'evt_1', type: 'customer.created', data: { object: { id: 'cus_1' } } });
    const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret: STRIPE_SECRET });
    const ok = await post('/hooks/stripe', body, { 'stripe-signature': header });
    assert.equal(ok.status, 200);
    const stale = stripe.webhooks.generateTestHeaderString({
      payload: body,
      secret: STRIPE_SECRET,
      timestamp: Math.floor(Date.now() / 1000) - 600,
    });
    const old = await post('/hooks/stripe', body, { 'stripe-signature': stale });
    assert.equal(old.status, 401);
    assert.deepEqual(await old.json(), { error: 'signature timestamp outside the tolerance of 5m' });
    const wrong = stripe.webhooks.generateTestHeaderString({ payload: body, secret: 'whsec_other' });
    assert.equal((await post('/hooks/stripe', body, { 'stripe-signature': wrong })).status, 401);
    assert.equal((await post('/hooks/stripe', body)).status, 401);
    // Redelivered with a fresh signature: same event id → 200, once.
    const redelivered = await post('/hooks/stripe', body, {
      'stripe-signature': stripe.webhooks.generateTestHeaderString({ payload: body, secret: STRIPE_SECRET }),
    });
    assert.deepEqual([redelivered.status, await redelivered.json()], [200, { accepted: 0, duplicates: 1 }]);
  });

  it('API keys are compared by digest, both rotated keys work; bearer; generic HMAC', async () => {
    const pin = (id: string) => JSON.stringify({ id, user_id: 7, title: 'a pin' });
    assert.equal((await post('/ingest/p/hooks/pins', pin('pin_1'), { 'x-api-key': KEY_A })).status, 200);
    assert.equal((await post('/ingest/p/hooks/pins', pin('pin_2'), { 'x-api-key': KEY_B })).status, 200);
    const unknown = await post('/ingest/p/hooks/pins', pin('pin_3'), { 'x-api-key': 'key-c' });
    assert.deepEqual([unknown.status, await unknown.json()], [401, { error: 'unknown API key' }]);
    assert.equal((await post('/ingest/p/hooks/pins', pin('pin_3'))).status, 401);
    // The digest itself is not a key.
    assert.equal((await post('/ingest/p/hooks/pins', pin('pin_3'), { 'x-api-key': sha(KEY_A) })).status, 401);

    const like = JSON.stringify({ pin: 'pin_1', user: 3 });
    assert.equal((await post('/ingest/p/hooks/likes', like, { authorization: 'Bearer tok-1' })).status, 200);
    assert.equal((await post('/ingest/p/hooks/likes', like, { authorization: 'Bearer tok-2' })).status, 401);
    assert.equal((await post('/ingest/p/hooks/likes', like)).status, 401);

    const g = JSON.stringify({ kind: 'generic' });
    const sig = `v1=${createHmac('sha256', HMAC_SECRET).update(g).digest('base64')}`;
    assert.equal((await post('/ingest/p/hooks/generic', g, { 'x-signature': sig })).status, 200);
    assert.equal((await post('/ingest/p/hooks/generic', `${g} `, { 'x-signature': sig })).status, 401);
  });

  it('bodies: array and NDJSON batches; unreadable → 400; oversized → 413', async () => {
    const key = { 'x-api-key': KEY_A };
    const arr = JSON.stringify([
      { id: 'pin_10', user_id: 1 },
      { id: 'pin_11', user_id: 2 },
    ]);
    assert.deepEqual(await (await post('/ingest/p/hooks/pins', arr, key)).json(), { accepted: 2, duplicates: 0 });
    const nd = `${JSON.stringify({ id: 'pin_12', user_id: 3 })}\n${JSON.stringify({ id: 'pin_10', user_id: 1 })}\n`;
    const r = await post('/ingest/p/hooks/pins', nd, { ...key, 'content-type': 'application/x-ndjson' });
    assert.deepEqual([r.status, await r.json()], [200, { accepted: 1, duplicates: 1 }]);
    const bad = await post('/ingest/p/hooks/pins', '{"id": ', key);
    assert.deepEqual([bad.status, await bad.json()], [400, { error: 'body is not valid JSON' }]);
    const scalar = await post('/ingest/p/hooks/pins', '[1]', key);
    assert.deepEqual(
      [scalar.status, await scalar.json()],
      [400, { error: 'element 0 of the array is not a JSON object' }],
    );
    const big = JSON.stringify({ id: 'pin_big', user_id: 1, title: 'x'.repeat(3000) });
    const tooBig = await post('/ingest/p/hooks/pins', big, key);
    assert.deepEqual(
      [tooBig.status, await tooBig.json()],
      [413, { error: 'request body is larger than the endpoint accepts' }],
    );
  });

  it('schema: an invalid event → 400 with the reason, nothing of its request accepted', async () => {
    const body = JSON.stringify([
      { id: 'pin_20', user_id: 5 },
      { id: 'pin_21', user_id: 'five' },
    ]);
    const r = await post('/ingest/p/hooks/pins', body, { 'x-api-key': KEY_A });
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), {
      error: "1 of 2 events do not match the endpoint's schema; none was accepted, the invalid ones are quarantined",
      rejected: [{ index: 1, reason: '/user_id must be integer' }],
    });
  });

  it('lands every acknowledged event once; the refused one is in quarantine with its reason', async () => {
    const run = await p.runOk();
    assert.equal(await p.count('bronze.github'), 1);
    assert.equal(await p.count('bronze.stripe'), 1);
    assert.deepEqual(
      (await p.rows('select id from bronze.pins order by id')).map((r) => r['id']),
      ['pin_1', 'pin_10', 'pin_11', 'pin_12', 'pin_2'],
    );
    assert.equal(await p.count('bronze.likes'), 1);
    assert.equal(await p.count('bronze.generic'), 1);
    assert.deepEqual(await p.rows('select error_type, reason, raw from quarantine.pins'), [
      { error_type: 'schema', reason: '/user_id must be integer', raw: '{"id":"pin_21","user_id":"five"}' },
    ]);
    assert.equal(run.stats.streams['hooks.pins']?.rows, 5);
    assert.equal(run.stats.streams['hooks.pins']?.quarantined, 1);
    // Nothing new: a second run lands nothing.
    const second = await p.runOk();
    assert.equal(second.stats.streams['hooks.pins']?.rows, 0);
    assert.equal(await p.count('bronze.pins'), 5);
  });

  it('429 with Retry-After once the unlanded backlog passes max_backlog; accepted again after landing', async () => {
    const batch = (from: number, n: number) =>
      JSON.stringify(Array.from({ length: n }, (_, i) => ({ id: `bp_${from + i}`, user_id: i })));
    assert.equal((await post('/ingest/p/hooks/pins', batch(0, 40), { 'x-api-key': KEY_A })).status, 200);
    await new Promise((r) => setTimeout(r, 250)); // the backlog's view of the lander's ack is cached 200 ms
    const full = await post('/ingest/p/hooks/pins', batch(40, 1), { 'x-api-key': KEY_A });
    assert.equal(full.status, 429);
    assert.equal(full.headers.get('retry-after'), '1');
    await p.runOk();
    await new Promise((r) => setTimeout(r, 250));
    assert.equal((await post('/ingest/p/hooks/pins', batch(40, 1), { 'x-api-key': KEY_A })).status, 200);
    await p.runOk();
    assert.equal(await p.count('bronze.pins'), 46);
  });

  it('503 while shutting down', async () => {
    gw.gateway.drain();
    const r = await post('/ingest/p/hooks/likes', '{}', { authorization: 'Bearer tok-1' });
    assert.equal(r.status, 503);
  });
});

describe('dip serve --gateway: the endpoints beside the API', () => {
  it('serves them with their own auth (no serve token, NDJSON allowed) while the API keeps its token', async () => {
    const { serve } = await import('../src/serve/server.js');
    const { openGateway } = await import('../src/gateway/server.js');
    const p = await TestProject.withSources({
      hooks: { type: 'gateway', endpoints: { likes: { auth: { type: 'bearer', tokens: ['tok-like'] } } } },
    });
    const project = await loadProject(p.dir);
    const gateway = await openGateway(project);
    const server = await serve(await p.lake(), {
      host: '127.0.0.1',
      port: 0,
      tickMs: 100,
      concurrency: 1,
      executor: 'in-process',
      token: 'api-token',
      defaultMetrics: false,
      gateway,
    });
    try {
      const url = `${server.address}/ingest/p/hooks/likes`;
      const nd = '{"pin":1}\n{"pin":2}\n';
      const ok = await fetch(url, {
        method: 'POST',
        body: nd,
        headers: { 'content-type': 'application/x-ndjson', authorization: 'Bearer tok-like' },
      });
      assert.deepEqual([ok.status, await ok.json()], [200, { accepted: 2, duplicates: 0 }]);
      // The API token is not a gateway credential, and the API still wants it.
      const apiToken = await fetch(url, { method: 'POST', body: nd, headers: { authorization: 'Bearer api-token' } });
      assert.equal(apiToken.status, 401);
      assert.equal((await fetch(`${server.address}/runs`)).status, 401);
      const doc = (await (
        await fetch(`${server.address}/openapi.json`, { headers: { authorization: 'Bearer api-token' } })
      ).json()) as {
        paths: Record<string, unknown>;
      };
      assert.equal(
        Object.keys(doc.paths).some((k) => k.startsWith('/ingest')),
        false,
      );
    } finally {
      await server.close();
      await gateway.close();
    }
    const run = await p.runOk();
    assert.equal(run.stats.streams['hooks.likes']?.rows, 2);
    await p.dispose();
  });
});

it('the gateway example in README.md validates and declares its endpoints as streams', async () => {
  const { readFileSync } = await import('node:fs');
  const { parseProject } = await import('../src/config/load.js');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.includes('type: gateway'));
  assert.ok(block);
  const config = parseProject(`version: 1\nproject: x\n${block}`, 'README.md');
  const hooks = config.pipelines['app']?.sources['hooks'];
  assert.ok(hooks?.type === 'gateway');
  assert.deepEqual(Object.keys(hooks.endpoints), ['github', 'payments', 'pins']);
});

describe('dip emulate posting', () => {
  it('posts Pinterest-style activity to an endpoint; every acknowledged event lands, redeliveries once', async () => {
    const { runCli } = await import('./support/project.js');
    const p = await TestProject.withSources({
      app: { type: 'gateway', endpoints: { activity: { auth: { type: 'bearer', tokens: ['tok'] }, event_id: 'id' } } },
    });
    const gw = await startGateway(await loadProject(p.dir), { host: '127.0.0.1', port: 0 });
    try {
      const out = await runCli(
        [
          'emulate',
          'posting',
          '--url',
          `${gw.url}/ingest/p/app/activity`,
          '--header',
          'Authorization: Bearer tok',
          '--total',
          '60',
          '--batch',
          '6',
          '--rate',
          '0',
          '--redeliver',
          '0.5',
        ],
        p.dir,
      );
      assert.equal(out.code, 0, out.stderr);
      const stats = JSON.parse(out.stdout) as { acked: number; failed: number; redelivered: number };
      assert.equal(stats.acked, 60);
      assert.equal(stats.failed, 0);
      assert.ok(stats.redelivered > 0);
    } finally {
      await gw.close();
    }
    await p.runOk();
    assert.equal(await p.num('select count(*) from bronze.activity'), 60);
    assert.equal(await p.num('select count(distinct id) from bronze.activity'), 60);
    const kinds = (await p.rows('select distinct type from bronze.activity order by type')).map((r) => r['type']);
    assert.ok(kinds.includes('pin') && kinds.includes('like'), JSON.stringify(kinds));
    await p.dispose();
  });
});
