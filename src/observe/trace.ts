/**
 * Traces: spans for runs, tasks, streams, units, source HTTP requests, database extracts and
 * commits, exported over OTLP/HTTP (JSON encoding, `POST <endpoint>/v1/traces`) when dip.yaml
 * sets `tracing.endpoint`; off by default, and then `withSpan` only runs its function. The
 * current span follows async calls (AsyncLocalStorage), so a span started anywhere below a run
 * is its descendant, and `traceFields()` gives the ids log lines carry.
 *
 * Why not the OpenTelemetry SDK: its trace packages (2.x) require @opentelemetry/api < 1.10,
 * older than the one already installed (prom-client's); OTLP/JSON is a stable wire format
 * and this is all DIP needs of it (no sampling: every span of a configured process is sent).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { secretRegistry } from '../config/secrets.js';

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface Span {
  readonly traceId: string;
  readonly spanId: string;
  setAttribute(key: string, value: string | number | boolean | undefined): void;
  /** Marks the span failed with the error's (redacted) message. */
  fail(err: unknown): void;
}

export interface TracingOptions {
  /** OTLP/HTTP base URL, e.g. http://127.0.0.1:4318 (spans go to `<endpoint>/v1/traces`). */
  endpoint: string;
  serviceName: string;
  headers?: Record<string, string> | undefined;
}

interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  startNs: bigint;
  endNs: bigint;
  attributes: SpanAttributes;
  error: string | undefined;
}

const current = new AsyncLocalStorage<SpanImpl>();
const BATCH = 256;
const FLUSH_MS = 1000;

class SpanImpl implements Span {
  readonly spanId = randomBytes(8).toString('hex');
  readonly startNs = nowNs();
  readonly attributes: SpanAttributes;
  error: string | undefined;

  constructor(
    readonly name: string,
    readonly traceId: string,
    readonly parentSpanId: string | undefined,
    attributes: SpanAttributes,
  ) {
    this.attributes = { ...attributes };
  }

  setAttribute(key: string, value: string | number | boolean | undefined): void {
    this.attributes[key] = value;
  }

  fail(err: unknown): void {
    this.error = secretRegistry.redact(err instanceof Error ? err.message : String(err));
  }
}

class Exporter {
  private queue: SpanRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = new Set<Promise<void>>();

  constructor(readonly options: TracingOptions) {}

  add(span: SpanRecord): void {
    this.queue.push(span);
    if (this.queue.length >= BATCH) this.send();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.send(), FLUSH_MS);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    this.send();
    await Promise.all([...this.inFlight]);
  }

  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const spans = this.queue;
    this.queue = [];
    const body = JSON.stringify(otlpJson(this.options.serviceName, spans));
    const url = `${this.options.endpoint.replace(/\/+$/, '')}/v1/traces`;
    // Export failures never fail the work being traced; the spans are dropped.
    const p = fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.options.headers },
      body,
      signal: AbortSignal.timeout(10_000),
    })
      .then((r) => r.arrayBuffer())
      .then(
        () => undefined,
        () => undefined,
      );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}

let exporter: Exporter | undefined;

/** Starts exporting spans of this process (the first configuration wins; later calls with the same endpoint are no-ops). */
export function configureTracing(options: TracingOptions): void {
  exporter ??= new Exporter(options);
}

export function tracingEnabled(): boolean {
  return exporter !== undefined;
}

/** Sends the spans not yet sent (call before the process exits). */
export async function flushTraces(): Promise<void> {
  await exporter?.flush();
}

/** The current span, if tracing is on and one is open. */
export function activeSpan(): Span | undefined {
  return current.getStore();
}

/** Fields a log line carries: the current trace and span ids (none when tracing is off). */
export function traceFields(): { trace_id: string; span_id: string } | Record<string, never> {
  const span = current.getStore();
  return span ? { trace_id: span.traceId, span_id: span.spanId } : {};
}

/**
 * Runs `fn` inside a new span, a child of the current one (or of `TRACEPARENT` from the
 * environment, or a new trace); the span ends when `fn` settles, failed if it threw.
 */
export async function withSpan<T>(
  name: string,
  attributes: SpanAttributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const out = exporter;
  if (!out) return fn(NOOP);
  const parent = current.getStore();
  const inherited = parent ? undefined : parseTraceparent(process.env['TRACEPARENT']);
  const span = new SpanImpl(
    name,
    parent?.traceId ?? inherited?.traceId ?? randomBytes(16).toString('hex'),
    parent?.spanId ?? inherited?.spanId,
    attributes,
  );
  try {
    return await current.run(span, () => fn(span));
  } catch (err) {
    span.fail(err);
    throw err;
  } finally {
    out.add({
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name,
      startNs: span.startNs,
      endNs: nowNs(),
      attributes: span.attributes,
      error: span.error,
    });
  }
}

/** W3C `traceparent` of the current span, for a child process (its `TRACEPARENT`). */
export function traceparent(): string | undefined {
  const span = current.getStore();
  return span ? `00-${span.traceId}-${span.spanId}-01` : undefined;
}

function parseTraceparent(value: string | undefined): { traceId: string; spanId: string } | undefined {
  const m = value ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(value.trim()) : null;
  return m ? { traceId: m[1] as string, spanId: m[2] as string } : undefined;
}

const NOOP: Span = { traceId: '', spanId: '', setAttribute: () => undefined, fail: () => undefined };

const origin = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
function nowNs(): bigint {
  return origin + process.hrtime.bigint();
}

function attr(key: string, value: string | number | boolean): Record<string, unknown> {
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  if (typeof value === 'number')
    return Number.isInteger(value)
      ? { key, value: { intValue: String(value) } }
      : { key, value: { doubleValue: value } };
  return { key, value: { stringValue: secretRegistry.redact(value) } };
}

function attrs(a: SpanAttributes): Record<string, unknown>[] {
  return Object.entries(a).flatMap(([k, v]) => (v === undefined ? [] : [attr(k, v)]));
}

/** The OTLP/JSON `ExportTraceServiceRequest` for spans of one service. */
function otlpJson(serviceName: string, spans: SpanRecord[]): unknown {
  return {
    resourceSpans: [
      {
        resource: {
          attributes: attrs({ 'service.name': serviceName, 'host.name': hostname(), 'process.pid': process.pid }),
        },
        scopeSpans: [
          {
            scope: { name: 'dip' },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: 1,
              startTimeUnixNano: String(s.startNs),
              endTimeUnixNano: String(s.endNs),
              attributes: attrs(s.attributes),
              status: s.error === undefined ? { code: 1 } : { code: 2, message: s.error },
            })),
          },
        ],
      },
    ],
  };
}
