import { hostname } from 'node:os';
import type { RunStats, StreamStats } from '../catalog/types.js';
import { secretRegistry } from '../config/secrets.js';
import { DipError, EXIT_CODES, classifyDiskFull, describeCause, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { processAlive } from '../core/process.js';
import type { IngestTarget } from '../lake/ingest.js';
import type { Lake } from '../lake/lake.js';
import { openSource } from '../sources/open.js';
import type { SourceInstance } from '../sources/types.js';
import type { PipelineConfig, SourceConfig } from '../config/schema.js';
import { renderIntervalTemplates } from '../core/interval-templates.js';
import type { Interval } from '../core/interval.js';
import type { RunEventSink } from './events.js';
import { bronzeTableNames, pipelineNamed } from './pipelines.js';
import { runStream } from './stream.js';
import { runConcurrently } from './concurrency.js';
import { activeSpan, withSpan } from '../observe/trace.js';
import { buildGoldStep } from './gold-step.js';

export { runStream } from './stream.js';

export interface RunResult {
  runId: string;
  pipeline: string;
  /** `warned`: no stream failed, but a stream read records and every one of them was quarantined. */
  status: 'succeeded' | 'warned' | 'failed';
  durationMs: number;
  stats: RunStats;
  errors: { stream: string; message: string; cause?: string | undefined; exitCode: number }[];
  /** Why the run is `warned` (one line per stream). */
  warnings: string[];
}

/** The exit code of `dip run --strict` for a run that only warned: its records were refused as bad input. */
export const WARNED_STRICT_EXIT_CODE = EXIT_CODES.input;

/** Streams that read records and landed none: every record went to quarantine. */
export function allQuarantinedWarnings(stats: RunStats): string[] {
  return Object.entries(stats.streams)
    .filter(([key, s]) => !key.startsWith('silver.') && !key.startsWith('gold.') && s.rows === 0 && s.quarantined > 0)
    .map(
      ([key, s]) =>
        `${key}: all ${s.quarantined} records read were quarantined, none landed (dip query "select * from quarantine.<table>")`,
    );
}

export interface RunOptions {
  signal?: AbortSignal;
  onEvent?: RunEventSink;
  /** Stream names to run (default: all). */
  streams?: string[];
  /** Re-fetch only the requests an earlier run recorded as failed. */
  retryFailed?: boolean;
  /** Streaming sources (CDC) keep reading until interrupted instead of stopping once caught up. */
  follow?: boolean;
  /**
   * A graceful stop: streaming sources end at the next transaction boundary with everything read
   * committed, and the run ends as usual (succeeded). `signal` is the hard interrupt.
   */
  stop?: AbortSignal;
  /** Build the pipeline's silver tables after ingesting (default true). */
  silver?: boolean;
  /** Build the pipeline's gold models after silver (default true). */
  gold?: boolean;
  /** Clock for silver freshness checks (tests). */
  now?: Date;
  /** The data interval, for sources that use {interval.start}/{interval.end}. */
  interval?: Interval | null;
}

const HEARTBEAT_MS = 30_000;

const emptyStats = (): StreamStats => ({ rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 0 });

/**
 * Runs one pipeline: every stream of every source is planned, read unit by unit and
 * committed. Append streams commit each unit with its ledger entry, so a killed run resumes
 * where it stopped. Merge streams of sources that carry state per unit (APIs, database
 * chunks) commit each unit too; their replace streams stage each unit durably and swap at
 * the end. File replace and merge streams commit once, at the end of the stream, so the
 * table never shows half a replacement.
 */
/** Runs a pipeline, traced as a `dip.run` span (its id in `dip.run_id`). */
export function runPipeline(lake: Lake, name: string, options: RunOptions = {}): Promise<RunResult> {
  return withSpan('dip.run', { 'dip.pipeline': name }, () => runPipelineUntraced(lake, name, options));
}

async function runPipelineUntraced(lake: Lake, name: string, options: RunOptions): Promise<RunResult> {
  const pipeline = pipelineNamed(lake.project, name);
  const signal = options.signal ?? new AbortController().signal;
  const emit: RunEventSink = options.onEvent ?? (() => undefined);
  const started = Date.now();
  await lake.catalog.markCrashedRuns(processAlive);
  const runId = newId('run_');
  activeSpan()?.setAttribute('dip.run_id', runId);
  await lake.catalog.startRun({ id: runId, pipeline: name, host: hostname(), pid: process.pid });
  emit({ type: 'run_started', runId, pipeline: name });
  const stats: RunStats = { streams: {} };
  const errors: RunResult['errors'] = [];
  const interrupt = () => lake.engine.interrupt();
  signal.addEventListener('abort', interrupt, { once: true });
  // Lets other hosts tell a long-running run from a dead one (markCrashedRuns), and shows what a
  // long (--follow) run has committed so far.
  const heartbeat = setInterval(
    () => void lake.catalog.updateRunStats(runId, stats).catch(() => undefined),
    HEARTBEAT_MS,
  );
  heartbeat.unref();
  try {
    const context: RunContext = {
      lake,
      pipeline: name,
      runId,
      rawEnabled: pipeline.raw?.enabled ?? true,
      stats,
      errors,
      signal,
      emit,
      only: options.streams,
      retryFailed: options.retryFailed ?? false,
      follow: options.follow ?? false,
      stop: options.stop,
      persistStats: true,
    };
    await runSources(
      context,
      Object.fromEntries(
        Object.entries(pipeline.sources).map(([n, s]) => [
          n,
          renderIntervalTemplates(s, options.interval ?? null, `pipelines.${name}.sources.${n}`),
        ]),
      ),
    );
    if (options.silver !== false && !options.follow && Object.keys(pipeline.silver).length > 0)
      await buildSilver(context, pipeline, options.now);
    if (options.gold !== false && !options.follow && Object.keys(pipeline.gold ?? {}).length > 0)
      await buildGold(context, pipeline, options.now);
  } catch (err) {
    // Interrupted (or an unexpected failure outside a stream): record it, then let it surface.
    const reason = signal.aborted ? signal.reason : classifyDiskFull(err);
    const cause = describeCause(reason);
    await lake.catalog.finishRun(runId, {
      status: 'failed',
      error: secretRegistry.redact(errorMessage(reason)),
      cause: cause === undefined ? null : secretRegistry.redact(cause),
      stats,
    });
    throw reason;
  } finally {
    clearInterval(heartbeat);
    signal.removeEventListener('abort', interrupt);
  }
  const warnings = errors.length ? [] : allQuarantinedWarnings(stats);
  const status = errors.length ? 'failed' : warnings.length ? 'warned' : 'succeeded';
  // Run records, CLI and API answers: no secret in any encoding, no secret query parameter.
  for (const e of errors) {
    e.message = secretRegistry.redact(e.message);
    if (e.cause) e.cause = secretRegistry.redact(e.cause);
  }
  await lake.catalog.finishRun(runId, {
    status,
    error: errors.length
      ? errors.map((e) => `${e.stream}: ${e.message}`).join('\n')
      : warnings.length
        ? warnings.join('\n')
        : null,
    cause:
      errors
        .map((e) => e.cause)
        .filter(Boolean)
        .join('\n') || null,
    stats,
  });
  emit({ type: 'run_finished', runId, pipeline: name, status });
  return { runId, pipeline: name, status, durationMs: Date.now() - started, stats, errors, warnings };
}

/** Silver tables after the sources: each table's outcome is recorded like a stream's. */
async function buildSilver(ctx: RunContext, pipeline: PipelineConfig, now: Date | undefined): Promise<void> {
  const { lake, pipeline: name, runId, stats, errors, signal, emit } = ctx;
  // Imported here: a pipeline without silver tables never loads the transform and quality modules.
  const { runSilver, silverTables } = await import('../transform/silver.js');
  for (const [table] of silverTables(pipeline)) {
    const key = `silver.${table}`;
    const s = (stats.streams[key] = emptyStats());
    try {
      const [result] = await runSilver(lake, name, pipeline, {
        runId,
        tables: [table],
        now,
        signal,
        onEvent: (e) => emit(e),
        declaredBronze: bronzeTableNames(pipeline),
      });
      if (result) {
        s.rows = result.newRows;
        s.files = result.files;
        s.quarantined = result.quarantined;
        s.commits = result.commit === null ? 0 : 1;
      }
    } catch (caught) {
      if (signal.aborted) throw caught;
      recordStreamFailure(caught, errors, emit, name, key);
    }
    if (ctx.persistStats) await lake.catalog.updateRunStats(runId, stats);
  }
}

/** Gold models after silver (pipeline/gold-step.ts), each recorded like a stream. */
function buildGold(ctx: RunContext, pipeline: PipelineConfig, now: Date | undefined, only?: string[]): Promise<void> {
  return buildGoldStep(ctx, pipeline, now, only, (caught, key) =>
    recordStreamFailure(caught, ctx.errors, ctx.emit, ctx.pipeline, key),
  );
}

/** What one orchestrator task did: stream stats and the streams that failed. */
export interface TaskWork {
  stats: RunStats;
  errors: RunResult['errors'];
}

export interface TaskWorkOptions {
  runId: string;
  signal: AbortSignal;
  onEvent?: RunEventSink;
  now?: Date;
}

/**
 * Ingests the given sources of a pipeline under an existing (orchestrated) run, which keeps its
 * own record: the caller passes the source configs with the run's interval already rendered.
 */
export async function ingestSources(
  lake: Lake,
  name: string,
  sources: Record<string, SourceConfig>,
  options: TaskWorkOptions,
): Promise<TaskWork> {
  const pipeline = pipelineNamed(lake.project, name);
  const work: TaskWork = { stats: { streams: {} }, errors: [] };
  const context: RunContext = {
    lake,
    pipeline: name,
    runId: options.runId,
    rawEnabled: pipeline.raw?.enabled ?? true,
    ...work,
    signal: options.signal,
    emit: options.onEvent ?? (() => undefined),
    only: undefined,
    retryFailed: false,
    follow: false,
    persistStats: false,
  };
  await runSources(context, sources);
  return work;
}

/** Builds one silver table of a pipeline under an existing (orchestrated) run. */
export async function buildSilverTable(
  lake: Lake,
  name: string,
  table: string,
  options: TaskWorkOptions,
): Promise<TaskWork> {
  const pipeline = pipelineNamed(lake.project, name);
  const work: TaskWork = { stats: { streams: {} }, errors: [] };
  await buildSilver(
    taskContext(lake, name, options, work),
    { ...pipeline, silver: Object.fromEntries(Object.entries(pipeline.silver).filter(([t]) => t === table)) },
    options.now,
  );
  return work;
}

/** Builds one gold model of a pipeline under an existing (orchestrated) run. */
export async function buildGoldModel(
  lake: Lake,
  name: string,
  model: string,
  options: TaskWorkOptions,
): Promise<TaskWork> {
  const work: TaskWork = { stats: { streams: {} }, errors: [] };
  await buildGold(taskContext(lake, name, options, work), pipelineNamed(lake.project, name), options.now, [model]);
  return work;
}

function taskContext(lake: Lake, name: string, options: TaskWorkOptions, work: TaskWork): RunContext {
  return {
    lake,
    pipeline: name,
    runId: options.runId,
    rawEnabled: true,
    ...work,
    signal: options.signal,
    emit: options.onEvent ?? (() => undefined),
    only: undefined,
    retryFailed: false,
    follow: false,
    persistStats: false,
  };
}

interface RunContext {
  /** Whether progress is written to the run record as it goes (false under the orchestrator, which aggregates task stats). */
  persistStats: boolean;
  lake: Lake;
  pipeline: string;
  runId: string;
  rawEnabled: boolean;
  stats: RunStats;
  errors: RunResult['errors'];
  signal: AbortSignal;
  emit: RunEventSink;
  only: string[] | undefined;
  retryFailed: boolean;
  follow: boolean;
  stop?: AbortSignal | undefined;
}

async function runSources(ctx: RunContext, sources: Record<string, SourceConfig>): Promise<void> {
  const { lake, pipeline: name, runId, rawEnabled, stats, errors, signal, emit, only, retryFailed, follow } = ctx;
  for (const [sourceName, sourceConfig] of Object.entries(sources)) {
    const source: SourceInstance = await openSource(sourceConfig, lake.project.dir, sourceName, lake.budgets);
    try {
      await source.discover?.(signal);
      const streams = source.streams().filter((s) => !only || only.includes(s.name));
      await runConcurrently(
        streams,
        source.streamConcurrency ?? 1,
        (s) => source.dependsOn?.(s) ?? [],
        async (stream) => {
          const key = `${sourceName}.${stream.name}`;
          const streamStats = (stats.streams[key] = emptyStats());
          const target: IngestTarget = { pipeline: name, source: sourceName, stream, rawEnabled, runId };
          try {
            await runStream(lake, source, target, streamStats, signal, emit, {
              retryFailed,
              follow,
              stop: ctx.stop,
              streams: streams.map((s) => s.name),
            });
          } catch (caught) {
            if (signal.aborted) throw caught;
            recordStreamFailure(caught, errors, emit, name, key);
          } finally {
            const metrics = source.metrics?.(stream);
            if (metrics) streamStats.source = metrics;
          }
          if (ctx.persistStats) await lake.catalog.updateRunStats(runId, stats);
        },
      );
    } finally {
      await source.close();
    }
  }
}

/** A failed stream (or silver table): recorded in the run's errors and emitted; the run goes on with the others. */
function recordStreamFailure(
  caught: unknown,
  errors: RunResult['errors'],
  emit: RunEventSink,
  pipeline: string,
  stream: string,
): void {
  const err = classifyDiskFull(caught);
  const message = errorMessage(err);
  errors.push({ stream, message, cause: describeCause(err), exitCode: err instanceof DipError ? err.exitCode : 1 });
  emit({ type: 'stream_failed', pipeline, stream, error: message });
}
