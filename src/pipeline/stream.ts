import type { StreamStats } from '../catalog/types.js';
import { CommitConflictError } from '../core/errors.js';
import { commitState, commitTiming, commitUnits, stagedState, unstage } from '../lake/commit/index.js';
import { stageUnit, type IngestTarget, type StagedUnit } from '../lake/ingest.js';
import type { Lake } from '../lake/lake.js';
import { qualifiedTable } from '../lake/paths.js';
import type { TableSchema } from '../catalog/types.js';
import type { SourceInstance, StateStore } from '../sources/types.js';
import type { RunEventSink } from './events.js';
import { withSpan } from '../observe/trace.js';

interface StreamRunOptions {
  retryFailed?: boolean;
  follow?: boolean;
  /** `--follow` stops at the next commit boundary once this aborts (SIGTERM). */
  stop?: AbortSignal | undefined;
  streams?: readonly string[];
}

/**
 * Reads one stream of a source into its tables: plans, stages each unit and commits per the
 * stream's write disposition. `runPipeline` calls it for every stream; connectors are tested
 * through it. Traced as a `dip.stream` span.
 */
export function runStream(
  lake: Lake,
  source: SourceInstance,
  target: IngestTarget,
  stats: StreamStats,
  signal: AbortSignal,
  emit: RunEventSink,
  options: StreamRunOptions = {},
): Promise<void> {
  return withSpan(
    'dip.stream',
    {
      'dip.run_id': target.runId,
      'dip.pipeline': target.pipeline,
      'dip.stream': `${target.source}.${target.stream.name}`,
    },
    () => runStreamUntraced(lake, source, target, stats, signal, emit, options),
  );
}

async function runStreamUntraced(
  lake: Lake,
  source: SourceInstance,
  target: IngestTarget,
  stats: StreamStats,
  signal: AbortSignal,
  emit: RunEventSink,
  options: StreamRunOptions = {},
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
    stop: options.stop,
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
    const timing = commitTiming(stream.writeDisposition, discovered && unit.state !== undefined);
    const perUnit = timing === 'unit';
    const stagesDurably = timing === 'stream-staged';
    if (!unit.input && !unit.rawPages && !unit.rejected?.length) {
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
    const staged = await withSpan('dip.unit', { 'dip.run_id': target.runId, 'dip.unit': unit.label }, () =>
      stageUnit(lake, target, unit, schema, (fraction) =>
        emit({ type: 'unit_progress', pipeline, stream: streamKey, unit: unit.label, fraction, bytes: unit.bytes }),
      ),
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
