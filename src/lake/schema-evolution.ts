import type { Column, TableSchema } from '../catalog/types.js';
import { commonType } from './duck-types.js';

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

/** Compares a batch's columns with the table's current schema (undefined: a new table). */
export function evolveSchema(
  current: TableSchema | undefined,
  batch: readonly Column[],
  contract: SchemaContract,
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
    const common = commonType(existing.type, col.type);
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
