import type { Column, TableSchema } from '../catalog/types.js';
import { commonType, isPlainScalarType } from './duck-types.js';

export { commonType } from './duck-types.js';

/**
 * Schema evolution for lake tables: a new batch may add columns and widen types safely
 * (integer → larger integer → double, float → double, date → timestamp, decimal → wider
 * decimal); anything else is incompatible and the caller fails with the evidence.
 */
export type SchemaContract = 'evolve' | 'freeze';

export interface SchemaChange {
  kind: 'add_column' | 'widen';
  column: string;
  from?: string;
  to: string;
}

export interface IncompatibleColumn {
  column: string;
  tableType: string;
  batchType: string;
}

export interface EvolutionResult {
  /** The table schema after this batch (equal to the old one when nothing changed). */
  schema: TableSchema;
  changes: SchemaChange[];
  incompatible: IncompatibleColumn[];
  /** Per batch column: the type it is written as (the table's type when the batch's is narrower). */
  writeTypes: Map<string, string>;
}

export interface EvolveOptions {
  /**
   * A column whose types have no common numeric or temporal type becomes text (VARCHAR holds
   * every value of either type exactly as text). For change-data-capture streams, where the
   * source database changed the column's type and every event must land (ALTER TABLE … MODIFY).
   */
  widenToText?: boolean | undefined;
}

/** Compares a batch's columns with the table's current schema (undefined: a new table). */
export function evolveSchema(
  current: TableSchema | undefined,
  batch: readonly Column[],
  contract: SchemaContract,
  options: EvolveOptions = {},
): EvolutionResult {
  const writeTypes = new Map<string, string>();
  if (!current) {
    for (const c of batch) writeTypes.set(c.name, c.type);
    return { schema: { columns: batch.map((c) => ({ ...c })) }, changes: [], incompatible: [], writeTypes };
  }
  const columns = current.columns.map((c) => ({ ...c }));
  const byName = new Map(columns.map((c) => [c.name, c]));
  const changes: SchemaChange[] = [];
  const incompatible: IncompatibleColumn[] = [];
  for (const col of batch) {
    const existing = byName.get(col.name);
    if (!existing) {
      const added = { ...col };
      columns.push(added);
      byName.set(col.name, added);
      changes.push({ kind: 'add_column', column: col.name, to: col.type });
      writeTypes.set(col.name, col.type);
      continue;
    }
    if (existing.type === col.type) {
      writeTypes.set(col.name, col.type);
      continue;
    }
    const common =
      commonType(existing.type, col.type) ??
      (options.widenToText && textHolds(existing.type) && textHolds(col.type) ? 'VARCHAR' : undefined);
    if (common === undefined) {
      incompatible.push({ column: col.name, tableType: existing.type, batchType: col.type });
      continue;
    }
    if (common !== existing.type) {
      changes.push({ kind: 'widen', column: col.name, from: existing.type, to: common });
      existing.type = common;
    }
    writeTypes.set(col.name, common);
  }
  if (contract === 'freeze' && changes.length > 0) {
    for (const ch of changes) {
      incompatible.push({ column: ch.column, tableType: ch.from ?? '(absent)', batchType: ch.to });
    }
  }
  return { schema: { columns }, changes, incompatible, writeTypes };
}

/** Types whose values cast to VARCHAR and read back as the same text (scalars and JSON, not nested types). */
function textHolds(type: string): boolean {
  return isPlainScalarType(type) || type === 'JSON' || type === 'VARCHAR';
}
