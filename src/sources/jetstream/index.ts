/**
 * The JetStream connector: each DIP stream reads its filter subjects of one JetStream stream,
 * one ordered consumer per subject, in parallel, into a shared queue the runner drains in
 * micro-batches (../broker/batch.ts). Positions (per subject, the next stream sequence) live in
 * the catalog and are committed with the data; no server-side consumer state is needed, so a
 * killed run resumes exactly after its last commit. `dip run` lands what the subjects held when
 * it started; `dip run --follow` keeps landing until interrupted.
 */
import { resolveSecrets } from '../../config/secrets.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { parseDuration } from '../../core/time.js';
import {
  type BrokerMessage,
  compilePayloadSchema,
  drainBatches,
  MessageQueue,
  type Positions,
  savedPositions,
} from '../broker/batch.js';
import { type BrokerStats, brokerMetrics, brokerStreams } from '../broker/batch.js';
import { defineConnector } from '../types.js';
import { jetstreamSpec } from './spec.js';

export default defineConnector({
  spec: jetstreamSpec,
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
        const subjects = typeof decl.subjects === 'string' ? [decl.subjects] : decl.subjects;
        const [{ connect }, js] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
        const url = resolveSecrets(config.url, { baseDir: context.baseDir });
        const nc = await connect({ servers: url, name: `dip-${ctx.pipeline}-${ctx.source}` }).catch((e: unknown) => {
          throw new DipError('transient', `${where}: cannot connect to NATS at ${config.url}: ${errorMessage(e)}`);
        });
        closers.push(() => nc.close());
        const client = js.jetstream(nc);
        const saved = savedPositions(ctx.state);
        const queue = new MessageQueue(Math.max(1000, config.batch.max_events * 2));
        const s: BrokerStats = { messages: 0, batches: 0, lag: 0 };
        stats.set(stream.name, s);
        const remaining = new Map<string, number>();
        const iterators: { stop(): void }[] = [];
        closers.push(async () => {
          for (const it of iterators) it.stop();
        });
        for (const subject of subjects) {
          const from = saved[subject];
          const opts =
            from !== undefined
              ? { deliver_policy: js.DeliverPolicy.StartSequence, opt_start_seq: from }
              : config.start === 'earliest'
                ? { deliver_policy: js.DeliverPolicy.All }
                : config.start === 'latest'
                  ? { deliver_policy: js.DeliverPolicy.New }
                  : { deliver_policy: js.DeliverPolicy.StartTime, opt_start_time: config.start.timestamp };
          const consumer = await client.consumers
            .get(config.stream, { filter_subjects: subject, ...opts })
            .catch((e: unknown) => {
              throw new DipError(
                'transient',
                `${where}: cannot read JetStream stream ${config.stream}: ${errorMessage(e)}`,
              );
            });
          const info = await consumer.info(true);
          remaining.set(subject, info.num_pending);
          const messages = await consumer.consume({ max_messages: Math.min(10_000, config.batch.max_events * 2) });
          iterators.push(messages);
          void (async () => {
            try {
              for await (const m of messages) {
                const left = (remaining.get(subject) ?? 0) - 1;
                remaining.set(subject, left);
                s.lag = m.info.pending;
                const msg: BrokerMessage = {
                  partition: subject,
                  position: m.seq,
                  value: m.data,
                  meta: {
                    subject: m.subject,
                    seq: m.seq,
                    timestamp: Math.floor(m.info.timestampNanos / 1e6),
                    msg_id: m.headers?.get('Nats-Msg-Id') || null,
                  },
                };
                await queue.push(msg);
              }
            } catch (e) {
              queue.fail(new DipError('transient', `${where}: reading ${subject}: ${errorMessage(e)}`));
            }
          })();
        }
        const caughtUp = (_positions: Positions) => [...remaining.values()].every((n) => n <= 0);
        return {
          units: drainBatches({
            queue,
            stream,
            dir: ctx.stagingDir,
            saved,
            validate,
            maxEvents: config.batch.max_events,
            maxAgeMs: parseDuration(config.batch.max_age) ?? 1000,
            follow: ctx.follow,
            signal: ctx.signal,
            caughtUp,
            committed: (_p, batch) => {
              s.messages += batch.length;
              s.batches += 1;
            },
          }),
          skipped: 0,
        };
      },
      async close() {
        for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
      },
    };
  },
});
