/**
 * What the Kafka and JetStream connectors share: the config pieces (start position, batching,
 * payload schema), turning broker messages into a read unit (one NDJSON file of the JSON
 * payloads with the message's coordinates as `_broker_*` columns; messages that are not a JSON
 * object or fail the stream's JSON Schema go to quarantine with the reason), and a queue that
 * hands the runner micro-batches by size and age.
 *
 * Exactly once: a unit's state is every partition's next position (offset / stream sequence)
 * after the unit, merged into the stream's saved state, and the runner commits it in the same
 * catalog transaction as the unit's rows. A run starts from the saved positions, so a killed
 * consumer resumes where its last commit ended: nothing lost, nothing twice.
 */
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { DipError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { ReadUnit, StreamSpec } from '../../lake/units.js';

export type StartConfig = 'earliest' | 'latest' | { timestamp: string };

/** One message as a connector received it. */
export interface BrokerMessage {
  /** The partition (Kafka partition number, JetStream filter subject) as a state key. */
  partition: string;
  /** Its position in the partition (Kafka offset, JetStream stream sequence). */
  position: number;
  value: Uint8Array;
  /** Extra `_broker_*` columns (topic, key, subject, time…). */
  meta: Record<string, string | number | null>;
}

/** Per partition: the next position to read. */
export type Positions = Record<string, number>;

/** Compiles a stream's payload schema (file relative to the project, or inline), or undefined. */
export function compilePayloadSchema(
  schema: string | Record<string, unknown> | undefined,
  baseDir: string,
  where: string,
): ValidateFunction | undefined {
  if (schema === undefined) return undefined;
  let doc: unknown = schema;
  if (typeof schema === 'string') {
    const path = isAbsolute(schema) ? schema : resolve(baseDir, schema);
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new DipError('config', `${where}.schema: cannot read the JSON Schema ${schema}: ${(e as Error).message}`);
    }
  }
  try {
    return new Ajv({ allErrors: false, strict: false }).compile(doc as object);
  } catch (e) {
    throw new DipError('config', `${where}.schema: not a valid JSON Schema: ${(e as Error).message}`);
  }
}

/**
 * The read unit of a batch: the payloads (JSON objects) with their coordinates, the refused
 * messages with their reason, and the state (all partitions' next positions after the batch).
 */
export async function brokerUnit(
  messages: readonly BrokerMessage[],
  stream: StreamSpec,
  dir: string,
  before: Positions,
  validate: ValidateFunction | undefined,
): Promise<ReadUnit> {
  const lines: string[] = [];
  const rejected: { reason: string; errorType: string; raw: string }[] = [];
  const next: Positions = { ...before };
  const ranges: Record<string, [number, number]> = {};
  // Every field the file holds: the reader then samples types instead of scanning the file twice.
  const fields = new Set<string>();
  for (const m of messages) {
    next[m.partition] = m.position + 1;
    const r = ranges[m.partition];
    if (r) r[1] = m.position;
    else ranges[m.partition] = [m.position, m.position];
    const text = Buffer.from(m.value).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      rejected.push({
        reason: `partition ${m.partition} position ${m.position}: not JSON`,
        errorType: 'parse',
        raw: text,
      });
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      rejected.push({
        reason: `partition ${m.partition} position ${m.position}: not a JSON object`,
        errorType: 'parse',
        raw: text,
      });
      continue;
    }
    if (validate && !validate(value)) {
      const err = validate.errors?.[0];
      const reason = `partition ${m.partition} position ${m.position}: ${err ? `${err.instancePath || '/'} ${err.message ?? 'invalid'}` : 'invalid'}`;
      rejected.push({ reason, errorType: 'schema', raw: text });
      continue;
    }
    const row: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const [k, v] of Object.entries(m.meta)) row[`_broker_${k}`] = v;
    for (const k in row) fields.add(k);
    lines.push(JSON.stringify(row));
  }
  const label = `${stream.name} ${Object.entries(ranges)
    .map(([p, [a, b]]) => `${p}@${a}..${b}`)
    .join(' ')} (${messages.length} messages)`;
  const position = { partitions: ranges };
  const state = { positions: next };
  const refused = rejected.length ? rejected : undefined;
  if (!lines.length) return { label, bytes: 0, position, state, rejected: refused };
  const path = join(dir, `${newId('bk')}.ndjson`);
  const text = `${lines.join('\n')}\n`;
  await writeFile(path, text);
  return {
    label,
    input: { path, format: 'ndjson', fields: [...fields] },
    bytes: Buffer.byteLength(text),
    position,
    state,
    rejected: refused,
    dispose: () => rm(path, { force: true }),
  };
}

/** The saved positions of a stream (its catalog state), or none. */
export function savedPositions(state: unknown): Positions {
  const p = (state as { positions?: Positions } | undefined)?.positions;
  return p && typeof p === 'object' ? { ...p } : {};
}

/**
 * Messages pushed by the connector's readers (one per partition, in parallel), taken by the
 * runner in batches: up to `maxEvents`, waiting up to `maxAgeMs` after a batch's first message
 * for more. Readers pause when `limit` messages wait (backpressure).
 */
export class MessageQueue {
  private items: BrokerMessage[] = [];
  private wake: (() => void) | undefined;
  private space: (() => void)[] = [];
  failure: Error | undefined;

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.items.length;
  }

  async push(m: BrokerMessage): Promise<void> {
    this.items.push(m);
    this.notify();
    if (this.items.length >= this.limit) await new Promise<void>((r) => this.space.push(r));
  }

  fail(e: Error): void {
    this.failure ??= e;
    this.notify();
  }

  notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits until something is queued, `ms` passed, or the signal aborts. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.items.length || this.failure || signal.aborted) return Promise.resolve();
    return new Promise<void>((r) => {
      const t = setTimeout(done, ms);
      const onAbort = () => done();
      signal.addEventListener('abort', onAbort, { once: true });
      function done() {
        clearTimeout(t);
        signal.removeEventListener('abort', onAbort);
        r();
      }
      this.wake = done;
    });
  }

  take(max: number): BrokerMessage[] {
    const out = this.items.splice(0, max);
    if (this.items.length < this.limit) for (const r of this.space.splice(0)) r();
    return out;
  }
}

/**
 * The micro-batches of a stream: waits for messages, lets a batch fill up to `maxEvents` for
 * `maxAgeMs` (following) and yields its unit; the runner asks for the next once it committed
 * this one. Without follow it stops once `caughtUp()` says every partition reached the end the
 * run saw when it started.
 */
export async function* drainBatches(opts: {
  queue: MessageQueue;
  stream: StreamSpec;
  dir: string;
  saved: Positions;
  validate: ValidateFunction | undefined;
  maxEvents: number;
  maxAgeMs: number;
  follow: boolean;
  signal: AbortSignal;
  caughtUp: (positions: Positions) => boolean;
  committed?: (positions: Positions, messages: readonly BrokerMessage[]) => Promise<void> | void;
}): AsyncGenerator<ReadUnit> {
  const { queue, signal } = opts;
  let positions = opts.saved;
  while (!signal.aborted) {
    if (queue.failure) throw queue.failure;
    if (!opts.follow && !queue.size && opts.caughtUp(positions)) return;
    await queue.wait(1000, signal);
    if (!queue.size) continue;
    if (queue.size < opts.maxEvents && !(!opts.follow && opts.caughtUp(positions))) {
      const until = Date.now() + (opts.follow ? opts.maxAgeMs : Math.min(opts.maxAgeMs, 200));
      while (queue.size < opts.maxEvents && Date.now() < until && !signal.aborted && !queue.failure) {
        await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, until - Date.now()))));
      }
    }
    if (queue.failure) throw queue.failure;
    const batch = queue.take(opts.maxEvents);
    const unit = await brokerUnit(batch, opts.stream, opts.dir, positions, opts.validate);
    yield unit;
    positions = (unit.state as { positions: Positions }).positions;
    await opts.committed?.(positions, batch);
  }
}

/** What a broker stream reports in a run's stats. */
export interface BrokerStats {
  messages: number;
  batches: number;
  lag: number;
}

/** The DIP streams of a broker source: one append-only table each, the schema evolving. */
export function brokerStreams(declared: Record<string, { table?: string | undefined }>): StreamSpec[] {
  return Object.entries(declared).map(([name, s]) => ({
    name,
    table: s.table ?? name,
    writeDisposition: 'append',
    primaryKey: [],
    schemaContract: 'evolve',
  }));
}

/** A stream's metrics from the stats its plan keeps (empty before it planned). */
export function brokerMetrics(stats: ReadonlyMap<string, BrokerStats>, stream: StreamSpec): Record<string, number> {
  const s = stats.get(stream.name);
  return s ? { messages: s.messages, batches: s.batches, lag: s.lag } : {};
}
