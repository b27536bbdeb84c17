/**
 * The destination contract: where DIP sends what it landed. A destination is its folder
 * `destinations/<kind>/`: `spec.ts` (kind, config schema, example) listed in ../destinations.ts,
 * and `index.ts` (default export: `open`, imported only when used). An open destination takes
 * messages, each with a stable id (the same change always gets the same id), and publishes them
 * in order; `publish` resolves once the destination acknowledged all of them.
 */
import type { z } from 'zod';

export interface DestinationSpec<Schema extends z.ZodType = z.ZodType, Kind extends string = string> {
  kind: Kind;
  description: string;
  schema: Schema;
  example: z.input<Schema>;
}

export function defineDestinationSpec<Schema extends z.ZodType, const Kind extends string>(
  spec: DestinationSpec<Schema, Kind>,
): DestinationSpec<Schema, Kind> {
  return spec;
}

/** One message: a stable id (dedup), a key (partitioning), the value (JSON text). */
export interface OutMessage {
  id: string;
  key: string | null;
  value: string;
}

export interface OpenDestination {
  /** Publishes in order; resolves once every message is acknowledged by the destination. */
  publish(messages: readonly OutMessage[]): Promise<void>;
  close(): Promise<void>;
}

export interface DestinationModule<Spec extends DestinationSpec = DestinationSpec> {
  spec: Spec;
  open(config: z.output<Spec['schema']>, context: { baseDir: string }): Promise<OpenDestination>;
}

export function defineDestination<Spec extends DestinationSpec>(d: DestinationModule<Spec>): DestinationModule<Spec> {
  return d;
}

/*
 * Warehouses (h-dest extension of the contract): a destination that loads lake tables as
 * tables. Its module adds `openWarehouse`; `publish` stays for message destinations.
 */

export type LoadMode = 'replace' | 'append' | 'merge';

/** One column as the lake types it (a DuckDB type string) and its doc, if any. */
export interface LoadColumn {
  name: string;
  type: string;
  comment?: string | undefined;
}

/** One table load: the rows to write as a CSV file (no header, DuckDB quoting; NULL unquoted empty). */
export interface TableLoad {
  /** The lake table, e.g. `silver.orders` (the key of the destination's load marker). */
  lakeTable: string;
  schema: string | undefined;
  table: string;
  mode: LoadMode;
  key: readonly string[];
  columns: readonly LoadColumn[];
  indexes: readonly string[];
  /** replace: every row; append: the new commits' rows; merge: the changed rows (latest per key). */
  rowsCsv: string;
  /** merge: the keys deleted since the last load (CSV of the key columns), or undefined. */
  deletesCsv?: string | undefined;
  /** The lake commit this load brings the target to, recorded in the same transaction. */
  commit: number;
}

export interface LoadOutcome {
  rows: number;
  bytes: number;
  deleted: number;
}

export interface Warehouse {
  /** The last lake commit loaded into this target (recorded in the destination), or null. */
  lastLoaded(load: { lakeTable: string; schema: string | undefined; table: string }): Promise<number | null>;
  load(load: TableLoad): Promise<LoadOutcome>;
  close(): Promise<void>;
}

export interface WarehouseModule<Spec extends DestinationSpec = DestinationSpec> {
  spec: Spec;
  openWarehouse(config: z.output<Spec['schema']>, context: { baseDir: string }): Promise<Warehouse>;
}

export function defineWarehouse<Spec extends DestinationSpec>(d: WarehouseModule<Spec>): WarehouseModule<Spec> {
  return d;
}
