/**
 * Over 400 lines: schedules, triggers, backfills and SLA checks all become runs through the same queueing rules.
 *
 * The orchestrator: turns schedules, data triggers, manual triggers and backfills into queued
 * runs (one per data interval) in the catalog, starts them within each pipeline's limits, and
 * reports what ends badly. Work is executed by a TaskExecutor in this process, or by `dip worker`
 * processes fed through a queue (`dispatch`). The clock is injected: tests drive time.
 */
import type { OrchestrationStore } from '../catalog/orchestration.js';
import type { ProjectConfig, PipelineConfig } from '../config/schema.js';
import type { ScheduleConfig } from '../config/orchestrate.js';
import { DipError, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { durationMs } from '../core/time.js';
import type { Lake } from '../lake/lake.js';
import { plural, type Alerter } from './alerts.js';
import type { AttemptFinished } from './attempt.js';
import { readsDisjointSlices } from './source-slices.js';
import { pipelineDag, type PipelineDag } from '../config/task-graph.js';
import { dueIntervals, intervalsBetween, ticksOf, type Interval, type ScheduleSpec } from './schedule.js';
import { fileTriggerFingerprint } from './triggers.js';
import {
  PRIORITY,
  type Alert,
  type AlertKind,
  type NewRun,
  type OrchestratedRun,
  type RunTrigger,
  type TaskRef,
} from '../catalog/orchestration-types.js';

export interface OrchestratorOptions {
  clock?: () => Date;
  alerter?: Alerter;
  /** Hands ready tasks to the executors (wakes the in-process executor, or sends queue jobs). */
  dispatch?: (refs: TaskRef[]) => Promise<void> | void;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export interface BackfillPlan {
  backfillId: string | null;
  pipeline: string;
  intervals: Interval[];
  /** Intervals left out because a run for them is queued, running or succeeded already (unless rerun). */
  skipped: { interval: Interval; status: string }[];
  runIds: string[];
}

export interface TickReport {
  scheduled: number;
  triggered: number;
  recovered: number;
  started: number;
  slaBreaches: string[];
  /** Pipelines whose schedule, triggers or SLA could not be evaluated this pass. */
  errors: { pipeline: string; error: string }[];
}

export function scheduleSpec(schedule: ScheduleConfig): ScheduleSpec {
  if (typeof schedule === 'string') return { cron: schedule, catchup: 'all' };
  return { cron: schedule.cron, every: schedule.every, timezone: schedule.timezone, catchup: schedule.catchup };
}

export class Orchestrator {
  readonly store: OrchestrationStore;
  readonly clock: () => Date;
  private readonly dags = new Map<string, PipelineDag>();
  private readonly slaBreached = new Set<string>();

  private constructor(
    readonly lake: Lake,
    private readonly options: OrchestratorOptions,
  ) {
    this.store = lake.catalog.orchestration;
    this.clock = options.clock ?? lake.catalog.clock;
  }

  static create(lake: Lake, options: OrchestratorOptions = {}): Orchestrator {
    return new Orchestrator(lake, options);
  }

  get config(): ProjectConfig {
    return this.lake.project.config;
  }

  /** The project's configuration was replaced (dip serve reloaded it): task graphs are derived again. */
  configChanged(): void {
    this.dags.clear();
  }

  /** The pipeline's task graph (validated once, then cached). */
  dag(pipeline: string): PipelineDag {
    let dag = this.dags.get(pipeline);
    if (!dag) {
      dag = pipelineDag(this.config, pipeline);
      this.dags.set(pipeline, dag);
    }
    return dag;
  }

  poolSlots = (pool: string): number => this.config.pools[pool]?.slots ?? 1;

  private pipeline(name: string): PipelineConfig {
    // Own properties only: a name from a URL or a command line such as __proto__ is no pipeline.
    const p = Object.hasOwn(this.config.pipelines, name) ? this.config.pipelines[name] : undefined;
    if (!p)
      throw new DipError(
        'not_found',
        `no pipeline named "${name}" (pipelines: ${Object.keys(this.config.pipelines).join(', ') || 'none'})`,
      );
    return p;
  }

  /**
   * Tasks that must not run in two runs at once: the one writer of a silver table, and the
   * ingest of a source whose runs share one state (see readsDisjointSlices). Sources whose every
   * stream reads its interval's own slice ingest their backfill runs in parallel.
   */
  private mutexOf(pipeline: string, run: PipelineDag['tasks'][number]['run']): string | null {
    if (run.kind === 'silver') return `${pipeline}:silver.${run.table}`;
    if (run.kind === 'gold') return `${pipeline}:gold.${run.model}`;
    if (run.kind === 'reconcile') return `${pipeline}:reconcile.${run.source}`;
    if (run.kind === 'ingest') {
      const source = this.pipeline(pipeline).sources[run.source];
      if (!source || !readsDisjointSlices(source)) return `${pipeline}:ingest.${run.source}`;
    }
    return null;
  }

  private newRun(
    pipeline: string,
    interval: Interval | null,
    trigger: RunTrigger,
    extra: Partial<NewRun> = {},
  ): NewRun {
    const dag = this.dag(pipeline);
    return {
      pipeline,
      interval,
      trigger,
      priority: trigger === 'backfill' ? PRIORITY.backfill : PRIORITY.fresh,
      tasks: dag.tasks.map((t) => ({
        name: t.name,
        deps: t.deps,
        pool: t.pool,
        mutex: this.mutexOf(pipeline, t.run),
        maxAttempts: t.retry.attempts,
      })),
      maxActive: this.pipeline(pipeline).max_active_runs,
      maxTasks: this.pipeline(pipeline).max_parallel_tasks,
      ...extra,
    };
  }

  /** Queues a run now (manual or API), for an interval or none, and starts it if the pipeline has room. */
  async trigger(
    pipeline: string,
    options: { interval?: Interval | null; trigger?: RunTrigger } = {},
  ): Promise<OrchestratedRun> {
    this.pipeline(pipeline);
    const [id] = await this.store.createRuns(
      [this.newRun(pipeline, options.interval ?? null, options.trigger ?? 'manual')],
      this.clock(),
    );
    await this.promote();
    return (await this.store.getRun(id as string)) as OrchestratedRun;
  }

  /**
   * One run per interval of the pipeline's schedule (or `every`) in [from, to), or per `batch`
   * consecutive intervals; at most `parallel` of them at once, always behind fresh runs.
   * Intervals inside a queued, running or succeeded run are skipped unless `rerun`.
   */
  async backfill(
    pipeline: string,
    options: {
      from: Date;
      to: Date;
      parallel?: number;
      dryRun?: boolean;
      every?: string;
      rerun?: boolean;
      batch?: number;
      maxIntervals?: { limit: number; setting: string };
    },
  ): Promise<BackfillPlan> {
    const p = this.pipeline(pipeline);
    if (!(options.from < options.to))
      throw new DipError(
        'config',
        `backfill: --from (${options.from.toISOString()}) must be before --to (${options.to.toISOString()})`,
      );
    const spec: ScheduleSpec | undefined = options.every
      ? { every: options.every }
      : p.schedule
        ? scheduleSpec(p.schedule)
        : undefined;
    if (!spec)
      throw new DipError(
        'config',
        `backfill: pipeline ${pipeline} has no schedule to cut intervals from; add schedule: to it or pass --every <duration>`,
      );
    const all = intervalsBetween(spec, options.from, options.to).filter((i) => i.start >= options.from);
    const covered = options.rerun ? [] : await this.store.coveredIntervals(pipeline, options.from, options.to);
    const coveredBy = (i: Interval) => covered.find((c) => c.interval.start <= i.start && c.interval.end >= i.end);
    const skipped = all.flatMap((i) => {
      const c = coveredBy(i);
      return c ? [{ interval: i, status: c.status }] : [];
    });
    const open = all.filter((i) => !coveredBy(i));
    const intervals = batchIntervals(open, Math.max(1, options.batch ?? 1));
    const cap = options.maxIntervals;
    if (cap && intervals.length > cap.limit) {
      throw new DipError(
        'input',
        `backfill of ${pipeline} from ${options.from.toISOString()} to ${options.to.toISOString()} would queue ${intervals.length} intervals; at most ${cap.limit} per request (${cap.setting}). Split the range, merge intervals with batch, or raise ${cap.setting}`,
      );
    }
    if (options.dryRun || intervals.length === 0) return { backfillId: null, pipeline, intervals, skipped, runIds: [] };
    const backfillId = newId('bf_');
    const parallel = Math.max(1, options.parallel ?? 1);
    const runs = intervals.map((i) =>
      this.newRun(pipeline, i, 'backfill', {
        backfillId,
        maxParallel: parallel,
        maxActive: Math.max(parallel, p.max_active_runs),
      }),
    );
    const runIds = await this.store.createRuns(runs, this.clock());
    await this.promote();
    return { backfillId, pipeline, intervals, skipped, runIds };
  }

  /** Cancels a run; the pipeline's next queued run may start in its place. */
  async cancel(runId: string): Promise<OrchestratedRun> {
    const run = await this.store.cancel(runId, this.clock());
    await this.promote();
    return run;
  }

  /** Resumes a finished run from its failed tasks (or reruns every task with `all`). */
  async rerun(runId: string, options: { all?: boolean } = {}): Promise<OrchestratedRun> {
    const run = await this.store.rerun(runId, this.clock(), options);
    await this.promote();
    return (await this.store.getRun(run.id)) ?? run;
  }

  /** Starts queued runs that have room and hands their first tasks to the executors. */
  async promote(): Promise<number> {
    const ready = await this.store.promote(this.clock());
    await this.options.dispatch?.(ready);
    return ready.length;
  }

  /** Recovers the tasks of dead workers and starts queued runs (what a process waiting on runs does). */
  async maintain(): Promise<void> {
    await this.options.dispatch?.(await this.recover());
    await this.promote();
  }

  /**
   * Takes back the tasks of dead lease holders (their attempts count as lost) and alerts on the
   * runs that ends and the retries it exhausts. Returns the tasks ready to run again.
   */
  async recover(): Promise<TaskRef[]> {
    return this.store.recoverExpired(this.clock(), async (recovered) => {
      for (const r of recovered) {
        this.log(`recovered ${r.ref.task} of ${r.ref.runId} from ${r.lostBy}`, { status: r.result.status });
        const outcome = {
          ok: false as const,
          error: `the worker ${r.lostBy} died or lost its lease`,
          cause: null,
          retryable: true,
          retryDelayMs: 0,
        };
        await this.onAttemptFinished({
          runId: r.ref.runId,
          pipeline: r.pipeline,
          task: r.ref.task,
          attempt: r.attempt,
          maxAttempts: r.maxAttempts,
          outcome,
          errorKind: 'transient',
          result: { ...r.result, ready: [] },
          durationMs: 0,
        });
      }
    });
  }

  /**
   * One scheduler pass: due schedule intervals become runs (catch-up as configured), data
   * triggers fire, tasks of dead workers are recovered, SLAs are checked, and queued runs start.
   */
  async tick(): Promise<TickReport> {
    const now = this.clock();
    const report: TickReport = { scheduled: 0, triggered: 0, recovered: 0, started: 0, slaBreaches: [], errors: [] };
    for (const [name, p] of Object.entries(this.config.pipelines)) {
      // One broken pipeline (a cycle, a bad glob) must not stop the others, nor recovery below.
      try {
        if (p.schedule) report.scheduled += await this.scheduleDue(name, p, now);
        if (p.triggers.length) report.triggered += await this.fireTriggers(name, p, now);
        report.slaBreaches.push(...(await this.checkSla(name, p, now)));
      } catch (err) {
        report.errors.push({ pipeline: name, error: errorMessage(err) });
        this.log(`scheduling ${name} failed: ${errorMessage(err)}`, { pipeline: name });
      }
    }
    const recovered = await this.recover();
    report.recovered = recovered.length;
    await this.options.dispatch?.(recovered);
    report.started = await this.promote();
    return report;
  }

  private async scheduleDue(name: string, p: PipelineConfig, now: Date): Promise<number> {
    const schedule = p.schedule as ScheduleConfig;
    const spec = scheduleSpec(schedule);
    const state = await this.store.getSchedule(name);
    const start = typeof schedule === 'object' && schedule.start ? new Date(schedule.start) : undefined;
    if (!state?.lastEnd && !start) {
      // No start: the schedule begins when first seen. Intervals that ended before are not
      // this scheduler's to run (a backfill runs them); the first run is the interval in
      // progress now, due at its end.
      const latestEnd = ticksOf(spec).previous(now);
      await this.store.advanceSchedule(
        { pipeline: name, lastEnd: { expected: state?.lastEnd ?? null, next: latestEnd } },
        now,
      );
      this.log(
        `schedule of ${name} first seen: its first run covers the interval ending after ${latestEnd.toISOString()}`,
        {
          pipeline: name,
        },
      );
      return 0;
    }
    const lastEnd = state?.lastEnd ?? start;
    const due = dueIntervals(spec, lastEnd ?? undefined, now).filter((i) => !start || i.start >= start);
    const last = due.at(-1);
    if (!last) return 0;
    const ids = await this.store.createRuns(
      due.map((i) => this.newRun(name, i, 'schedule')),
      now,
      { pipeline: name, lastEnd: { expected: state?.lastEnd ?? null, next: last.end } },
    );
    if (ids.length)
      this.log(`scheduled ${ids.length} run(s) of ${name}`, {
        from: due[0]?.start.toISOString(),
        to: last.end.toISOString(),
      });
    return ids.length;
  }

  private async fireTriggers(name: string, p: PipelineConfig, now: Date): Promise<number> {
    const state = (await this.store.getSchedule(name)) ?? { lastEnd: null, triggerState: {} };
    const next: Record<string, unknown> = { ...state.triggerState };
    const runs: NewRun[] = [];
    for (const t of p.triggers) {
      if ('files' in t) {
        const key = `files:${t.files}`;
        const fingerprint = await fileTriggerFingerprint(this.lake.project.dir, t.files);
        const seen = next[key] as { fingerprint: string; at: string } | undefined;
        const changed = fingerprint.files > 0 && fingerprint.hash !== seen?.fingerprint;
        // The run covers the time since the previous trigger (or since the trigger was first seen).
        if (changed) runs.push(this.newRun(name, seen ? { start: new Date(seen.at), end: now } : null, 'files'));
        next[key] = { fingerprint: fingerprint.hash, at: changed || !seen ? now.toISOString() : seen.at };
      } else {
        const key = `pipeline:${t.pipeline}`;
        const seen = next[key] as { lastRunEnded: string } | undefined;
        const upstream = (await this.lake.catalog.listRuns({ pipeline: t.pipeline, limit: 20 })).filter(
          (r) => r.status === 'succeeded' && r.endedAt && (!seen || r.endedAt.toISOString() > seen.lastRunEnded),
        );
        const newest = upstream[0];
        if (newest?.endedAt) {
          const source = await this.store.getRun(newest.id);
          runs.push(this.newRun(name, source?.interval ?? null, 'pipeline'));
          next[key] = { lastRunEnded: newest.endedAt.toISOString() };
        } else if (!seen) {
          next[key] = { lastRunEnded: now.toISOString() };
        }
      }
    }
    const guard = { pipeline: name, triggerState: { expected: state.triggerState, next } };
    const ids = runs.length ? await this.store.createRuns(runs, now, guard) : [];
    if (!runs.length && JSON.stringify(next) !== JSON.stringify(state.triggerState))
      await this.store.advanceSchedule(guard, now);
    return ids.length;
  }

  private async checkSla(name: string, p: PipelineConfig, now: Date): Promise<string[]> {
    const breaches: string[] = [];
    for (const [table, maxAge] of Object.entries(p.sla)) {
      const info = await this.lake.catalog.getTable(table);
      const commit = info?.headCommit ? await this.lake.catalog.getCommit(info.headCommit) : undefined;
      const age = commit ? now.getTime() - commit.committedAt.getTime() : Number.POSITIVE_INFINITY;
      const key = `sla:${table}`;
      if (age > durationMs(maxAge, `pipelines.${name}.sla.${table}`)) {
        breaches.push(table);
        this.slaBreached.add(key);
        await this.alert({
          kind: 'sla',
          key,
          pipeline: name,
          title: `${table} is stale: no commit for ${commit ? formatAge(age) : 'ever'} (SLA ${maxAge})`,
          text: commit
            ? `The last commit to ${table} was ${commit.committedAt.toISOString()}.`
            : `${table} has no commit yet.`,
          fields: { table, sla: maxAge, last_commit: commit?.committedAt.toISOString() ?? 'never' },
          at: now,
        });
      } else if (this.slaBreached.delete(key)) {
        await this.alert({
          kind: 'recovery',
          key,
          pipeline: name,
          title: `${table} is fresh again`,
          text: `${table} was committed ${formatAge(age)} ago.`,
          fields: { table },
          at: now,
        });
      }
    }
    return breaches;
  }

  /**
   * Alerts on what a finished attempt means. A task that failed for good fails its run: that is
   * the incident, and it sends one alert (keyed by the pipeline, `failure:<pipeline>`), of the
   * kind the failure was (quality checks, retries exhausted, or a plain failure; `failure` when
   * the specific kind is not enabled). Another task failing in the same run, and the run ending
   * failed afterwards, are the same incident and send nothing more; a success ends the
   * incident, so the next failure alerts again.
   */
  async onAttemptFinished(event: AttemptFinished): Promise<void> {
    const { outcome, result } = event;
    if (result.ready.length) await this.options.dispatch?.(result.ready);
    if (!result.accepted) return;
    const finished = result.runFinished;
    if (finished?.status === 'succeeded') await this.store.resolveAlert(`failure:${finished.pipeline}`);
    const failed = !outcome.ok && !outcome.cancelled && result.status === 'failed';
    // A second task failing in the same run is the same incident, whatever the dedup window
    // (a marker per run in the ledger, gone when the run ends).
    const first = failed && (await this.store.claimAlert(`run:${event.runId}`, this.clock(), Number.MAX_SAFE_INTEGER));
    if (finished) await this.store.resolveAlert(`run:${event.runId}`);
    if (!failed || !first) return;
    const at = this.clock();
    const run = await this.store.getRun(event.runId);
    const fields: Record<string, string> = {
      run: event.runId,
      task: event.task,
      attempt: `${event.attempt} of ${event.maxAttempts}`,
    };
    if (run?.interval) fields['interval'] = `${run.interval.start.toISOString()} → ${run.interval.end.toISOString()}`;
    fields['error'] = outcome.error;
    const specific: AlertKind =
      event.errorKind === 'quality' ? 'quality' : outcome.retryable ? 'retry_exhausted' : 'failure';
    const kind = this.options.alerter?.enabled(specific) === false ? 'failure' : specific;
    const title =
      kind === 'quality'
        ? `Quality checks failed in ${event.pipeline} · ${event.task}`
        : kind === 'retry_exhausted'
          ? `Run of ${event.pipeline} failed: ${event.task} failed after ${plural(event.attempt, 'attempt')}`
          : `Run of ${event.pipeline} failed: ${event.task} failed`;
    await this.alert({
      kind,
      key: `failure:${event.pipeline}`,
      pipeline: event.pipeline,
      title,
      text: `${event.task}: ${outcome.error}`,
      fields,
      at,
    });
  }

  private async alert(alert: Alert): Promise<void> {
    this.log(`incident ${alert.kind}: ${alert.title}`, { key: alert.key });
    await this.options.alerter?.send(alert);
  }

  private log(message: string, fields?: Record<string, unknown>): void {
    this.options.log?.(message, fields);
  }
}

/** Joins runs of `size` consecutive intervals into one (a gap, i.e. a skipped interval, starts a new batch). */
export function batchIntervals(intervals: Interval[], size: number): Interval[] {
  if (size <= 1) return intervals;
  const out: Interval[] = [];
  let count = 0;
  for (const i of intervals) {
    const last = out.at(-1);
    if (last && count < size && last.end.getTime() === i.start.getTime()) {
      last.end = i.end;
      count++;
    } else {
      out.push({ start: i.start, end: i.end });
      count = 1;
    }
  }
  return out;
}

function formatAge(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  return minutes < 120 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}
