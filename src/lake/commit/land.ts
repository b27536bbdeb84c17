import type { CommitRequest, TableChange } from '../../catalog/types.js';
import { CommitConflictError, SchemaChangeError } from '../../core/errors.js';
import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { qualifiedTable } from '../paths.js';
import { evolveSchema } from '../schema-evolution.js';
import { QUARANTINE_SCHEMA, RAW_SCHEMA } from '../zone-schemas.js';

/** What a write-disposition strategy hands to `landCommit`: one commit request, ready but for its schemas. */
export interface PreparedCommit {
  request: CommitRequest;
  /** The stream's bronze table change: its schema is evolved against the table's at commit time. */
  bronze: TableChange;
  /** A CDC current-state table change riding in the same commit (its schema follows the bronze one). */
  currentState?: TableChange | undefined;
  /** Another run landing the same input first is as good (null instead of an error). */
  alreadyIngestedIsNull: boolean;
}

/** The zone tables one stream writes: bronze, raw and quarantine. */
export interface ZoneChanges {
  names: { bronze: string; raw: string; quarantine: string };
  bronze: TableChange;
  raw: TableChange;
  quarantine: TableChange;
}

/** The files staged units add to each zone table. */
export function zoneChanges(target: IngestTarget, units: StagedUnit[]): ZoneChanges {
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
  return { names, bronze, raw, quarantine };
}

/** Empty inputs decide no schema: alone, they create no table and change none (a replace still empties it). */
export async function onlyEmpty(lake: Lake, zones: ZoneChanges, units: StagedUnit[]): Promise<boolean> {
  return units.every((u) => u.empty) && !(await lake.catalog.getTable(zones.names.bronze));
}

/** The commit request of staged units: the touched zone tables, their ledger entries and the last state. */
export function commitRequest(
  target: IngestTarget,
  units: StagedUnit[],
  operation: 'append' | 'replace' | 'merge',
  zones: ZoneChanges,
  bronzeTouched: boolean,
  extra: TableChange | undefined,
): CommitRequest {
  const { stream } = target;
  const { bronze, raw, quarantine } = zones;
  const changes = [bronze, raw, quarantine].filter((c) =>
    c === bronze ? bronzeTouched : c.add.length > 0 || (c.remove !== undefined && c.remove.length > 0),
  );
  if (extra) changes.push(extra);
  const request: CommitRequest = {
    runId: target.runId,
    operation,
    tables: changes,
    ledger: operation === 'replace' ? [] : units.flatMap((u) => (u.unit.ledger ? [u.unit.ledger] : [])),
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
  return request;
}

/**
 * Commits a prepared request, evolving the bronze schema against the table's at that moment and
 * retrying when a concurrent commit changed it. Returns the commit id, or null when another run
 * already landed the input (appends only).
 */
export async function landCommit(lake: Lake, target: IngestTarget, prepared: PreparedCommit): Promise<number | null> {
  const { stream } = target;
  const { request, bronze, currentState: currentTable } = prepared;
  for (let attempt = 0; ; attempt++) {
    // Evolve from the schema in force right now, not the one this stream started with: a
    // concurrent writer may have added columns meanwhile, and its version must not be lost.
    const current = await lake.catalog.schemaAt(bronze.table);
    const evolved = evolveSchema(current?.schema, bronze.schema?.columns ?? [], stream.schemaContract, {
      widenToText: stream.widenToText,
    });
    if (evolved.incompatible.length) {
      const c = evolved.incompatible[0];
      throw new SchemaChangeError(
        `incompatible schema change for ${bronze.table}: column ${c?.column} is ${c?.tableType} in the table and ${c?.batchType} in this batch (changed by a concurrent commit)`,
        {
          table: bronze.table,
          incompatible: evolved.incompatible,
        },
      );
    }
    bronze.schema = evolved.schema;
    bronze.expectedSchemaVersion = current?.version ?? null;
    if (currentTable) {
      const at = await lake.catalog.schemaAt(currentTable.table);
      currentTable.schema = evolveSchema(at?.schema, evolved.schema.columns, 'evolve', {
        widenToText: stream.widenToText,
      }).schema;
      currentTable.expectedSchemaVersion = at?.version ?? null;
    }
    try {
      return (await lake.catalog.commit(request)).id;
    } catch (err) {
      const reason = err instanceof CommitConflictError ? err.details['reason'] : undefined;
      if (prepared.alreadyIngestedIsNull && reason === 'already_ingested') return null;
      if (reason === 'schema_changed' && attempt < 5) continue;
      throw err;
    }
  }
}
