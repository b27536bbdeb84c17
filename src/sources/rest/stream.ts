/**
 * Over 400 lines: partition planning, paging, batching and the state a unit makes true share one pass state, kept together.
 * One resource's read as a stream of units: plans its partitions (whole resource, time
 * windows, parent records), pages through them concurrently, and batches pages into units
 * whose state is exactly what those pages made true.
 */
import { createHash } from 'node:crypto';
import type { RestSourceConfig } from '../../config/rest.js';
import { redactDeep } from '../../config/secrets.js';
import { AsyncQueue } from '../../core/async-queue.js';
import { Serial } from '../../core/serial.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { PlanContext, ReadUnit } from '../types.js';
import { UnitBatcher } from './batch.js';
import { HttpRequestError } from './http/client.js';
import { CursorTracker, laterMark, startValue } from './incremental.js';
import { readPartition, type PageReaderOptions, type PageSender } from './pages.js';
import { createPaginator } from './paginators.js';
import type { CursorMark, FailedRequest, Partition, PassState, RestStreamState } from './partition.js';
import { resolveUrl } from './request.js';
import type { ResolvedResource } from './resource.js';
import { fieldOf, recordSelector } from './select.js';

/** What a resource's read counted, reported in the run's stats. */
export interface RestCounters {
  requests: number;
  retries: number;
  pages: number;
  throttled_ms: number;
  skipped_records: number;
  failed_requests: number;
}

export const emptyCounters = (): RestCounters => ({
  requests: 0,
  retries: 0,
  pages: 0,
  throttled_ms: 0,
  skipped_records: 0,
  failed_requests: 0,
});

/** Records of a parent resource fetched in this run, reduced to the fields its children use. */
export interface ParentFeed {
  complete: boolean;
  rows: Record<string, unknown>[];
}

export interface StreamUnitsOptions {
  source: RestSourceConfig;
  sourceName: string;
  resource: ResolvedResource;
  resources: ResolvedResource[];
  client: PageSender;
  redact: (text: string) => string;
  feeds: Map<string, ParentFeed>;
  counters: RestCounters;
  ctx: PlanContext;
}

/**
 * Units fetched ahead of the one being staged. They are files on local disk, so fetching runs
 * on while the lake stages (a full queue would stall the requests).
 */
const UNITS_AHEAD = 4;
/**
 * With the default batch size, a unit also closes once it holds this share of a full batch
 * when the lake is waiting for one (not less: each unit costs a commit, file publishes and a
 * schema probe): staging starts with the first pages and keeps pace with
 * the fetch, and the unit still open when the last page arrives (staged after it, the run's
 * tail) holds only what came in while the one before was staged.
 */
const EARLY_CLOSE_SHARE = 1 / 4;
/**
 * A unit also closes after this long, so a slow API commits progress often and the unit
 * still open when the last page arrives (staged after it) stays small.
 */
const MAX_BATCH_AGE_MS = 2_000;
/** Each merge batch rewrites the table (copy-on-write): commit by age less often. */
const MAX_MERGE_BATCH_AGE_MS = 30_000;

export async function* streamUnits(o: StreamUnitsOptions): AsyncGenerator<ReadUnit> {
  const { resource, ctx } = o;
  const base = (ctx.state ?? {}) as RestStreamState;
  if (ctx.retryFailed && !base.pass && !base.failed?.length) return;
  const pass: PassState = base.pass ?? {
    started_at: new Date().toISOString(),
    retry_failed: ctx.retryFailed || undefined,
    done: [],
    resume: {},
    max: {},
    failed: [],
    window_to: resource.window ? windowEnd(resource.window.to) : undefined,
  };
  const partitions = await planPartitions(o, resource, base, pass);
  const done = new Set(pass.done);
  const pending = partitions
    .filter((p) => !done.has(p.key))
    .map((p) => ({ ...p, resume: pass.resume[p.key] ?? p.resume }));
  const batcher = new UnitBatcher(
    {
      dir: ctx.stagingDir,
      envelope: { pipeline: ctx.pipeline, source: ctx.source, stream: resource.name, run_id: ctx.runId },
      resource: resource.name,
      endpoint: `${resource.method} ${o.redact(resolveUrl(o.source.base_url, resource.path))}`,
      format: resource.format,
      maxRecords: resource.batchRecords,
      maxAgeMs: resource.spec.writeDisposition === 'merge' ? MAX_MERGE_BATCH_AGE_MS : MAX_BATCH_AGE_MS,
    },
    pass,
  );
  const feed = isParent(resource, o.resources) ? { complete: false, rows: [] as Record<string, unknown>[] } : undefined;
  const pickForChildren = childFields(resource, o.resources);
  if (feed) o.feeds.set(resource.name, feed);
  const units = new AsyncQueue<ReadUnit>(UNITS_AHEAD);
  // Whether the runner is waiting for a unit (nothing queued): then a unit closes early.
  let starving = false;
  const earlyClose =
    resource.batchRecordsDefault && resource.spec.writeDisposition !== 'merge' // each merge unit rewrites the table
      ? Math.max(1, Math.floor(resource.batchRecords * EARLY_CLOSE_SHARE))
      : Number.POSITIVE_INFINITY;
  // Stops every partition's fetching when one fails for good or the consumer goes away.
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  const inProgress = (): RestStreamState => ({ ...base, pass });
  // Pages of concurrent partitions enter the batcher one at a time, in arrival order.
  const batching = new Serial();
  const exclusive = (fn: () => Promise<void>) => batching.run(fn);
  const readPage = async (
    partition: Partition,
    page: Parameters<UnitBatcher['add']>[0],
    tracker: CursorTracker | undefined,
  ) => {
    o.counters.pages += 1;
    let records = page.records;
    if (tracker) {
      records = records.filter((r) => tracker.accept(r));
      o.counters.skipped_records += page.records.length - records.length;
    }
    if (Object.keys(partition.copy).length) records = records.map((r) => ({ ...r, ...partition.copy }));
    if (feed) for (const r of records) feed.rows.push(pickForChildren(r));
    await exclusive(async () => {
      if (resource.format === 'csv') return units.push(await batcher.csvUnit(page, inProgress()));
      const due = await batcher.add(page, records, tracker?.mark());
      if (due || (starving && units.size === 0 && batcher.records >= earlyClose)) {
        starving = false;
        await units.push(await batcher.flush(inProgress()));
      }
    });
  };
  const reader = readerOptions(o, resource);
  const multi =
    partitions.length > 1 ||
    resource.parent !== undefined ||
    resource.window !== undefined ||
    pass.retry_failed === true;
  const readOne = async (partition: Partition) => {
    const tracker = resource.incremental
      ? new CursorTracker(
          resource.incremental,
          keyOf(resource),
          base.incremental?.[partition.key],
          `${resource.name}`,
          pass.max[partition.key],
        )
      : undefined;
    try {
      for await (const page of readPartition(reader, partition, signal)) await readPage(partition, page, tracker);
    } catch (err) {
      // One parent's or window's request failing after its retries must not cost the others:
      // it is recorded (and the stream reported failed) so --retry-failed fetches exactly it.
      if (!multi || !(err instanceof HttpRequestError) || signal.aborted) {
        stop.abort(err);
        throw err;
      }
      await exclusive(async () => {
        o.counters.failed_requests += 1;
        pass.failed.push(failure(partition, pass.resume[partition.key] ?? partition.resume, err));
        delete pass.resume[partition.key];
        pass.done.push(partition.key);
      });
    }
  };
  const producer = (async () => {
    const workers = Math.max(1, Math.min(o.source.http.concurrency.max, pending.length));
    let next = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        while (next < pending.length) await readOne(pending[next++] as Partition);
      }),
    );
    await batching.idle();
    const finished = finalState(base, pass, partitions, resource);
    await units.push(await batcher.flush(finished));
    if (feed) feed.complete = true;
    if (pass.failed.length) {
      const first = pass.failed[0] as FailedRequest;
      throw new DipError(
        'transient',
        `${pass.failed.length} request(s) of ${resource.name} still failed after retries (first: ${first.url}: ${first.error}); the rest is committed. Re-fetch exactly those with: dip run ${ctx.pipeline} --retry-failed`,
        {
          details: { failed: pass.failed.map((f) => ({ url: f.url, status: f.status })) },
        },
      );
    }
  })();
  producer.then(
    () => units.close(),
    (err) => units.fail(err),
  );
  try {
    // The state goes to the catalog: resume URLs and failed requests keep no secret (masked values are restored on use).
    const queued = units[Symbol.asyncIterator]();
    for (;;) {
      starving = units.size === 0;
      const next = await queued.next();
      starving = false;
      if (next.done) break;
      const unit = next.value;
      yield { ...unit, state: redactDeep(unit.state, o.redact) };
    }
  } finally {
    stop.abort();
    units.close();
    await producer.catch(() => undefined);
    await batcher.discard();
  }
}

function finalState(
  base: RestStreamState,
  pass: PassState,
  partitions: Partition[],
  resource: ResolvedResource,
): RestStreamState {
  const incremental: Record<string, CursorMark> = { ...base.incremental };
  const direction = resource.incremental?.direction ?? 'max';
  for (const [key, mark] of Object.entries(pass.max)) {
    const later = laterMark(incremental[key], mark, direction);
    if (later) incremental[key] = later;
  }
  const attempted = new Set(partitions.map((p) => p.key));
  const out: RestStreamState = {};
  if (resource.incremental) out.incremental = incremental;
  const windowsDone = pass.window_to ?? base.windows_done_until;
  if (windowsDone && !pass.retry_failed) out.windows_done_until = windowsDone;
  else if (base.windows_done_until) out.windows_done_until = base.windows_done_until;
  const failed = [...(base.failed ?? []).filter((f) => !attempted.has(f.partition)), ...pass.failed];
  if (failed.length) out.failed = failed;
  return out;
}

function failure(partition: Partition, resume: Partition['resume'], err: HttpRequestError): FailedRequest {
  return {
    partition: partition.key,
    vars: partition.vars,
    params: partition.params,
    copy: partition.copy,
    resume,
    url: err.url,
    status: err.status ?? null,
    error: errorMessage(err).slice(0, 500),
    at: new Date().toISOString(),
  };
}

function readerOptions(o: StreamUnitsOptions, r: ResolvedResource): PageReaderOptions {
  const where = `${o.ctx.pipeline}.${o.ctx.source}.${r.name}`;
  return {
    template: {
      resource: r.name,
      baseUrl: o.source.base_url,
      path: r.path,
      method: r.method,
      params: r.params,
      headers: r.headers,
      body: r.body,
    },
    paginator: createPaginator(r.paginator, where),
    format: r.format,
    select: recordSelector(r.records, where),
    sender: o.client,
    redact: o.redact,
    keepHeaders: o.source.raw_headers.map((h) => h.toLowerCase()),
    parallel: o.source.http.concurrency.max,
    maxPages: r.maxPages,
    maxTimeMs: r.maxTimeMs,
    allowEmpty: r.allowEmpty,
    where,
  };
}

function isParent(r: ResolvedResource, all: ResolvedResource[]): boolean {
  return all.some((c) => c.parent?.resource === r.name);
}

/** Reduces a parent record to the fields its children use (placeholders, copied fields), so a large parent listing stays small in memory. */
function childFields(
  parent: ResolvedResource,
  all: ResolvedResource[],
): (record: Record<string, unknown>) => Record<string, unknown> {
  const fields = [
    ...new Set(
      all.flatMap((c) =>
        c.parent?.resource === parent.name ? [...c.parent.uses, ...Object.values(c.parent.fields)] : [],
      ),
    ),
  ];
  return (record) => {
    const out: Record<string, unknown> = {};
    for (const f of fields) {
      const parts = f.split('.');
      let target = out;
      for (const part of parts.slice(0, -1)) target = (target[part] ??= {}) as Record<string, unknown>;
      target[parts[parts.length - 1] as string] = fieldOf(record, f);
    }
    return out;
  };
}

function keyOf(r: ResolvedResource): (record: Record<string, unknown>) => string {
  if (r.spec.primaryKey.length) return (rec) => JSON.stringify(r.spec.primaryKey.map((k) => fieldOf(rec, k) ?? null));
  return (rec) => createHash('sha1').update(JSON.stringify(rec)).digest('base64url');
}

async function planPartitions(
  o: StreamUnitsOptions,
  r: ResolvedResource,
  base: RestStreamState,
  pass: PassState,
): Promise<Partition[]> {
  if (pass.retry_failed) {
    return (base.failed ?? []).map((f) => ({
      key: f.partition,
      vars: f.vars,
      params: f.params,
      copy: f.copy,
      resume: f.resume,
    }));
  }
  let partitions: Partition[] = [{ key: '', vars: {}, params: {}, copy: {} }];
  if (r.window) partitions = windowPartitions(r, base, pass);
  else if (r.parent) partitions = await parentPartitions(o, r);
  if (r.incremental) {
    const inc = r.incremental;
    for (const p of partitions) {
      const start = startValue(inc, base.incremental?.[p.key]);
      p.vars = { ...p.vars, incremental: { start, end: pass.started_at } };
      if (inc.param && start !== undefined) p.params[inc.param] = String(start);
      if (inc.end_param) p.params[inc.end_param] = pass.started_at;
    }
  }
  return partitions;
}

function windowEnd(to: string): string {
  if (to === 'now') return new Date().toISOString();
  const t = Date.parse(to);
  if (Number.isNaN(t)) throw new DipError('config', `window.to: ${to} is not an ISO date/time or "now"`);
  return new Date(t).toISOString();
}

function windowPartitions(r: ResolvedResource, base: RestStreamState, pass: PassState): Partition[] {
  const w = r.window as NonNullable<ResolvedResource['window']>;
  const step = durationMs(w.step, `resource ${r.name}: window.step`);
  const from = Date.parse(base.windows_done_until ?? w.from);
  if (Number.isNaN(from))
    throw new DipError('config', `resource ${r.name}: window.from ${w.from} is not an ISO date/time`);
  const to = Date.parse(pass.window_to as string);
  const format = (ms: number) => {
    const d = new Date(ms);
    if (w.format === 'date') return d.toISOString().slice(0, 10);
    if (w.format === 'unix') return String(Math.floor(ms / 1000));
    if (w.format === 'unix_ms') return String(ms);
    return d.toISOString();
  };
  const out: Partition[] = [];
  for (let s = from; s < to; s += step) {
    const e = Math.min(s + step, to);
    out.push({
      key: new Date(s).toISOString(),
      vars: { window: { start: format(s), end: format(e) } },
      params: { [w.start_param]: format(s), [w.end_param]: format(e) },
      copy: {},
    });
  }
  return out;
}

async function parentPartitions(o: StreamUnitsOptions, r: ResolvedResource): Promise<Partition[]> {
  const parent = r.parent as NonNullable<ResolvedResource['parent']>;
  let feed = o.feeds.get(parent.resource);
  if (!feed?.complete) feed = await fetchParent(o, parent.resource);
  const seen = new Set<string>();
  const out: Partition[] = [];
  for (const row of feed.rows) {
    const values = Object.fromEntries(parent.uses.map((f) => [f, fieldOf(row, f)]));
    const key = JSON.stringify(parent.uses.map((f) => values[f] ?? null));
    if (seen.has(key)) continue;
    seen.add(key);
    const copy = Object.fromEntries(Object.entries(parent.fields).map(([col, f]) => [col, fieldOf(row, f) ?? null]));
    out.push({ key, vars: { parent: row }, params: {}, copy });
  }
  return out;
}

/** The parent's records when its stream did not run to completion in this run: read, not committed. */
async function fetchParent(o: StreamUnitsOptions, name: string): Promise<ParentFeed> {
  const parent = o.resources.find((x) => x.name === name) as ResolvedResource;
  const pass: PassState = {
    started_at: new Date().toISOString(),
    done: [],
    resume: {},
    max: {},
    failed: [],
    window_to: parent.window ? windowEnd(parent.window.to) : undefined,
  };
  const rows: Record<string, unknown>[] = [];
  const pick = childFields(parent, o.resources);
  const reader = readerOptions(o, parent);
  for (const p of await planPartitions(o, parent, {}, pass)) {
    for await (const page of readPartition(reader, p, o.ctx.signal)) {
      for (const rec of page.records) rows.push(pick(Object.keys(p.copy).length ? { ...rec, ...p.copy } : rec));
    }
  }
  return { complete: true, rows };
}
