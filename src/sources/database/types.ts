/**
 * What the database connectors share: a table's columns as the source declares them and as
 * the lake types them, and the stream each table or query becomes.
 */
import type { ExtractMode } from '../../config/database.js';
import { rm } from 'node:fs/promises';
import { ConfigError, DipError } from '../../core/errors.js';
import type { PlanContext, ReadUnit, StreamSpec } from '../types.js';
import { savedTies, type TieCounts } from './ties.js';

export interface DbColumn {
  name: string;
  /** The source's type, as its catalog spells it (numeric(12,2), timestamp with time zone, int[]). */
  sourceType: string;
  /** The DuckDB type the lake keeps it as. */
  lakeType: string;
  /** SQL (source dialect) that yields the column as text DuckDB reads as `lakeType`. */
  select: string;
}

export interface DbTable {
  schema: string;
  name: string;
  columns: DbColumn[];
  primaryKey: string[];
  /** Whether rows have physical addresses to split a full read by (PostgreSQL ctid). */
  splittable: boolean;
}

/** Lists and describes what the database holds; one implementation per dialect. */
export interface DbIntrospector {
  /** Tables and views of a schema. */
  listTables(schema: string): Promise<string[]>;
  describeTable(schema: string, name: string): Promise<DbTable | undefined>;
  /** The columns a query returns. */
  describeQuery(sql: string): Promise<DbColumn[]>;
  defaultSchema(): Promise<string>;
}

/** A stream of a database source, with everything resolved against the database. */
export interface DbStream {
  spec: StreamSpec;
  mode: ExtractMode;
  /** Present for table streams. */
  table?: DbTable | undefined;
  /** Present for query streams: the user's SELECT. */
  query?: string | undefined;
  columns: DbColumn[];
  /** The key the incremental read orders by: the cursor column, then the primary key. */
  cursor?: DbColumn | undefined;
  lagMs?: number | undefined;
  where?: string | undefined;
  chunkRows: number;
  /** Table streams: which of the table's columns are read (applied again when the table changes shape). */
  columnChoice?: ColumnChoice | undefined;
  /** A named table the database does not hold (dropped, renamed): the stream fails with this when run. */
  missing?: Error | undefined;
}

/** The columns dip.yaml selects of a table: `only` (or all), less `exclude`, plus `always` (key, cursor). */
export interface ColumnChoice {
  only?: readonly string[] | undefined;
  exclude: readonly string[];
  always: readonly string[];
}

/** The columns of `columns` (a table's, in order) the choice reads. */
export function chooseColumns<C extends { name: string }>(
  choice: ColumnChoice | undefined,
  columns: readonly C[],
): C[] {
  if (!choice) return [...columns];
  return columns.filter(
    (c) =>
      choice.always.includes(c.name) ||
      ((choice.only ? choice.only.includes(c.name) : true) && !choice.exclude.includes(c.name)),
  );
}

/** Where an incremental read stopped: the last (cursor, primary key) committed, as text. */
export interface IncrementalState {
  cursor_column: string;
  /** Cursor then primary-key values of the last row read, in the source's text form. */
  last: (string | null)[] | null;
  /** Without a primary key: the rows at the last cursor value that landed, by content (ties.ts). */
  tied?: TieCounts;
}

/** Lake-visible description of a source column, recorded on every unit's position. */
export function columnTypes(columns: readonly DbColumn[]): Record<string, string> {
  return Object.fromEntries(columns.map((c) => [c.name, `${c.sourceType} -> ${c.lakeType}`]));
}

/**
 * The columns an incremental read orders by (cursor, then primary key) and where the last run
 * stopped; a saved position for another cursor column is an error, not a silent restart.
 * `keyless`: the stream has no primary key, so ties at the last cursor value are kept by
 * content (`tied`: undefined for a position saved before ties were kept, or none yet).
 */
export function incrementalStart(
  s: DbStream,
  state: unknown,
  label: string,
): {
  cursor: DbColumn;
  keys: DbColumn[];
  last: (string | null)[] | null;
  keyless: boolean;
  tied: TieCounts | undefined;
} {
  const cursor = s.cursor as DbColumn;
  const keys = [
    cursor,
    ...s.spec.primaryKey.filter((k) => k !== cursor.name).map((k) => s.columns.find((c) => c.name === k) as DbColumn),
  ];
  const prior = (state ?? undefined) as IncrementalState | undefined;
  if (prior && prior.cursor_column !== cursor.name) {
    throw new DipError(
      'config',
      `${label}.${s.spec.name}: cursor changed from ${prior.cursor_column} to ${cursor.name}; the saved position means nothing for the new column. Reset the stream's state (dip state reset ${label.split('.')[0] ?? ''} --stream ${s.spec.name}) to read it from the start`,
    );
  }
  const keyless = s.spec.primaryKey.length === 0;
  const tied = keyless ? savedTies(prior?.tied, `${label}.${s.spec.name}`) : undefined;
  return { cursor, keys, last: prior?.last ?? null, keyless, tied };
}

/** A unit of a CSV file the source wrote with the stream's columns (removed once staged). */
export function csvUnit(
  s: DbStream,
  path: string,
  bytes: number,
  label: string,
  position: Record<string, unknown>,
  state?: unknown,
): ReadUnit {
  return {
    label,
    input: { path, format: 'csv', columns: s.columns.map((c) => ({ name: c.name, type: c.lakeType })) },
    bytes,
    position: { ...position, columns: columnTypes(s.columns) },
    ...(state === undefined ? {} : { state }),
    dispose: () => rm(path, { force: true }),
  };
}

/**
 * How many streams of a database source run at once: CDC streams share one change feed and
 * run together (with --follow they never end); the others are read one after another beside them.
 */
export function databaseStreamConcurrency(streams: readonly DbStream[] | undefined): number {
  const cdc = streams?.filter((s) => s.mode === 'cdc').length ?? 0;
  const others = (streams?.length ?? 0) - cdc;
  return Math.max(1, cdc + (others > 0 ? 1 : 0));
}

/** CDC streams share one feed: a run must read all of them or none. */
export function assertCdcStreamsTogether(
  cdcStreams: readonly DbStream[],
  ctx: PlanContext,
  label: string,
  feed: string,
): void {
  const missing = cdcStreams.filter((d) => !ctx.streams.includes(d.spec.name)).map((d) => d.spec.name);
  if (missing.length) {
    throw new ConfigError(
      `${label}: change-data-capture streams share one ${feed} and run together; this run leaves out ${missing.join(', ')} (run without --stream, or name all of: ${cdcStreams.map((d) => d.spec.name).join(', ')})`,
    );
  }
}

/** The SELECT list rendering each column as the text DuckDB reads (`quote`: the dialect's identifier quoting). */
export function selectList(columns: readonly DbColumn[], quote: (name: string) => string): string {
  return columns.map((c) => (c.select === quote(c.name) ? c.select : `${c.select} AS ${quote(c.name)}`)).join(', ');
}
