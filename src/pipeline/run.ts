import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { CommitRequest, NewFile, RunStats, StreamStats, TableChange, TableSchema } from '../catalog/types.js';
import { secretRegistry } from '../config/secrets.js';
import {
  CommitConflictError,
  DipError,
  EXIT_CODES,
  SchemaChangeError,
  classifyDiskFull,
  describeCause,
  errorMessage,
} from '../core/errors.js';
import { newId } from '../core/ids.js';
import { processAlive } from '../core/process.js';
import { stageUnit, type IngestTarget, type StagedUnit } from '../lake/ingest.js';
import type { Lake } from '../lake/lake.js';
import { MERGE_KEY_META, latestRowsSql, mergeFiles } from '../lake/merge.js';
import { writeLakeFile } from '../lake/write-file.js';
import { evolveSchema } from '../lake/schema-evolution.js';
import { supersedeSource } from '../lake/supersede.js';
import { qualifiedTable } from '../lake/paths.js';
import { parquetScan } from '../lake/scan.js';
import { CDC_COLUMNS } from '../lake/zone-schemas.js';
import { QUARANTINE_SCHEMA, RAW_SCHEMA } from '../lake/zone-schemas.js';
import { openSource } from '../sources/open.js';
import type { SourceInstance, StateStore, StreamSpec } from '../sources/types.js';
import type { PipelineConfig, SourceConfig } from '../config/schema.js';
import { renderIntervalTemplates } from '../core/interval-templates.js';
import type { Interval } from '../core/interval.js';
import type { RunEventSink } from './events.js';
import { bronzeTableNames, pipelineNamed } from './pipelines.js';

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
    .filter(([key, s]) => !key.startsWith('silver.') && s.rows === 0 && s.quarantined > 0)
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
  /** Build the pipeline's silver tables after ingesting (default true). */
  silver?: boolean;
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
export async function runPipeline(lake: Lake, name: string, options: RunOptions = {}): Promise<RunResult> {
  const pipeline = pipelineNamed(lake.project, name);
  const signal = options.signal ?? new AbortController().signal;
  const emit: RunEventSink = options.onEvent ?? (() => undefined);
  const started = Date.now();
  await lake.catalog.markCrashedRuns(processAlive);
  const runId = newId('run_');
  await lake.catalog.startRun({ id: runId, pipeline: name, host: hostname(), pid: process.pid });
  emit({ type: 'run_started', runId, pipeline: name });
  const stats: RunStats = { streams: {} };
  const errors: RunResult['errors'] = [];
  const interrupt = () => lake.engine.interrupt();
  signal.addEventListener('abort', interrupt, { once: true });
  // Lets other hosts tell a long-running run from a dead one (markCrashedRuns).
  const heartbeat = setInterval(() => void lake.catalog.heartbeat(runId).catch(() => undefined), HEARTBEAT_MS);
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
      const err = classifyDiskFull(caught);
      const message = errorMessage(err);
      errors.push({
        stream: key,
        message,
        cause: describeCause(err),
        exitCode: err instanceof DipError ? err.exitCode : 1,
      });
      emit({ type: 'stream_failed', pipeline: name, stream: key, error: message });
    }
    if (ctx.persistStats) await lake.catalog.updateRunStats(runId, stats);
  }
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
  const context: RunContext = {
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
  await buildSilver(
    context,
    { ...pipeline, silver: Object.fromEntries(Object.entries(pipeline.silver).filter(([t]) => t === table)) },
    options.now,
  );
  return work;
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
}

async function runSources(ctx: RunContext, sources: Record<string, SourceConfig>): Promise<void> {
  const { lake, pipeline: name, runId, rawEnabled, stats, errors, signal, emit, only, retryFailed, follow } = ctx;
  for (const [sourceName, sourceConfig] of Object.entries(sources)) {
    const source: SourceInstance = await openSource(sourceConfig, lake.project.dir, sourceName);
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
              streams: streams.map((s) => s.name),
            });
          } catch (caught) {
            if (signal.aborted) throw caught;
            const err = classifyDiskFull(caught);
            const message = errorMessage(err);
            errors.push({
              stream: key,
              message,
              cause: describeCause(err),
              exitCode: err instanceof DipError ? err.exitCode : 1,
            });
            emit({ type: 'stream_failed', pipeline: name, stream: key, error: message });
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

/**
 * Runs `work` for every stream, at most `limit` at a time, each only after the streams it
 * depends on (among those being run) have finished, in the given order otherwise.
 */
async function runConcurrently(
  streams: StreamSpec[],
  limit: number,
  dependsOn: (s: StreamSpec) => string[],
  work: (s: StreamSpec) => Promise<void>,
): Promise<void> {
  const names = new Set(streams.map((s) => s.name));
  const finished = new Map<string, Promise<void>>();
  const slots: Promise<void>[] = [];
  let running = 0;
  const waiters: (() => void)[] = [];
  const acquire = async () => {
    while (running >= limit) await new Promise<void>((r) => waiters.push(r));
    running++;
  };
  const release = () => {
    running--;
    waiters.shift()?.();
  };
  for (const stream of streams) {
    const deps = dependsOn(stream)
      .filter((d) => names.has(d))
      .map((d) => finished.get(d) ?? Promise.resolve());
    const done = (async () => {
      await Promise.all(deps);
      await acquire();
      try {
        await work(stream);
      } finally {
        release();
      }
    })();
    finished.set(
      stream.name,
      done.catch(() => undefined),
    );
    slots.push(done);
  }
  // Wait for every stream, then surface the first failure (an interruption).
  const outcomes = await Promise.allSettled(slots);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Reads one stream of a source into its tables: plans, stages each unit and commits per the
 * stream's write disposition. `runPipeline` calls it for every stream; connectors are tested
 * through it.
 */
export async function runStream(
  lake: Lake,
  source: SourceInstance,
  target: IngestTarget,
  stats: StreamStats,
  signal: AbortSignal,
  emit: RunEventSink,
  options: { retryFailed?: boolean; follow?: boolean; streams?: readonly string[] } = {},
): Promise<void> {
  const { pipeline, source: sourceName, stream } = target;
  // replace re-reads every input each run: the table must equal what the inputs hold now.
  const ledger =
    stream.writeDisposition === 'replace' ? new Map() : await lake.catalog.getLedger(pipeline, sourceName, stream.name);
  const stored = await lake.catalog.getState(pipeline, sourceName, stream.name);
  // A replace killed mid-way left its batches staged: the source resumes after them.
  const { state, staged: stagedBefore } = await unstage(lake, target, stored);
  const plan = await source.plan(stream, {
    pipeline,
    source: sourceName,
    ledger,
    state,
    signal,
    sourceState: sourceStateStore(lake, target),
    retryFailed: options.retryFailed ?? false,
    stagingDir: await lake.storage.stagingDir(),
    runId: target.runId,
    follow: options.follow ?? false,
    streams: options.streams ?? [stream.name],
  });
  // DuckDB loads while the source fetches; a plan known to be empty never needs it.
  if (plan.total?.units !== 0) lake.engine.warm();
  const streamKey = `${sourceName}.${stream.name}`;
  stats.skippedFiles = plan.skipped;
  for (const message of plan.warnings ?? []) warnStream(stats, emit, pipeline, streamKey, message);
  emit({
    type: 'stream_planned',
    pipeline,
    stream: streamKey,
    units: plan.total?.units ?? null,
    bytes: plan.total?.bytes ?? null,
    skipped: plan.skipped,
  });
  const bronzeName = qualifiedTable('bronze', stream.table);
  const table = await lake.catalog.getTable(bronzeName);
  let schema: TableSchema | undefined = stagedBefore?.schema ?? (await lake.catalog.schemaAt(bronzeName))?.schema;
  let expectedHead = table?.headCommit ?? null;
  // Sources that discover units as they read (API pages, database chunks) carry in each unit
  // the state that resumes after it. Their merge streams commit every unit (a killed run keeps
  // what it merged); their replace streams stage every unit durably (files published, listed
  // in the stream state) and swap them in at the end, so readers never see half a replacement.
  const discovered = !Array.isArray(plan.units);
  const batch: StagedUnit[] = stagedBefore ? stagedBefore.units : [];
  // Rows count once committed, and only by the run whose commit landed them; batches a killed
  // run staged count for the run that swaps them in.
  const pendingStats: (() => void)[] = batch.map((u) => () => {
    stats.rows += u.rows;
    stats.quarantined += u.quarantined;
    stats.files += 1;
  });
  let pendingState: { value: unknown } | undefined;
  // A staged replace batch is listed in the state only once the next unit arrives: the last
  // one goes with the final swap, so a state listing staged batches always resumes a pass
  // that has more to read (never a finished one, which the source would start over).
  let toStage: { state: unknown; units: number; schema: TableSchema } | undefined;
  for await (const unit of plan.units) {
    signal.throwIfAborted();
    if (toStage) {
      await commitState(lake, target, stagedState(toStage.state, batch.slice(0, toStage.units), toStage.schema));
      toStage = undefined;
    }
    const perUnit =
      stream.writeDisposition === 'append' ||
      (discovered && unit.state !== undefined && stream.writeDisposition === 'merge');
    const stagesDurably = discovered && unit.state !== undefined && stream.writeDisposition === 'replace';
    if (!unit.input && !unit.rawPages) {
      // Nothing to read, only state to record (e.g. an API listing that ended on an empty page).
      await unit.dispose?.();
      if (unit.ledgerRefresh?.length) {
        // Another run refreshing the same entries first is as good.
        await lake.catalog
          .commit({
            runId: target.runId,
            operation: 'state',
            tables: [],
            ledger: unit.ledgerRefresh,
            summary: { pipeline, source: sourceName, stream: stream.name, rows: 0 },
          })
          .catch((err: unknown) => {
            if (!(err instanceof CommitConflictError && err.details['reason'] === 'already_ingested')) throw err;
          });
        continue;
      }
      if (perUnit) {
        const commit = unit.state === undefined ? null : await commitState(lake, target, unit.state);
        emit({
          type: 'unit_committed',
          pipeline,
          stream: streamKey,
          unit: unit.label,
          rows: 0,
          bytes: 0,
          quarantined: 0,
          commit,
        });
      } else if (unit.state !== undefined) pendingState = { value: unit.state };
      continue;
    }
    const staged = await stageUnit(lake, target, unit, schema, (fraction) =>
      emit({ type: 'unit_progress', pipeline, stream: streamKey, unit: unit.label, fraction, bytes: unit.bytes }),
    ).finally(() => unit.dispose?.()); // everything the unit holds is staged (or failed) by now
    if (staged.changes.length) {
      emit({
        type: 'schema_changed',
        table: bronzeName,
        changes: staged.changes.map((c) =>
          c.kind === 'add_column' ? `+${c.column} ${c.to}` : `${c.column} ${c.from} → ${c.to}`,
        ),
      });
    }
    schema = staged.schema;
    if (staged.empty) {
      stats.emptyFiles = (stats.emptyFiles ?? 0) + 1;
      warnStream(
        stats,
        emit,
        pipeline,
        streamKey,
        `${unit.label} holds no records: nothing landed and no column type was decided (recorded as read)`,
      );
    }
    // Rows count once they are committed, and only by the run whose commit landed them: a unit
    // another run committed first (`commit === null`) is not this run's.
    const landed = () => {
      stats.rows += staged.rows;
      stats.quarantined += staged.quarantined;
      stats.bytes += unit.bytes;
      stats.files += 1;
    };
    let commit: number | null = null;
    if (stream.writeDisposition === 'append') {
      const supersedes =
        unit.supersedes ?? (unit.ledger && ledger.has(unit.ledger.path) ? unit.ledger.path : undefined);
      commit = await commitUnits(lake, target, [staged], { kind: 'append', supersedes });
      if (commit !== null) {
        stats.commits += 1;
        landed();
      } else stats.skippedFiles += 1;
    } else if (perUnit) {
      commit = await commitUnits(lake, target, [staged], { kind: 'merge', expectedHead });
      if (commit !== null) {
        stats.commits += 1;
        landed();
      }
      expectedHead = (await lake.catalog.getTable(bronzeName))?.headCommit ?? null;
    } else {
      pendingStats.push(landed);
      batch.push(staged); // committed together at the end of the stream
      if (stagesDurably) toStage = { state: unit.state, units: batch.length, schema: staged.schema };
      emit({
        type: 'unit_staged',
        pipeline,
        stream: streamKey,
        unit: unit.label,
        rows: staged.rows,
        bytes: unit.bytes,
        quarantined: staged.quarantined,
        commit,
      });
      continue;
    }
    emit({
      type: 'unit_committed',
      pipeline,
      stream: streamKey,
      unit: unit.label,
      rows: staged.rows,
      bytes: unit.bytes,
      quarantined: staged.quarantined,
      commit,
    });
  }
  let commit: number | null = null;
  if (pendingState && batch.length === 0) commit = await commitState(lake, target, pendingState.value);
  else if (pendingState) (batch[batch.length - 1] as StagedUnit).unit.state = pendingState.value;
  // A replace with no inputs at all leaves the table alone: an empty glob is far more often a
  // missing mount or a typo than a wish to empty the table (time travel could undo it, but
  // nobody should have to).
  if (stream.writeDisposition !== 'append' && batch.length > 0) {
    commit = await commitUnits(lake, target, batch, { kind: stream.writeDisposition, expectedHead });
    if (commit !== null) {
      stats.commits += 1;
      for (const count of pendingStats) count();
    }
  }
  emit({ type: 'stream_committed', pipeline, stream: streamKey, commit, stats });
}

/** A warning that does not fail the stream: in the run's stats (the run summary) and the log. */
function warnStream(stats: StreamStats, emit: RunEventSink, pipeline: string, stream: string, message: string): void {
  (stats.warnings ??= []).push(message);
  emit({ type: 'stream_warning', pipeline, stream, message });
}

async function fileExists(lake: Lake, path: string): Promise<boolean> {
  for await (const obj of lake.storage.list(path)) if (obj.path === path) return true;
  return false;
}

/** Key of the stream state under which a replace stream lists the batches it staged. */
const STAGED_KEY = '_dip_staged';

interface StagedList {
  schema: TableSchema;
  units: {
    label: string;
    bronze?: NewFile | undefined;
    raw?: NewFile | undefined;
    quarantine?: NewFile | undefined;
    rows: number;
    quarantined: number;
  }[];
}

/** The source's state with the staged batches listed beside it (committed per staged unit). */
function stagedState(state: unknown, batch: StagedUnit[], schema: TableSchema): unknown {
  const list: StagedList = {
    schema,
    units: batch.map((u) => ({
      label: u.unit.label,
      bronze: u.bronze,
      raw: u.raw,
      quarantine: u.quarantine,
      rows: u.rows,
      quarantined: u.quarantined,
    })),
  };
  return { ...(state as Record<string, unknown>), [STAGED_KEY]: list };
}

/**
 * Splits a stored stream state into the source's own state and the batches a killed replace
 * run staged. Staged files must still exist (gc keeps files listed in stream states); if one
 * is gone the stream cannot resume and says how to start over.
 */
async function unstage(
  lake: Lake,
  target: IngestTarget,
  stored: unknown,
): Promise<{ state: unknown; staged: { schema: TableSchema; units: StagedUnit[] } | undefined }> {
  if (stored === null || typeof stored !== 'object' || !(STAGED_KEY in stored))
    return { state: stored, staged: undefined };
  const { [STAGED_KEY]: list, ...state } = stored as Record<string, unknown> & { [STAGED_KEY]: StagedList };
  const name = `${target.pipeline}.${target.source}.${target.stream.name}`;
  if (target.stream.writeDisposition !== 'replace') {
    // Its state resumes after batches that were never committed: resuming would skip them.
    throw new DipError(
      'config',
      `${name}: an interrupted replace run staged ${list.units.length} batch(es) and the stream is now write_disposition ${target.stream.writeDisposition}; run it once more as replace, or start over with: dip state ${target.pipeline} --stream ${target.stream.name} --reset`,
    );
  }
  for (const u of list.units) {
    for (const f of [u.bronze, u.raw, u.quarantine]) {
      if (f && !(await fileExists(lake, f.path))) {
        throw new DipError(
          'input',
          `${name}: a batch staged by an interrupted run is gone (${f.path}); start the stream over with: dip state ${target.pipeline} --stream ${target.stream.name} --reset`,
        );
      }
    }
  }
  const units: StagedUnit[] = list.units.map((u) => ({
    unit: { label: u.label, bytes: 0, position: {} },
    bronze: u.bronze,
    raw: u.raw,
    quarantine: u.quarantine,
    schema: list.schema,
    changes: [],
    rows: u.rows,
    quarantined: u.quarantined,
  }));
  return { state, staged: { schema: list.schema, units } };
}

/** Commits a stream's state alone (a unit with no records). */
async function commitState(lake: Lake, target: IngestTarget, value: unknown): Promise<number> {
  const commit = await lake.catalog.commit({
    runId: target.runId,
    operation: 'state',
    tables: [],
    state: [{ pipeline: target.pipeline, source: target.source, stream: target.stream.name, value }],
    summary: { pipeline: target.pipeline, source: target.source, stream: target.stream.name, rows: 0 },
  });
  return commit.id;
}

/** State of the source as a whole (not one stream), under a reserved stream name. */
function sourceStateStore(lake: Lake, target: IngestTarget): StateStore {
  const key = { pipeline: target.pipeline, source: target.source, stream: '_source' };
  return {
    load: () => lake.catalog.getState(key.pipeline, key.source, key.stream),
    save: async (value) => {
      await lake.catalog.commit({
        runId: target.runId,
        operation: 'state',
        tables: [],
        state: [{ ...key, value }],
        summary: { ...key, rows: 0 },
      });
    },
  };
}

type CommitMode =
  /** `supersedes`: a source file committed before in another version, whose rows this unit replaces. */
  { kind: 'append'; supersedes?: string | undefined } | { kind: 'replace' | 'merge'; expectedHead: number | null };

/** Commits staged units; returns the commit id, or null when another run already landed the input. */
async function commitUnits(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  mode: CommitMode,
): Promise<number | null> {
  const { stream } = target;
  const names = {
    bronze: qualifiedTable('bronze', stream.table),
    raw: qualifiedTable('raw', stream.table),
    quarantine: qualifiedTable('quarantine', stream.table),
  };
  const bronze: TableChange = {
    table: names.bronze,
    zone: 'bronze',
    format: 'parquet',
    primaryKey: stream.primaryKey,
    schema: units[units.length - 1]?.schema,
    add: units.flatMap((u) => (u.bronze ? [u.bronze] : [])),
  };
  const raw: TableChange = {
    table: names.raw,
    zone: 'raw',
    format: 'ndjson',
    schema: RAW_SCHEMA,
    add: units.flatMap((u) => (u.raw ? [u.raw] : [])),
  };
  const quarantine: TableChange = {
    table: names.quarantine,
    zone: 'quarantine',
    format: 'parquet',
    schema: QUARANTINE_SCHEMA,
    add: units.flatMap((u) => (u.quarantine ? [u.quarantine] : [])),
  };
  if (mode.kind === 'append' && mode.supersedes) {
    // The file changed since it was ingested: its earlier rows leave in the same commit the new
    // ones arrive, so the table never holds both versions (history keeps the old one).
    for (const change of [bronze, raw, quarantine]) await supersedeSource(lake, change, mode.supersedes);
  }
  if (mode.kind !== 'append') {
    bronze.expectedHead = mode.expectedHead;
    bronze.remove = 'all';
  }
  if (mode.kind === 'replace' && (await lake.catalog.getTable(names.quarantine))) {
    quarantine.remove = 'all'; // the refused records of the inputs now in force, not of every run
  }
  const mergeInputs = units.flatMap((u) => (u.mergeInput ? [u.mergeInput] : []));
  if (mode.kind === 'merge' && mergeInputs.length > 0) {
    const inputs = mergeInputs;
    const merged = await mergeFiles(lake, {
      source: target.source,
      table: stream.table,
      primaryKey: stream.primaryKey,
      deletedColumn: stream.deletedColumn,
      current: (await lake.catalog.liveFiles(names.bronze)).map((f) => f.path),
      incoming: inputs,
      runId: target.runId,
    }).finally(() => Promise.all(inputs.map((f) => rm(f, { force: true }))));
    bronze.add = merged ? [merged] : [];
  }
  const current =
    stream.currentState && mode.kind === 'append' ? await currentStateChange(lake, target, units, bronze) : undefined;
  // An append of response pages without records touches only the raw zone.
  // So does a merge whose pages held no records (nothing to upsert).
  // Empty inputs decide no schema: alone, they create no table and change none (a replace still empties it).
  const onlyEmpty = units.every((u) => u.empty) && !(await lake.catalog.getTable(names.bronze));
  const bronzeTouched =
    !onlyEmpty &&
    (mode.kind === 'replace' ||
      (mode.kind === 'merge'
        ? mergeInputs.length > 0
        : bronze.add.length > 0 || units.every((u) => u.unit.input !== undefined && !u.empty)));
  const changes = [bronze, raw, quarantine].filter((c) =>
    c === bronze ? bronzeTouched : c.add.length > 0 || (c.remove !== undefined && c.remove.length > 0),
  );
  if (current) changes.push(current);
  const request: CommitRequest = {
    runId: target.runId,
    operation: mode.kind,
    tables: changes,
    ledger: mode.kind === 'replace' ? [] : units.flatMap((u) => (u.unit.ledger ? [u.unit.ledger] : [])),
    summary: {
      pipeline: target.pipeline,
      source: target.source,
      stream: stream.name,
      rows: units.reduce((n, u) => n + u.rows, 0),
      quarantined: units.reduce((n, u) => n + u.quarantined, 0),
      inputs: units.map((u) => u.unit.label),
    },
  };
  const lastState = [...units].reverse().find((u) => u.unit.state !== undefined);
  if (lastState)
    request.state = [
      { pipeline: target.pipeline, source: target.source, stream: stream.name, value: lastState.unit.state },
    ];
  const currentTable = current;
  for (let attempt = 0; ; attempt++) {
    // Evolve from the schema in force right now, not the one this stream started with: a
    // concurrent writer may have added columns meanwhile, and its version must not be lost.
    const current = await lake.catalog.schemaAt(names.bronze);
    const evolved = evolveSchema(current?.schema, bronze.schema?.columns ?? [], stream.schemaContract);
    if (evolved.incompatible.length) {
      const c = evolved.incompatible[0];
      throw new SchemaChangeError(
        `incompatible schema change for ${names.bronze}: column ${c?.column} is ${c?.tableType} in the table and ${c?.batchType} in this batch (changed by a concurrent commit)`,
        {
          table: names.bronze,
          incompatible: evolved.incompatible,
        },
      );
    }
    bronze.schema = evolved.schema;
    bronze.expectedSchemaVersion = current?.version ?? null;
    if (currentTable) {
      const at = await lake.catalog.schemaAt(currentTable.table);
      currentTable.schema = evolveSchema(at?.schema, evolved.schema.columns, 'evolve').schema;
      currentTable.expectedSchemaVersion = at?.version ?? null;
    }
    try {
      return (await lake.catalog.commit(request)).id;
    } catch (err) {
      const reason = err instanceof CommitConflictError ? err.details['reason'] : undefined;
      if (mode.kind === 'append' && reason === 'already_ingested') return null;
      if (reason === 'schema_changed' && attempt < 5) continue;
      throw err;
    }
  }
}

/**
 * A CDC current-state table is read merge-on-read: it gets each unit's changes as a small delta
 * file (the latest change per key wins at read time), so a commit costs the unit, not the
 * table. Like an LSM tree, deltas are merged among themselves every this many files (cost:
 * the deltas), and into a new base only once they hold a quarter of the base's rows (cost:
 * the table, paid once per that many changes).
 */
const CDC_MAX_DELTA_FILES = 32;
const CDC_BASE_MERGE_SHARE = 0.25;
const CDC_MIN_BASE_MERGE_ROWS = 50_000;

/**
 * Change-data-capture streams: the unit's change events (already staged into the change log)
 * applied to the current-state table by primary key, in change order, deletes applied: as a
 * delta file, or merged into a new base file. A snapshot unit, or a unit holding a TRUNCATE,
 * replaces the table with its rows (those after the TRUNCATE) instead.
 */
async function currentStateChange(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  changeLog: TableChange,
): Promise<TableChange | undefined> {
  const { stream } = target;
  const tableName = (stream.currentState as { table: string }).table;
  const name = qualifiedTable('bronze', tableName);
  const incoming = changeLog.add.map((f) => lake.storage.uri(f.path));
  const resets = units.some((u) => u.unit.snapshot);
  if (incoming.length === 0 && !resets) return undefined;
  const table = await lake.catalog.getTable(name);
  const live = resets ? [] : await lake.catalog.liveFiles(name);
  const meta = { [MERGE_KEY_META]: stream.primaryKey };
  const deltas = live.filter((f) => f.meta['cdc'] === 'delta');
  const deltaRows = deltas.reduce((n, f) => n + f.rows, 0) + changeLog.add.reduce((n, f) => n + f.rows, 0);
  const baseRows = live.filter((f) => f.meta['cdc'] !== 'delta').reduce((n, f) => n + f.rows, 0);
  const merge =
    resets || live.length === 0 || deltaRows >= Math.max(baseRows * CDC_BASE_MERGE_SHARE, CDC_MIN_BASE_MERGE_ROWS);
  const change: TableChange = {
    table: name,
    zone: 'bronze',
    format: 'parquet',
    primaryKey: stream.primaryKey,
    add: [],
    expectedHead: table?.headCommit ?? null,
  };
  if (!merge) {
    const mergeDeltas = deltas.length + 1 >= CDC_MAX_DELTA_FILES;
    const changes = `SELECT * FROM ${parquetScan(mergeDeltas ? [...deltas.map((f) => lake.storage.uri(f.path)), ...incoming] : incoming)} WHERE ${CDC_COLUMNS.op} <> 't'`;
    change.add = [
      await writeLakeFile(
        lake,
        mergeDeltas ? latestRowsSql(`(${changes})`, stream.primaryKey, { keepDeleted: true }) : changes,
        { zone: 'bronze', source: target.source, table: tableName },
        { run_id: target.runId, cdc: 'delta', ...meta },
      ),
    ];
    if (mergeDeltas) change.remove = deltas.map((f) => f.path);
    return change;
  }
  const merged = incoming.length
    ? await mergeFiles(lake, {
        source: target.source,
        table: tableName,
        primaryKey: stream.primaryKey,
        deletedColumn: CDC_COLUMNS.deleted,
        // TRUNCATE markers, and in a unit that holds one, the events before it.
        skipRows: resets
          ? `${CDC_COLUMNS.op} = 't' OR ${CDC_COLUMNS.seq} < coalesce((SELECT max(${CDC_COLUMNS.seq}) FROM ${parquetScan(incoming)} WHERE ${CDC_COLUMNS.op} = 't'), -1)`
          : `${CDC_COLUMNS.op} = 't'`,
        current: live.map((f) => f.path),
        incoming,
        runId: target.runId,
        meta: { cdc: 'base', ...meta },
      })
    : undefined;
  change.add = merged ? [merged] : [];
  change.remove = table ? 'all' : [];
  return change;
}
