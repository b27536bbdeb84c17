import { rm } from 'node:fs/promises';
import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { mergeFiles } from '../merge.js';
import { commitRequest, type PreparedCommit, zoneChanges } from './land.js';

/**
 * merge: the units' records upserted into the bronze table by primary key, as one new file that
 * replaces the table's (the commit fails if another commit moved the table past `expectedHead`).
 */
export async function prepareMerge(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  expectedHead: number | null,
): Promise<PreparedCommit> {
  const { stream } = target;
  const zones = zoneChanges(target, units);
  const { bronze } = zones;
  bronze.expectedHead = expectedHead;
  bronze.remove = 'all';
  const inputs = units.flatMap((u) => (u.mergeInput ? [u.mergeInput] : []));
  if (inputs.length > 0) {
    const merged = await mergeFiles(lake, {
      source: target.source,
      table: stream.table,
      primaryKey: stream.primaryKey,
      deletedColumn: stream.deletedColumn,
      current: (await lake.catalog.liveFiles(zones.names.bronze)).map((f) => f.path),
      incoming: inputs,
      runId: target.runId,
    }).finally(() => Promise.all(inputs.map((f) => rm(f, { force: true }))));
    bronze.add = merged ? [merged] : [];
  }
  // A merge whose pages held no records touches only the raw zone (nothing to upsert). A unit
  // with a merge input is never empty, so this also covers `onlyEmpty` without a catalog query.
  const bronzeTouched = inputs.length > 0;
  return {
    request: commitRequest(target, units, 'merge', zones, bronzeTouched, undefined),
    bronze,
    alreadyIngestedIsNull: false,
  };
}
