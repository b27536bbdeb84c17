/**
 * The Kafka connector (KafkaJS, pure JavaScript; the only module of the source that names the
 * client). Each DIP stream reads one topic: the consumer joins the group and fetches every
 * assigned partition in parallel, seeked to the offsets the catalog holds (the catalog is the
 * truth, not the group), into a queue the runner drains in micro-batches (../broker/batch.ts). A partition with
 * no saved offset starts at `start` (earliest, latest, or the first offset at a timestamp).
 * Once a batch is committed in the catalog, its offsets are also committed to the group, so the
 * usual lag tools see DIP; a crash between the two only makes the group lag, never DIP repeat.
 */
import { DipError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/time.js';
import { compilePayloadSchema, drainBatches, MessageQueue, type Positions, savedPositions } from '../broker/batch.js';
import { type BrokerStats, brokerMetrics, brokerStreams } from '../broker/batch.js';
import { defineConnector } from '../types.js';
import { kafkaSpec } from './spec.js';

export default defineConnector({
  spec: kafkaSpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['ndjson'] },
  create(config, context) {
    const streams = brokerStreams(config.streams);
    const closers: (() => Promise<void>)[] = [];
    const stats = new Map<string, BrokerStats>();
    return {
      streams: () => streams,
      streamConcurrency: Math.max(1, streams.length),
      metrics: (stream) => brokerMetrics(stats, stream),
      async plan(stream, ctx) {
        const where = `sources.${context.sourceName}.streams.${stream.name}`;
        const decl = config.streams[stream.name];
        if (!decl) throw new DipError('config', `${where}: no such stream`);
        const validate = compilePayloadSchema(decl.schema, context.baseDir, where);
        const topic = decl.topic;
        const { Kafka, logLevel } = await import('kafkajs');
        const kafka = new Kafka({
          clientId: config.client_id,
          brokers: config.brokers,
          logLevel: logLevel.NOTHING,
          retry: { retries: 3 },
        });
        const fail = (e: unknown): never => {
          throw new DipError(
            'transient',
            `${where}: Kafka at ${config.brokers.join(',')}, topic ${topic}: ${errorMessage(e)}`,
          );
        };
        const admin = kafka.admin();
        closers.push(async () => {
          await admin.disconnect();
        });
        await admin.connect().catch(fail);
        const ends = await admin.fetchTopicOffsets(topic).catch(fail);
        if (!ends.length) throw new DipError('config', `${where}: topic ${topic} has no partitions (does it exist?)`);
        const byPartition = [...ends].sort((a, b) => a.partition - b.partition);
        const high = byPartition.map((o) => Number(o.high));
        const saved = savedPositions(ctx.state);
        let startAt: number[];
        if (config.start === 'earliest') startAt = byPartition.map((o) => Number(o.low));
        else if (config.start === 'latest') startAt = high;
        else {
          const at = await admin.fetchTopicOffsetsByTimestamp(topic, Date.parse(config.start.timestamp)).catch(fail);
          // A timestamp after the last message gives -1: start at the end.
          startAt = byPartition.map((o) => {
            const n = Number(at.find((x) => x.partition === o.partition)?.offset ?? -1);
            return n < 0 ? Number(o.high) : n;
          });
        }
        const offsets = byPartition.map((o, i) => ({
          topic,
          partition: o.partition,
          offset: saved[String(o.partition)] ?? startAt[i] ?? 0,
        }));
        // Messages retention deleted before DIP read them: the run would miss data, so it fails.
        const gaps = byPartition.flatMap((o) => {
          const from = saved[String(o.partition)];
          return from !== undefined && from < Number(o.low)
            ? [`partition ${o.partition}: ${Number(o.low) - from} (offsets ${from}–${Number(o.low) - 1})`]
            : [];
        });
        if (gaps.length)
          throw new DipError(
            'input',
            `${where}: topic ${topic} no longer holds messages DIP has not landed (deleted by retention): ${gaps.join('; ')}. They cannot be read; to go on from the oldest retained message, reset the stream's state (dip state --reset) with start: earliest`,
          );
        const queue = new MessageQueue(Math.max(1000, config.batch.max_events * 2));
        const s: BrokerStats = { messages: 0, batches: 0, lag: 0 };
        stats.set(stream.name, s);
        const end = [...high];
        // The next offset each partition hands to the queue: anything before it (a refetch after a
        // rebalance, which resumes from the group's offsets that trail the catalog) is dropped.
        const next = new Map(offsets.map((o) => [o.partition, o.offset]));
        const consumer = kafka.consumer({
          groupId: config.group ?? `dip-${ctx.pipeline}-${ctx.source}`,
          // A killed run leaves a member behind; a short session lets the next run's join finish soon.
          sessionTimeout: 10_000,
          rebalanceTimeout: 10_000,
          heartbeatInterval: 1_000,
          retry: { retries: 3 },
        });
        closers.unshift(async () => {
          await consumer.disconnect();
        });
        consumer.on(consumer.events.CRASH, (e) => {
          queue.fail(new DipError('transient', `${where}: reading topic ${topic}: ${errorMessage(e.payload.error)}`));
        });
        await consumer.connect().catch(fail);
        await consumer.subscribe({ topics: [topic], fromBeginning: true }).catch(fail);
        await consumer
          .run({
            autoCommit: false,
            partitionsConsumedConcurrently: Math.max(1, offsets.length),
            eachMessage: async ({ partition, message: m }) => {
              const position = Number(m.offset);
              if (position < (next.get(partition) ?? 0)) return;
              next.set(partition, position + 1);
              const hw = end[partition];
              if (hw !== undefined && position >= hw) end[partition] = position + 1;
              await queue.push({
                partition: String(partition),
                position,
                value: m.value ?? new Uint8Array(),
                meta: {
                  topic,
                  partition,
                  offset: position,
                  timestamp: Number(m.timestamp),
                  key: m.key?.length ? m.key.toString('utf8') : null,
                },
              });
            },
          })
          .catch(fail);
        // The catalog is the truth: every partition starts at its saved (or `start`) offset.
        for (const o of offsets) consumer.seek({ topic, partition: o.partition, offset: String(o.offset) });
        // Without --follow: stop at the end each partition had when the run started.
        const caughtUp = (p: Positions) =>
          offsets.every((o, i) => (p[String(o.partition)] ?? o.offset) >= (high[i] ?? 0));
        return {
          units: drainBatches({
            queue,
            stream,
            dir: ctx.stagingDir,
            saved: Object.fromEntries(offsets.map((o) => [String(o.partition), o.offset])),
            validate,
            maxEvents: config.batch.max_events,
            maxAgeMs: parseDuration(config.batch.max_age) ?? 1000,
            follow: ctx.follow,
            signal: ctx.signal,
            caughtUp,
            committed: async (positions, batch) => {
              s.messages += batch.length;
              s.batches += 1;
              s.lag = end.reduce((n, e, i) => n + Math.max(0, e - (positions[String(i)] ?? 0)), 0);
              // The group follows the catalog (best effort: the catalog is the truth).
              await consumer
                .commitOffsets(
                  Object.entries(positions).map(([p, o]) => ({ topic, partition: Number(p), offset: String(o) })),
                )
                .catch(() => undefined);
            },
          }),
          skipped: 0,
        };
      },
      async close() {
        for (const c of closers.splice(0)) await c().catch(() => undefined);
      },
    };
  },
});
