import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { prepareAppend } from './append.js';
import { landCommit, type PreparedCommit } from './land.js';
import { prepareMerge } from './merge.js';
import { prepareReplace } from './replace.js';

export { currentStateChange } from './current-state.js';
export { landCommit, type PreparedCommit } from './land.js';
export { STAGED_KEY, stagedState, unstage } from './replace.js';

/** How staged units of a stream are committed: its write disposition, with what the disposition needs. */
export type CommitMode =
  /** `supersedes`: a source file committed before in another version, whose rows this unit replaces. */
  | { kind: 'append'; supersedes?: string | undefined }
  | { kind: 'replace'; expectedHead: number | null }
  | { kind: 'merge'; expectedHead: number | null };

/** A write disposition: turns staged units into one commit request (table changes, ledger, state). */
export type CommitStrategy<M extends CommitMode = CommitMode> = (
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  mode: M,
) => Promise<PreparedCommit>;

/** One strategy per write disposition (CDC current-state tables ride with append). */
export const COMMIT_STRATEGIES: {
  [K in CommitMode['kind']]: CommitStrategy<Extract<CommitMode, { kind: K }>>;
} = {
  append: (lake, target, units, mode) => prepareAppend(lake, target, units, mode.supersedes),
  replace: (lake, target, units, mode) => prepareReplace(lake, target, units, mode.expectedHead),
  merge: (lake, target, units, mode) => prepareMerge(lake, target, units, mode.expectedHead),
};

/**
 * When a stream's unit is committed: with its own commit (`unit`), or with the others at the end
 * of the stream (`stream`), then listed durably in the stream state as it is staged
 * (`stream-staged`). Appends commit each unit; units that carry the state resuming after them
 * (API pages, database chunks) commit per unit under merge (a killed run keeps what it merged)
 * and are staged durably under replace (readers never see half a replacement). File replace and
 * merge streams commit once, at the end.
 */
export function commitTiming(
  disposition: CommitMode['kind'],
  carriesState: boolean,
): 'unit' | 'stream' | 'stream-staged' {
  if (disposition === 'append' || (carriesState && disposition === 'merge')) return 'unit';
  return carriesState && disposition === 'replace' ? 'stream-staged' : 'stream';
}

/** Commits staged units; returns the commit id, or null when another run already landed the input. */
export async function commitUnits(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  mode: CommitMode,
): Promise<number | null> {
  const strategy = COMMIT_STRATEGIES[mode.kind] as CommitStrategy;
  return landCommit(lake, target, await strategy(lake, target, units, mode));
}

/** Commits a stream's state alone (a unit with no records). */
export async function commitState(lake: Lake, target: IngestTarget, value: unknown): Promise<number> {
  const commit = await lake.catalog.commit({
    runId: target.runId,
    operation: 'state',
    tables: [],
    state: [{ pipeline: target.pipeline, source: target.source, stream: target.stream.name, value }],
    summary: { pipeline: target.pipeline, source: target.source, stream: target.stream.name, rows: 0 },
  });
  return commit.id;
}
