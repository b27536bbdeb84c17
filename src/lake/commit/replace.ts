import type { NewFile, TableSchema } from '../../catalog/types.js';
import { DipError } from '../../core/errors.js';
import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { commitRequest, onlyEmpty, type PreparedCommit, zoneChanges } from './land.js';

/**
 * replace: the bronze table (and the quarantine of its inputs) swapped for the units' files in
 * one commit, with no ledger entries: a replace re-reads every input each run.
 */
export async function prepareReplace(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  expectedHead: number | null,
): Promise<PreparedCommit> {
  const zones = zoneChanges(target, units);
  const { bronze, quarantine } = zones;
  bronze.expectedHead = expectedHead;
  bronze.remove = 'all';
  if (await lake.catalog.getTable(zones.names.quarantine)) {
    quarantine.remove = 'all'; // the refused records of the inputs now in force, not of every run
  }
  const bronzeTouched = !(await onlyEmpty(lake, zones, units));
  return {
    request: commitRequest(target, units, 'replace', zones, bronzeTouched, undefined),
    bronze,
    alreadyIngestedIsNull: false,
  };
}

/** Key of the stream state under which a replace stream lists the batches it staged. */
export const STAGED_KEY = '_dip_staged';

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
export function stagedState(state: unknown, batch: StagedUnit[], schema: TableSchema): unknown {
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

async function fileExists(lake: Lake, path: string): Promise<boolean> {
  for await (const obj of lake.storage.list(path)) if (obj.path === path) return true;
  return false;
}

/**
 * Splits a stored stream state into the source's own state and the batches a killed replace
 * run staged. Staged files must still exist (gc keeps files listed in stream states); if one
 * is gone the stream cannot resume and says how to start over.
 */
export async function unstage(
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
