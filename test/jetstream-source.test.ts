/**
 * JetStream as a source (issue 16): a JetStream stream with 3 partition subjects holds N messages
 * (1 KB JSON, and 3 that fail the stream's JSON Schema); `dip run --follow` is SIGKILLed twice
 * while landing, then a plain run lands the rest. Bronze holds each message exactly once, the
 * invalid ones are in quarantine with the reason, and the catalog positions equal the log end.
 * The issue asks for 200,000 messages; this test publishes 60,000 by default (2 cores shared by
 * many); set DIP_BROKER_MESSAGES to publish more.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, TestProject } from './support/project.js';
import { followWithKills } from './support/broker-crash.js';
import { natsProbe, type NatsServer, startNats } from './support/nats.js';
import { requireOrSkip } from './support/service.js';

const TOTAL = Number(process.env['DIP_BROKER_MESSAGES'] ?? 60_000);
const SUBJECTS = ['orders.0', 'orders.1', 'orders.2'];
const PAD = 'x'.repeat(960);

describe('jetstream source: 3 partitions, killed twice, each message once', requireOrSkip(natsProbe()), () => {
  let nats: NatsServer;
  let p: TestProject;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await p?.dispose();
    await nats?.stop();
  });

  it(`lands ${TOTAL} messages exactly once; positions equal the subjects' ends`, async () => {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstream, jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.*'] });
    const js = jetstream(nc);
    const enc = new TextEncoder();
    for (let i = 0; i < TOTAL; i += 2000) {
      const pubs: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(TOTAL, i + 2000); j++)
        pubs.push(
          js.publish(SUBJECTS[j % 3] as string, enc.encode(JSON.stringify({ id: j, kind: 'order', pad: PAD })), {
            msgID: `m${j}`,
          }),
        );
      await Promise.all(pubs);
    }
    for (let k = 0; k < 3; k++) await js.publish('orders.0', enc.encode(JSON.stringify({ kind: 'broken', k })));

    p = await TestProject.withSources({
      bus: {
        type: 'jetstream',
        url: nats.url,
        stream: 'ORDERS',
        batch: { max_events: 5000, max_age: '300ms' },
        streams: {
          orders: {
            subjects: SUBJECTS,
            schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } },
          },
        },
      },
    });
    const landed = async () => {
      const lake = await p.reopen();
      const s = (await lake.catalog.getState('p', 'bus', 'orders')) as { positions?: Record<string, number> } | null;
      return Object.values(s?.positions ?? {}).reduce((a, b) => a + b, 0);
    };
    const r = await followWithKills(p, 2, landed);
    assert.equal(r.catchUp.code, 0, r.catchUp.stderr);
    await p.reopen();

    const [counts] = await p.rows(
      'select count(*) as n, count(distinct id) as ids, count(distinct _broker_seq) as seqs, min(id) as lo, max(id) as hi from bronze.orders',
    );
    assert.deepEqual(
      { n: Number(counts?.['n']), ids: Number(counts?.['ids']), seqs: Number(counts?.['seqs']) },
      { n: TOTAL, ids: TOTAL, seqs: TOTAL },
    );
    assert.equal(Number(counts?.['lo']), 0);
    assert.equal(Number(counts?.['hi']), TOTAL - 1);
    const q = await p.rows('select reason from quarantine.orders order by reason');
    assert.equal(q.length, 3);
    for (const row of q)
      assert.match(String(row['reason']), /^partition orders\.0 position \d+: \/ must have required property 'id'$/);

    // The catalog positions are each subject's last sequence + 1.
    const state = (await (await p.lake()).catalog.getState('p', 'bus', 'orders')) as {
      positions: Record<string, number>;
    };
    const ends: Record<string, number> = {};
    for (const s of SUBJECTS) ends[s] = ((await jsm.streams.getMessage('ORDERS', { last_by_subj: s }))?.seq ?? 0) + 1;
    assert.deepEqual(state.positions, ends);
    process.stdout.write(
      `# ${JSON.stringify({ total: TOTAL, landedAtKills: r.landedAtKills, positions: state.positions })}\n`,
    );
    await nc.close();
  });

  it('a schema file that is missing fails the run naming the field and the file', async () => {
    const q = await TestProject.withSources({
      bus: {
        type: 'jetstream',
        url: nats.url,
        stream: 'ORDERS',
        streams: { orders: { subjects: 'orders.0', schema: 'missing.json' } },
      },
    });
    try {
      const r = await runCli(['run'], q.dir);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /sources\.bus\.streams\.orders\.schema: cannot read the JSON Schema missing\.json/);
    } finally {
      await q.dispose();
    }
  });
});
