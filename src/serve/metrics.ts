/**
 * Prometheus metrics of `dip serve`, on a registry of their own (never the global one).
 *
 * - Counters are totals over the catalog's history, not over this process's lifetime: they start
 *   from what the catalog holds when the process starts (every ended run and attempt), so a
 *   restarted `dip serve` continues where the last one left off rather than at 0.
 * - Finished runs (count, duration, rows and bytes per source) are read from the catalog, so runs
 *   finished by other processes (`dip worker`, `dip run`) count too. A run is counted once per
 *   ending (a re-run that ends again counts again; the catalog keeps a run's last ending only,
 *   so after a restart a run counts once). Runs this process finishes are counted at once (the
 *   attempt event that ended them); the rest by a poll (each scheduler tick and scrape) over the
 *   most recently started runs plus the runs a poll saw unfinished before.
 * - Task attempts and errors (by error kind) are read from the catalog too, in the order they
 *   ended (`ended_seq`), so attempts of `dip worker`s and other processes count, each once.
 * - Table freshness and queue depth are gauges read from the catalog on every scrape.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunRecord } from '../catalog/types.js';
import type { Lake } from '../lake/lake.js';
import type { AttemptFinished } from '../orchestrate/attempt.js';
import type { Runtime } from '../orchestrate/runtime.js';
import { reconcileGauges } from '../ops/reconcile.js';

/** How many of the most recently started runs each poll reads. */
const RECENT_RUNS = 200;
/** Runs read per query when the history is counted at start. */
const HISTORY_PAGE = 1_000;
/** Ended attempts read per query (a poll reads until it has caught up). */
const ATTEMPT_PAGE = 5_000;
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

export interface MetricsOptions {
  clock?: () => Date;
  /** prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

interface Counted {
  endedAt: number;
  /** The poll generation that last saw the run (entries no poll sees any more are forgotten). */
  seen: number;
  /** rows/bytes already counted per stream key, so a resumed run adds only what is new. */
  streams: Map<string, { rows: number; bytes: number }>;
}

export class DipMetrics {
  readonly registry = new Registry();
  private readonly clock: () => Date;
  private readonly runsTotal: Counter<'pipeline' | 'status'>;
  private readonly runDuration: Histogram<'pipeline' | 'status'>;
  private readonly attempts: Counter<'pipeline' | 'task' | 'outcome'>;
  private readonly rows: Counter<'pipeline' | 'source'>;
  private readonly bytes: Counter<'pipeline' | 'source'>;
  private readonly errors: Counter<'pipeline' | 'kind'>;
  private readonly freshness: Gauge<'table'>;
  private readonly queueDepth: Gauge<'state'>;
  private readonly alertsWaiting: Gauge;
  private readonly reconcile: Gauge<'pipeline' | 'stream' | 'count'>;
  private readonly counted = new Map<string, Counted>();
  private unfinished = new Set<string>();
  private generation = 0;
  private polling: Promise<void> | undefined;
  /** The newest ended attempt counted (its `ended_seq`). */
  private attemptSeq = 0;

  /** Metrics over the catalog's history: every run and attempt that ended so far counts, then what ends from now on. */
  static async create(lake: Lake, options: MetricsOptions = {}): Promise<DipMetrics> {
    const metrics = new DipMetrics(lake, options);
    await metrics.countAttempts();
    for (let offset = 0; ; offset += HISTORY_PAGE) {
      const runs = await lake.catalog.listRuns({ limit: HISTORY_PAGE, offset });
      for (const run of runs) metrics.consider(run);
      if (runs.length < HISTORY_PAGE) break;
    }
    return metrics;
  }

  private constructor(
    private readonly lake: Lake,
    options: MetricsOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
    const registers = [this.registry];
    this.runsTotal = new Counter({
      name: 'dip_runs_total',
      help: "Runs finished (the catalog's history), by pipeline and final status",
      labelNames: ['pipeline', 'status'],
      registers,
    });
    this.runDuration = new Histogram({
      name: 'dip_run_duration_seconds',
      help: "Duration of the finished runs (the catalog's history)",
      labelNames: ['pipeline', 'status'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.attempts = new Counter({
      name: 'dip_task_attempts_total',
      help: "Task attempts ended (by any process; the catalog's history), by outcome (succeeded, failed, cancelled, lost, interrupted)",
      labelNames: ['pipeline', 'task', 'outcome'],
      registers,
    });
    this.rows = new Counter({
      name: 'dip_rows_total',
      help: "Rows ingested by the finished runs (the catalog's history), by source",
      labelNames: ['pipeline', 'source'],
      registers,
    });
    this.bytes = new Counter({
      name: 'dip_bytes_total',
      help: "Bytes ingested by the finished runs (the catalog's history), by source",
      labelNames: ['pipeline', 'source'],
      registers,
    });
    this.errors = new Counter({
      name: 'dip_errors_total',
      help: "Failed task attempts (by any process; the catalog's history), by error kind",
      labelNames: ['pipeline', 'kind'],
      registers,
    });
    this.freshness = new Gauge({
      name: 'dip_table_freshness_seconds',
      help: 'Seconds since the last commit to the table',
      labelNames: ['table'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'dip_queue_depth',
      help: 'Task runs waiting or running, by state (pending: upstreams not done; queued: ready; running)',
      labelNames: ['state'],
      registers,
    });
    this.alertsWaiting = new Gauge({
      name: 'dip_alert_deliveries_waiting',
      help: 'Alert deliveries that failed and wait in the outbox to be re-sent',
      registers,
    });
    this.reconcile = new Gauge({
      name: 'dip_reconcile_objects',
      help: "Callback streams' newest reconcile: objects expected, missing, late and filled; over_threshold counts the kept reports whose miss rate passed the threshold",
      labelNames: ['pipeline', 'stream', 'count'],
      registers,
    });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Counts the runs that ended since the last poll (one poll at a time; callers share it). */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  /** An attempt of this process's executor ended: a run it ended is counted before a re-run can reset it. */
  attemptFinished(event: AttemptFinished): void {
    if (event.result.runFinished) void this.observeRun(event.result.runFinished.id).catch(() => undefined);
  }

  /** Counts the run's ending now if it has ended (before a re-run resets it, or as the attempt that ended it reports). */
  async observeRun(id: string): Promise<void> {
    const run = await this.lake.catalog.getRun(id);
    if (run) this.consider(run);
  }

  /** The exposition text: gauges refreshed from the catalog, finished runs counted. */
  async render(): Promise<string> {
    await Promise.all([this.poll(), this.refreshGauges()]);
    return this.registry.metrics();
  }

  private async refreshGauges(): Promise<void> {
    const catalog = this.lake.catalog;
    const depth = await catalog.orchestration.countTasks();
    for (const state of ['pending', 'queued', 'running']) this.queueDepth.set({ state }, depth[state] ?? 0);
    this.alertsWaiting.set(await catalog.orchestration.alertOutbox().count());
    const now = this.clock().getTime();
    const fresh: [string, number][] = [];
    for (const table of await catalog.listTables()) {
      const head = table.headCommit === null ? undefined : await catalog.getCommit(table.headCommit);
      if (head) fresh.push([table.name, Math.max(0, (now - head.committedAt.getTime()) / 1000)]);
    }
    this.freshness.reset();
    for (const [table, age] of fresh) this.freshness.set({ table }, age);
    const gauges = await reconcileGauges(this.lake);
    this.reconcile.reset();
    for (const g of gauges) this.reconcile.set({ pipeline: g.pipeline, stream: g.stream, count: g.count }, g.value);
  }

  private async pollOnce(): Promise<void> {
    await this.countAttempts();
    const generation = ++this.generation;
    const catalog = this.lake.catalog;
    const seen = new Map<string, RunRecord>((await catalog.listRuns({ limit: RECENT_RUNS })).map((r) => [r.id, r]));
    for (const id of this.unfinished) {
      if (seen.has(id)) continue;
      const run = await catalog.getRun(id);
      if (run) seen.set(id, run);
    }
    // From here on synchronous: no other poll or observeRun interleaves.
    const unfinished = new Set<string>();
    for (const run of seen.values()) if (!this.consider(run)) unfinished.add(run.id);
    this.unfinished = unfinished;
    // Only runs a poll can still see need remembering.
    for (const [id, c] of this.counted) if (c.seen < generation) this.counted.delete(id);
  }

  private async countAttempts(): Promise<void> {
    const store = this.lake.catalog.orchestration;
    for (;;) {
      const ended = await store.attemptsEndedAfter(this.attemptSeq, ATTEMPT_PAGE);
      for (const a of ended) {
        this.attempts.inc({ pipeline: a.pipeline, task: a.task, outcome: a.status });
        if (a.status === 'failed') this.errors.inc({ pipeline: a.pipeline, kind: a.errorKind ?? 'internal' });
        this.attemptSeq = a.seq;
      }
      if (ended.length < ATTEMPT_PAGE) return;
    }
  }

  /** Counts a run that ended and was not counted for this ending; false when it has not ended. */
  private consider(run: RunRecord): boolean {
    if (!run.endedAt || run.status === 'running' || run.status === 'queued') return false;
    const endedAt = run.endedAt.getTime();
    const before = this.counted.get(run.id);
    if (before?.endedAt === endedAt) {
      before.seen = this.generation;
      return true;
    }
    const counted: Counted = { endedAt, seen: this.generation, streams: new Map() };
    this.counted.set(run.id, counted);
    this.record(run, before, counted);
    return true;
  }

  private record(run: RunRecord, before: Counted | undefined, counted: Counted): void {
    const labels = { pipeline: run.pipeline, status: run.status };
    this.runsTotal.inc(labels);
    if (run.endedAt)
      this.runDuration.observe(labels, Math.max(0, (run.endedAt.getTime() - run.startedAt.getTime()) / 1000));
    const pipelines = this.lake.project.config.pipelines;
    const sources = Object.hasOwn(pipelines, run.pipeline) ? pipelines[run.pipeline]?.sources : undefined;
    for (const [key, s] of Object.entries(run.stats.streams)) {
      counted.streams.set(key, { rows: s.rows, bytes: s.bytes });
      const source = key.split('.')[0] ?? key;
      // Silver tables report under `silver.<table>`: derived rows, not ingested ones.
      if (sources && !Object.hasOwn(sources, source)) continue;
      const prior = before?.streams.get(key);
      const labels2 = { pipeline: run.pipeline, source };
      this.rows.inc(labels2, Math.max(0, s.rows - (prior?.rows ?? 0)));
      this.bytes.inc(labels2, Math.max(0, s.bytes - (prior?.bytes ?? 0)));
    }
  }
}

/**
 * Feeds the runtime's attempt events to the metrics, keeping the orchestrator's own handling
 * (alerts, dispatching ready tasks). Returns the function that detaches it.
 */
export function observeAttempts(runtime: Runtime, metrics: DipMetrics): () => void {
  const off = runtime.onAttempt((event) => metrics.attemptFinished(event));
  return () => void off();
}
