/**
 * The gateway with its log on NATS JetStream (a throwaway `nats-server -js`): events accepted by
 * one gateway land once, redeliveries (same event id) included, and a second gateway process on
 * the same stream shares the dedup window (scale-out). Skipped without nats-server unless
 * DIP_REQUIRE_SERVICES=1.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { type GatewayServer, startGateway } from '../src/gateway/server.js';
import { type NatsServer, natsProbe, startNats } from './support/nats.js';
import { TestProject } from './support/project.js';
import { requireOrSkip } from './support/service.js';

describe('gateway on JetStream', requireOrSkip(natsProbe()), () => {
  let nats: NatsServer;
  let p: TestProject;
  const gateways: GatewayServer[] = [];
  before(async () => {
    nats = await startNats();
    p = await TestProject.withSources({
      app: {
        type: 'gateway',
        log: { type: 'jetstream', url: nats.url },
        batch: { max_events: 100, max_age: '100ms' },
        endpoints: {
          events: {
            auth: { type: 'bearer', tokens: ['t'] },
            event_id: 'id',
            schema: { type: 'object', required: ['id'] },
          },
        },
      },
    });
  });
  after(async () => {
    for (const g of gateways) await g.close();
    await p?.dispose();
    await nats?.stop();
  });

  it('two gateways on one stream: every event once, redeliveries to either gateway answered 200', async () => {
    for (let i = 0; i < 2; i++)
      gateways.push(await startGateway(await loadProject(p.dir), { host: '127.0.0.1', port: 0 }));
    const post = (g: GatewayServer, body: string) =>
      fetch(`${g.url}/ingest/p/app/events`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-ndjson', authorization: 'Bearer t' },
      });
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => JSON.stringify({ id: `e${from + i}`, n: from + i })).join('\n');
    const [a, b] = gateways as [GatewayServer, GatewayServer];
    assert.deepEqual(await (await post(a, batch(0, 250))).json(), { accepted: 250, duplicates: 0 });
    assert.deepEqual(await (await post(b, batch(200, 100))).json(), { accepted: 50, duplicates: 50 });
    const bad = await post(a, '{"n": 1}');
    assert.equal(bad.status, 400);
    const run = await p.runOk();
    assert.equal(run.stats.streams['app.events']?.rows, 300);
    assert.equal(run.stats.streams['app.events']?.quarantined, 1);
    assert.equal(await p.num('select count(distinct id) from bronze.events'), 300);
    assert.equal(await p.count('bronze.events'), 300);
    // More, then a second run lands only the new ones (the offset is in the catalog).
    assert.equal((await post(b, batch(300, 20))).status, 200);
    const second = await p.runOk();
    assert.equal(second.stats.streams['app.events']?.rows, 20);
    assert.equal(await p.count('bronze.events'), 320);
    const state = (await (await p.lake()).catalog.getState('p', 'app', 'events')) as { next: number };
    assert.equal(state.next, 322); // sequences 1..321: 320 events and the quarantined one
  });
});
