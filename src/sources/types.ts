/**
 * The connector contract. A connector is declared once (name, config spec, capabilities,
 * factory); an instance lists its streams and yields read units. Each unit is something the
 * engine can read (a file DuckDB opens, or a batch a source wrote to a local NDJSON file)
 * plus the state that becomes true once it is committed: a ledger entry, a cursor.
 * No I/O in factories; every long call takes an AbortSignal.
 */
import type { z } from 'zod';
import type { LedgerEntry } from '../catalog/types.js';
import type { CsvOptions, JsonOptions, WriteDisposition } from '../config/schema.js';
import type { SchemaContract } from '../lake/schema-evolution.js';

export type InputFormat = 'csv' | 'json' | 'ndjson' | 'parquet';

export interface StreamSpec {
  /** Stream name within the source. */
  name: string;
  /** Destination table name within each zone. */
  table: string;
  writeDisposition: WriteDisposition;
  primaryKey: string[];
  deletedColumn?: string | undefined;
  schemaContract: SchemaContract;
  /**
   * Change-data-capture streams: the stream's table keeps every change event (the change log)
   * and `currentState.table` is kept equal to the source table by merging the events by
   * primary key in order (`_dip_deleted` marks deletes).
   */
  currentState?: { table: string } | undefined;
}

export interface FileInput {
  /** Absolute local path DuckDB reads. */
  path: string;
  format: InputFormat;
  csv?: CsvOptions | undefined;
  /** JSON/NDJSON options the stream declared (column types). */
  json?: JsonOptions | undefined;
  /**
   * Every top-level field of the records, when the source knows them (it wrote the file):
   * the reader then infers types from a small sample and reads with exactly these columns,
   * instead of sampling the whole file twice.
   */
  fields?: readonly string[] | undefined;
  /**
   * CSV a source wrote itself with a header line and exactly these columns and types:
   * read without sniffing; an unquoted empty field is NULL, a quoted one ("") the empty string.
   */
  columns?: readonly { name: string; type: string }[] | undefined;
}

export interface ReadUnit {
  /** Names the unit in progress output and errors (a file path, a page range). */
  label: string;
  /** The records to read; absent for a unit that only carries state (and maybe raw pages). */
  input?: FileInput | undefined;
  /**
   * Raw envelopes the source wrote itself, complete (every raw-zone field, `seq` from 1),
   * one per line: API sources keep whole response pages, not records. Only compressed.
   */
  rawPages?: string | undefined;
  /** Bytes the unit covers, for progress and run stats. */
  bytes: number;
  /** Where the records came from, recorded on every raw envelope and bronze file. */
  position: Record<string, unknown>;
  /** Ledger entry committed with the unit's data. */
  ledger?: LedgerEntry;
  /**
   * Ledger entries to update without reading anything (inputs recognised by content in a
   * copied project: their new modification times are recorded so the next run need not hash
   * them again). Only on a unit without input.
   */
  ledgerRefresh?: LedgerEntry[] | undefined;
  /**
   * The `_dip_source_file` of rows this unit replaces (an input that changed since it was
   * committed); when absent, the ledger entry's path if the ledger already held it.
   */
  supersedes?: string | undefined;
  /** Stream state committed with the unit's data. */
  state?: unknown;
  /**
   * Change-data-capture streams: this unit is a full snapshot of the table, which replaces the
   * current-state table instead of merging into it.
   */
  snapshot?: boolean | undefined;
  /**
   * Frees what the source made for this unit (e.g. a page it wrote to a local NDJSON file);
   * called once the unit is committed or has failed.
   */
  dispose?: () => Promise<void>;
}

/** Durable state outside any stream (e.g. rotated OAuth refresh tokens), kept in the catalog. */
export interface StateStore {
  load(): Promise<unknown>;
  save(value: unknown): Promise<void>;
}

export interface PlanContext {
  pipeline: string;
  source: string;
  ledger: ReadonlyMap<string, LedgerEntry>;
  state: unknown;
  signal: AbortSignal;
  /** State of the source as a whole, shared by its streams. */
  sourceState: StateStore;
  /** Re-fetch only the requests an earlier run recorded as failed (`dip run --retry-failed`). */
  retryFailed: boolean;
  /** Local directory for files the source writes for its units. */
  stagingDir: string;
  /** The run reading the stream (raw envelopes a source writes itself carry it). */
  runId: string;
  /** Streaming sources (CDC): keep reading until interrupted instead of stopping once caught up. */
  follow: boolean;
  /** Every stream of this source the run reads (streams that share one feed must run together). */
  streams: readonly string[];
}

export interface StreamPlan {
  /**
   * Units in commit order. A list when the inputs are known up front (files); an async
   * iterable when the source discovers them as it reads (API pages, database chunks): the
   * runner commits each before asking for the next, so state advances unit by unit.
   */
  units: readonly ReadUnit[] | AsyncIterable<ReadUnit>;
  /** Known totals, for progress; omitted when the source cannot tell in advance. */
  total?: { units: number; bytes: number } | undefined;
  /** Inputs seen but not read because the ledger says they are already in the lake. */
  skipped: number;
  /** Things the user should know that do not fail the stream (a glob that matched no files). */
  warnings?: string[] | undefined;
}

export interface SourceInstance {
  /**
   * Asks the source what it holds (tables matching a pattern, their keys and types) before
   * `streams()` is called; sources whose streams are all declared do not need it.
   */
  discover?(signal: AbortSignal): Promise<void>;
  streams(): StreamSpec[];
  plan(stream: StreamSpec, context: PlanContext): Promise<StreamPlan>;
  /**
   * Streams this one needs finished first (a child resource's parent). With
   * `streamConcurrency` > 1 the runner starts a stream once those are done.
   */
  dependsOn?(stream: StreamSpec): string[];
  /** How many of this source's streams may run at once (default 1: in order). */
  readonly streamConcurrency?: number;
  /** Counters the source kept for a stream (requests, retries, …), added to the run's stats. */
  metrics?(stream: StreamSpec): Record<string, number>;
  close(): Promise<void>;
}

export interface ConnectorCapabilities {
  incremental: boolean;
  /** Whether the connector needs the processed-file ledger. */
  fileLedger: boolean;
  formats?: InputFormat[];
}

export interface Connector<Spec extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  spec: Spec;
  capabilities: ConnectorCapabilities;
  create(config: z.infer<Spec>, context: { baseDir: string; sourceName: string }): SourceInstance;
}

export function defineConnector<Spec extends z.ZodType>(connector: Connector<Spec>): Connector<Spec> {
  return connector;
}
