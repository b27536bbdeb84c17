/**
 * Broker sinks (issue 16): a bronze table's commits published to a JetStream subject as
 * Debezium-style envelopes, exactly once on DIP's side: a second publish sends nothing, and a
 * publish interrupted after the acknowledgement but before the catalog recorded it (simulated by
 * moving the recorded commit back) re-sends messages the stream drops by Nats-Msg-Id. The Kafka
 * case runs against DIP_KAFKA_BROKERS or librdkafka's mock cluster (test/support/kafka-mock.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PUBLISH_PIPELINE, publishChanges } from '../src/destinations/publish.js';
import { type KafkaMock, kafkaMockProbe, startKafkaMock } from './support/kafka-mock.js';
import { natsProbe, type NatsServer, startNats } from './support/nats.js';
import { TestProject } from './support/project.js';
import { requireOrSkip } from './support/service.js';

describe('jetstream destination: change envelopes, each commit published once', requireOrSkip(natsProbe()), () => {
  let nats: NatsServer;
  let p: TestProject;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await p?.dispose();
    await nats?.stop();
  });

  it('publishes 2 commits of 3 + 2 rows as envelopes; a re-run and a replayed commit add nothing', async () => {
    const { connect } = await import('@nats-io/transport-node');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'CHANGES', subjects: ['dip.changes'] });
    const count = async () => (await jsm.streams.info('CHANGES')).state.messages;

    p = await TestProject.create({ people: { path: 'data/*.ndjson' } });
    await p.write('data/a.ndjson', '{"id":1,"name":"a"}\n{"id":2,"name":"b"}\n{"id":3,"name":"c"}\n');
    await p.runOk();
    await p.write('data/b.ndjson', '{"id":4,"name":"d"}\n{"id":5,"name":"e"}\n');
    await p.runOk();
    const lake = await p.lake();
    const destination = { kind: 'jetstream' as const, url: nats.url, subject: 'dip.changes' };
    const first = await publishChanges(lake, { name: 'bus', table: 'people', destination });
    assert.equal(first.commits, 2);
    assert.equal(first.messages, 5);
    assert.equal(await count(), 5);
    const m = await jsm.streams.getMessage('CHANGES', { seq: 1 });
    const envelope = JSON.parse(new TextDecoder().decode(m?.data)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(envelope).sort(), ['after', 'before', 'op', 'source', 'ts_ms']);
    assert.equal(envelope['op'], 'c');
    assert.equal(envelope['before'], null);
    assert.deepEqual(envelope['after'], { id: 1, name: 'a' });

    const again = await publishChanges(lake, { name: 'bus', table: 'people', destination });
    assert.deepEqual(again, { commits: 0, messages: 0, lastCommit: first.lastCommit });
    assert.equal(await count(), 5);

    // Interrupted after the acknowledgement, before the record: the last commit goes out again.
    const firstCommit = (await lake.catalog.liveFiles('bronze.people'))
      .map((f) => f.addedCommit)
      .sort((a, b) => a - b)[0];
    await lake.catalog.commit({
      operation: 'state',
      tables: [],
      state: [{ pipeline: PUBLISH_PIPELINE, source: 'bus', stream: 'people', value: { commit: firstCommit } }],
    });
    const replay = await publishChanges(lake, { name: 'bus', table: 'people', destination });
    assert.equal(replay.messages, 2);
    assert.equal(await count(), 5, 'the stream dropped the repeats (Nats-Msg-Id)');
    await nc.close();
  });
});

const kafkaBrokers = process.env['DIP_KAFKA_BROKERS']?.split(',').filter(Boolean);

describe(
  'kafka destination: change envelopes, each commit published once',
  kafkaBrokers ? {} : requireOrSkip(kafkaMockProbe()),
  () => {
    let p: TestProject | undefined;
    let mock: KafkaMock | undefined;
    after(async () => {
      await p?.dispose();
      await mock?.stop();
    });

    it('publishes 3 rows with their ids in dip-event-id; a re-run publishes nothing', async () => {
      let brokers = kafkaBrokers;
      if (!brokers) {
        mock = await startKafkaMock(3);
        brokers = mock.brokers;
      }
      const { Kafka, logLevel } = await import('kafkajs');
      const kafka = new Kafka({ clientId: 'test', brokers, logLevel: logLevel.NOTHING });
      const topic = `changes_${Date.now()}`;
      const admin = kafka.admin();
      await admin.connect();
      // The mock's controller id names no broker, so CreateTopics fails there: it auto-creates
      // the topic (4 partitions) on the first metadata request instead.
      if (kafkaBrokers)
        await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
      else await admin.fetchTopicMetadata({ topics: [topic] });
      p = await TestProject.create({ people: { path: 'data/*.ndjson' } });
      await p.write('data/a.ndjson', '{"id":1}\n{"id":2}\n{"id":3}\n');
      await p.runOk();
      const lake = await p.lake();
      const destination = { kind: 'kafka' as const, brokers, topic };
      const first = await publishChanges(lake, { name: 'k', table: 'people', destination });
      assert.equal(first.messages, 3);
      const again = await publishChanges(lake, { name: 'k', table: 'people', destination });
      assert.equal(again.messages, 0);
      const high = await admin.fetchTopicOffsets(topic);
      assert.equal(
        high.reduce((n, o) => n + Number(o.high), 0),
        3,
      );
      // Read them back: each carries its row's id in the dip-event-id header.
      const consumer = kafka.consumer({ groupId: `check_${Date.now()}` });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const got: { id: number; eventId: string }[] = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`read ${got.length} of 3 messages in 30 s`)), 30_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            const after = (JSON.parse(String(message.value)) as { after: { id: number } }).after;
            got.push({ id: after.id, eventId: String(message.headers?.['dip-event-id'] ?? '') });
            if (got.length === 3) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
      await consumer.disconnect();
      await admin.disconnect();
      assert.deepEqual(got.map((g) => g.id).sort(), [1, 2, 3]);
      assert.equal(new Set(got.map((g) => g.eventId)).size, 3);
      for (const g of got) assert.ok(g.eventId.length > 0);
    });
  },
);
