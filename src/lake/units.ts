/**
 * What a source hands the lake: a stream's spec (table, disposition, key, contract) and read
 * units (a file DuckDB opens, or a batch a source wrote, plus the ledger entry and state that
 * become true once the unit is committed). Sources produce these; the lake reads and commits.
 */
import type { LedgerEntry } from '../catalog/types.js';
import type { CsvOptions, JsonOptions, WriteDisposition } from '../config/schema.js';
import type { SchemaContract } from './schema-evolution.js';

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
   * A column's type changed at the source into one the lake's type has no common numeric or
   * temporal type with: the column becomes text instead of refusing the batch (CDC streams,
   * whose events must all land).
   */
  widenToText?: boolean | undefined;
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
  /**
   * Records the source refused before the reader saw them (a pushed event failing its JSON
   * Schema), with the reason: they go to quarantine with the unit, `raw` as received.
   */
  rejected?: readonly { reason: string; errorType: string; raw: string }[] | undefined;
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
