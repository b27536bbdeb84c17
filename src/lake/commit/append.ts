import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { supersedeSource } from '../supersede.js';
import { currentStateChange } from './current-state.js';
import { commitRequest, onlyEmpty, type PreparedCommit, zoneChanges } from './land.js';

/**
 * append: the units' files are added to each zone table, with their ledger entries (a unit another
 * run committed first is not committed twice). `supersedes`: a source file committed before in
 * another version, whose rows this unit replaces. A CDC stream's current-state table changes in
 * the same commit.
 */
export async function prepareAppend(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  supersedes: string | undefined,
): Promise<PreparedCommit> {
  const zones = zoneChanges(target, units);
  const { bronze, raw, quarantine } = zones;
  if (supersedes) {
    // The file changed since it was ingested: its earlier rows leave in the same commit the new
    // ones arrive, so the table never holds both versions (history keeps the old one).
    for (const change of [bronze, raw, quarantine]) await supersedeSource(lake, change, supersedes);
  }
  const current = target.stream.currentState ? await currentStateChange(lake, target, units, bronze) : undefined;
  // An append of response pages without records touches only the raw zone.
  const bronzeTouched =
    !(await onlyEmpty(lake, zones, units)) &&
    (bronze.add.length > 0 || units.every((u) => u.unit.input !== undefined && !u.empty));
  return {
    request: commitRequest(target, units, 'append', zones, bronzeTouched, current),
    bronze,
    currentState: current,
    alreadyIngestedIsNull: true,
  };
}
