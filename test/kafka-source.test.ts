/**
 * Kafka as a source (issue 16): a topic with 3 partitions holds N messages (1 KB JSON, and 3 that
 * fail the stream's JSON Schema); `dip run --follow` is SIGKILLed twice while landing, then a
 * plain run lands the rest. Bronze holds each message exactly once, the invalid ones are in
 * quarantine with the reason, and the catalog offsets equal the partitions' high watermarks.
 *
 * The cluster: DIP_KAFKA_BROKERS (host:port,…) when set, else librdkafka's mock cluster
 * (test/support/kafka-mock.ts). The connector's client (@platformatic/kafka) speaks the protocol
 * of Kafka 3.5 and later; the mock of Debian's librdkafka 2.0.2 refuses its ApiVersions v3
 * request (UNSUPPORTED_VERSION), so against that mock the test is skipped with that reason.
 * 60,000 messages by default (the issue asks for 200,000: DIP_BROKER_MESSAGES).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { followWithKills } from './support/broker-crash.js';
import { type KafkaMock, kafkaMockProbe, startKafkaMock } from './support/kafka-mock.js';
import { TestProject } from './support/project.js';
import { requireOrSkip } from './support/service.js';

const TOTAL = Number(process.env['DIP_BROKER_MESSAGES'] ?? 60_000);
const PAD = 'x'.repeat(960);
const external = process.env['DIP_KAFKA_BROKERS']?.split(',').filter(Boolean);

describe(
  'kafka source: 3 partitions, killed twice, each message once',
  external ? {} : requireOrSkip(kafkaMockProbe()),
  () => {
    let mock: KafkaMock | undefined;
    let p: TestProject | undefined;
    after(async () => {
      await p?.dispose();
      await mock?.stop();
    });

    it(`lands ${TOTAL} messages exactly once; offsets equal the high watermarks`, async (t) => {
      const kafka = await import('@platformatic/kafka');
      let brokers = external;
      if (!brokers) {
        mock = await startKafkaMock(3);
        brokers = mock.brokers;
      }
      const topic = `orders_${Date.now()}`;
      const admin = new kafka.Admin({ clientId: 'test', bootstrapBrokers: brokers, retries: 0 });
      try {
        await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
      } catch (e) {
        await admin.close().catch(() => undefined);
        const codes = ((e as { errors?: { apiId?: string }[] }).errors ?? []).map((x) => x.apiId);
        if (!external && codes.includes('UNSUPPORTED_VERSION')) {
          t.skip(
            'the Kafka mock cluster (librdkafka 2.0.2) refuses ApiVersions v3: @platformatic/kafka needs Kafka 3.5+ (set DIP_KAFKA_BROKERS to a real cluster)',
          );
          return;
        }
        throw e;
      }
      await admin.close();
      const producer = new kafka.Producer({ clientId: 'test', bootstrapBrokers: brokers, idempotent: true, acks: -1 });
      for (let i = 0; i < TOTAL; i += 2000) {
        const messages = [];
        for (let j = i; j < Math.min(TOTAL, i + 2000); j++)
          messages.push({
            topic,
            partition: j % 3,
            key: Buffer.from(`k${j}`),
            value: Buffer.from(JSON.stringify({ id: j, pad: PAD })),
          });
        await producer.send({ messages });
      }
      await producer.send({
        messages: [0, 1, 2].map((k) => ({ topic, partition: 0, value: Buffer.from(JSON.stringify({ broken: k })) })),
      });
      await producer.close();

      p = await TestProject.withSources({
        bus: {
          type: 'kafka',
          brokers,
          batch: { max_events: 5000, max_age: '300ms' },
          streams: {
            orders: { topic, schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } },
          },
        },
      });
      const project = p;
      const landed = async () => {
        const lake = await project.reopen();
        const s = (await lake.catalog.getState('p', 'bus', 'orders')) as { positions?: Record<string, number> } | null;
        return Object.values(s?.positions ?? {}).reduce((a, b) => a + b, 0);
      };
      const r = await followWithKills(p, 2, landed);
      assert.equal(r.catchUp.code, 0, r.catchUp.stderr);
      await p.reopen();
      const [c] = await p.rows(
        'select count(*) as n, count(distinct id) as ids, count(distinct (_broker_partition, _broker_offset)) as offs from bronze.orders',
      );
      assert.deepEqual(
        { n: Number(c?.['n']), ids: Number(c?.['ids']), offs: Number(c?.['offs']) },
        { n: TOTAL, ids: TOTAL, offs: TOTAL },
      );
      const q = await p.rows('select reason from quarantine.orders');
      assert.equal(q.length, 3);
      for (const row of q)
        assert.match(String(row['reason']), /^partition 0 position \d+: \/ must have required property 'id'$/);
      const consumer = new kafka.Consumer({ clientId: 'test', groupId: 'check', bootstrapBrokers: brokers });
      const high = (await consumer.listOffsets({ topics: [topic] })).get(topic) ?? [];
      await consumer.close(true);
      const state = (await (await p.lake()).catalog.getState('p', 'bus', 'orders')) as {
        positions: Record<string, number>;
      };
      assert.deepEqual(state.positions, Object.fromEntries(high.map((o, i) => [String(i), Number(o)])));
    });
  },
);
