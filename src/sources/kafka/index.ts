/**
 * The Kafka connector (@platformatic/kafka, pure JavaScript; Kafka 3.5 or later). Each DIP
 * stream reads one topic: the consumer joins the group and fetches every assigned partition in
 * parallel, from the offsets the catalog holds (MANUAL mode: the catalog is the truth, not the
 * group), into a queue the runner drains in micro-batches (../broker/batch.ts). A partition with
 * no saved offset starts at `start` (earliest, latest, or the first offset at a timestamp).
 * Once a batch is committed in the catalog, its offsets are also committed to the group, so the
 * usual lag tools see DIP; a crash between the two only makes the group lag, never DIP repeat.
 */
import { DipError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/time.js';
import { compilePayloadSchema, drainBatches, MessageQueue, type Positions, savedPositions } from '../broker/batch.js';
import { defineConnector, type StreamSpec } from '../types.js';
import { kafkaSpec } from './spec.js';

interface Stats {
  messages: number;
  batches: number;
  lag: number;
}

export default defineConnector({
  spec: kafkaSpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['ndjson'] },
  create(config, context) {
    const streams: StreamSpec[] = Object.entries(config.streams).map(([name, s]) => ({
      name,
      table: s.table ?? name,
      writeDisposition: 'append',
      primaryKey: [],
      schemaContract: 'evolve',
    }));
    const closers: (() => Promise<void>)[] = [];
    const stats = new Map<string, Stats>();
    return {
      streams: () => streams,
      streamConcurrency: Math.max(1, streams.length),
      metrics: (stream): Record<string, number> => {
        const s = stats.get(stream.name);
        return s ? { messages: s.messages, batches: s.batches, lag: s.lag } : {};
      },
      async plan(stream, ctx) {
        const where = `sources.${context.sourceName}.streams.${stream.name}`;
        const decl = config.streams[stream.name];
        if (!decl) throw new DipError('config', `${where}: no such stream`);
        const validate = compilePayloadSchema(decl.schema, context.baseDir, where);
        const topic = decl.topic;
        const kafka = await import('@platformatic/kafka');
        const consumer = new kafka.Consumer({
          clientId: config.client_id,
          groupId: config.group ?? `dip-${ctx.pipeline}-${ctx.source}`,
          bootstrapBrokers: config.brokers,
          retries: 3,
        });
        closers.push(async () => {
          await consumer.close(true);
        });
        const fail = (e: unknown): never => {
          throw new DipError(
            'transient',
            `${where}: Kafka at ${config.brokers.join(',')}, topic ${topic}: ${errorMessage(e)}`,
          );
        };
        const ends = await consumer.listOffsets({ topics: [topic] }).catch(fail);
        const high = ends.get(topic) ?? [];
        if (!high.length) throw new DipError('config', `${where}: topic ${topic} has no partitions (does it exist?)`);
        const saved = savedPositions(ctx.state);
        let startAt: bigint[] | undefined;
        if (config.start === 'earliest')
          startAt = (await consumer.listOffsets({ topics: [topic], timestamp: -2n }).catch(fail)).get(topic);
        else if (config.start === 'latest') startAt = high;
        else
          startAt = (
            await consumer
              .listOffsets({ topics: [topic], timestamp: BigInt(Date.parse(config.start.timestamp)) })
              .catch(fail)
          ).get(topic);
        const offsets = high.map((_, partition) => ({
          topic,
          partition,
          // A timestamp after the last message gives -1: start at the end.
          offset:
            BigInt(saved[String(partition)] ?? Number(startAt?.[partition] ?? 0n)) < 0n
              ? (high[partition] as bigint)
              : BigInt(saved[String(partition)] ?? Number(startAt?.[partition] ?? 0n)),
        }));
        const queue = new MessageQueue(Math.max(1000, config.batch.max_events * 2));
        const s: Stats = { messages: 0, batches: 0, lag: 0 };
        stats.set(stream.name, s);
        const end = high.map(Number);
        const messages = await consumer
          .consume({ topics: [topic], mode: kafka.MessagesStreamModes.MANUAL, offsets, autocommit: false })
          .catch(fail);
        closers.unshift(async () => {
          await messages.close();
        });
        void (async () => {
          try {
            for await (const m of messages) {
              const position = Number(m.offset);
              const partition = String(m.partition);
              const hw = end[m.partition];
              if (hw !== undefined && position >= hw) end[m.partition] = position + 1;
              await queue.push({
                partition,
                position,
                value: m.value as Uint8Array,
                meta: {
                  topic: m.topic,
                  partition: m.partition,
                  offset: position,
                  timestamp: Number(m.timestamp),
                  key: m.key && (m.key as Uint8Array).length ? Buffer.from(m.key as Uint8Array).toString('utf8') : null,
                },
              });
            }
          } catch (e) {
            queue.fail(new DipError('transient', `${where}: reading topic ${topic}: ${errorMessage(e)}`));
          }
        })();
        // Without --follow: stop at the end each partition had when the run started.
        const stopAt = high.map(Number);
        const caughtUp = (p: Positions) => stopAt.every((e, i) => (p[String(i)] ?? offsets[i]?.offset ?? 0) >= e);
        return {
          units: drainBatches({
            queue,
            stream,
            dir: ctx.stagingDir,
            saved: Object.fromEntries(offsets.map((o) => [String(o.partition), Number(o.offset)])),
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
                .commit({
                  offsets: Object.entries(positions).map(([p, o]) => ({
                    topic,
                    partition: Number(p),
                    offset: BigInt(o),
                    leaderEpoch: -1,
                  })),
                })
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
