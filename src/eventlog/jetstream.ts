/**
 * The event log contract (types.ts) on NATS JetStream, for gateways scaled out over several
 * hosts: one stream per endpoint log (file storage), so stream sequences are the log's offsets,
 * one apart. An append publishes each event with its id as `Nats-Msg-Id` and resolves when the
 * server acknowledged the store (a duplicate id within the stream's duplicate window is answered
 * with the first one's sequence). Reads go through an ordered consumer from the asked offset;
 * consumer positions (`ack`) are kept as the last message per subject of a small side stream
 * (`<stream>_ACKS`, one subject per consumer). Retention is the stream's own (max age / bytes).
 */
import { DipError } from '../core/errors.js';
import type { AppendEvent, AppendResult, EventLog, LogBounds, LogEvent, ReadLimits } from './types.js';

export interface JetStreamLogOptions {
  url: string;
  /** The stream of this endpoint log. */
  stream: string;
  subject: string;
  duplicateWindowMs: number;
}

type Nats = typeof import('@nats-io/transport-node');
type Js = typeof import('@nats-io/jetstream');
type Conn = Awaited<ReturnType<Nats['connect']>>;
type Manager = Awaited<ReturnType<Js['jetstreamManager']>>;
type Client = ReturnType<Js['jetstream']>;

const CONSUMER = /^[A-Za-z0-9_-]{1,100}$/;

export class JetStreamEventLog implements EventLog {
  private acksCache: { at: number; min: number | undefined } | undefined;

  private constructor(
    private readonly o: JetStreamLogOptions,
    private readonly nc: Conn,
    private readonly jsm: Manager,
    private readonly js: Client,
    private readonly mod: { js: Js; nats: Nats },
  ) {}

  static async open(o: JetStreamLogOptions): Promise<JetStreamEventLog> {
    const [nats, js] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
    let nc: Conn;
    try {
      nc = await nats.connect({ servers: o.url, name: 'dip', maxReconnectAttempts: -1 });
    } catch (err) {
      throw new DipError('transient', `cannot reach NATS at ${withoutCredentials(o.url)}: ${(err as Error).message}`);
    }
    try {
      const jsm = await js.jetstreamManager(nc);
      const nanos = (ms: number) => ms * 1_000_000;
      await ensureStream(jsm, {
        name: o.stream,
        subjects: [o.subject],
        storage: js.StorageType.File,
        duplicate_window: nanos(o.duplicateWindowMs),
      });
      await ensureStream(jsm, {
        name: `${o.stream}_ACKS`,
        subjects: [`${o.subject}._acks.>`],
        storage: js.StorageType.File,
        max_msgs_per_subject: 1,
      });
      return new JetStreamEventLog(o, nc, jsm, js.jetstream(nc), { js, nats });
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  async append(events: readonly AppendEvent[]): Promise<AppendResult[]> {
    const acks = await Promise.all(
      events.map((e) => {
        let headers: ReturnType<Nats['headers']> | undefined;
        if (e.headers && Object.keys(e.headers).length) {
          headers = this.mod.nats.headers();
          for (const [k, v] of Object.entries(e.headers)) headers.set(k, v);
        }
        return this.js.publish(this.o.subject, e.data, {
          ...(e.id ? { msgID: e.id } : {}),
          ...(headers ? { headers } : {}),
        });
      }),
    );
    return acks.map((a) => ({ offset: a.seq, duplicate: a.duplicate }));
  }

  async bounds(): Promise<LogBounds> {
    const info = await this.jsm.streams.info(this.o.stream);
    const end = info.state.last_seq + 1;
    return { start: info.state.messages === 0 ? end : info.state.first_seq, end };
  }

  async read(from: number, limits: ReadLimits = {}): Promise<LogEvent[]> {
    const maxEvents = limits.maxEvents ?? 1000;
    const maxBytes = limits.maxBytes ?? 8 * 1024 * 1024;
    const { start, end } = await this.bounds();
    if (from >= end) return [];
    if (from < start)
      throw new DipError(
        'input',
        `JetStream stream ${this.o.stream}: offset ${from} is no longer held (the stream starts at ${start}); events were deleted before they were read`,
      );
    const want = Math.min(maxEvents, end - from);
    const consumer = await this.js.consumers.get(this.o.stream, {
      deliver_policy: this.mod.js.DeliverPolicy.StartSequence,
      opt_start_seq: from,
    });
    const out: LogEvent[] = [];
    let bytes = 0;
    try {
      const messages = await consumer.fetch({ max_messages: want, expires: 5000 });
      for await (const m of messages) {
        let headers: Record<string, string> | undefined;
        if (m.headers) {
          for (const [k, v] of m.headers) {
            if (k === 'Nats-Msg-Id') continue;
            headers ??= {};
            headers[k] = v[0] ?? '';
          }
        }
        out.push({
          offset: m.seq,
          timestamp: m.time.getTime(),
          id: m.headers?.get('Nats-Msg-Id') || undefined,
          headers,
          data: m.data,
        });
        bytes += m.data.length;
        if (out.length >= want || bytes >= maxBytes) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    return out;
  }

  async waitFor(from: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!signal?.aborted && Date.now() < deadline) {
      if ((await this.bounds()).end > from) return;
      await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, deadline - Date.now()))));
    }
  }

  private ackSubject(consumer: string): string {
    if (!CONSUMER.test(consumer))
      throw new DipError('internal', `consumer name ${JSON.stringify(consumer)} is not a subject token`);
    return `${this.o.subject}._acks.${consumer}`;
  }

  async ack(consumer: string, next: number): Promise<void> {
    await this.js.publish(this.ackSubject(consumer), new TextEncoder().encode(String(next)));
    this.acksCache = undefined;
  }

  async acked(consumer: string): Promise<number | undefined> {
    const m = await this.jsm.streams
      .getMessage(`${this.o.stream}_ACKS`, { last_by_subj: this.ackSubject(consumer) })
      .catch(() => null);
    return m ? Number(new TextDecoder().decode(m.data)) : undefined;
  }

  async backlog(): Promise<number> {
    const now = Date.now();
    if (!this.acksCache || now - this.acksCache.at > 200) {
      const info = await this.jsm.streams.info(`${this.o.stream}_ACKS`, {
        subjects_filter: `${this.o.subject}._acks.>`,
      });
      const names = Object.keys(info.state.subjects ?? {}).map((s) => s.slice(`${this.o.subject}._acks.`.length));
      const acks = (await Promise.all(names.map((n) => this.acked(n)))).filter((a): a is number => a !== undefined);
      this.acksCache = { at: now, min: acks.length ? Math.min(...acks) : undefined };
    }
    const { start, end } = await this.bounds();
    return Math.max(0, end - Math.max(start, this.acksCache.min ?? start));
  }

  async enforceRetention(): Promise<void> {
    // The stream's own limits (max_age, max_bytes) apply on the server.
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => this.nc.close());
  }
}

async function ensureStream(jsm: Manager, config: Parameters<Manager['streams']['add']>[0]): Promise<void> {
  try {
    await jsm.streams.info(config.name as string);
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add(config);
  }
}

/** The server address without user and password, for messages. */
function withoutCredentials(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//');
}
