/**
 * Turns a database source's `tables` and `queries` into streams, checked against what the
 * database holds: names and patterns resolved, columns selected, keys and cursors found.
 * Every mistake names the table or column and what the database has instead.
 */
import type { DatabaseSourceConfig, DbTableConfig, ExtractMode } from '../../config/database.js';
import type { WriteDisposition } from '../../config/schema.js';
import { ConfigError } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import { streamNameOf } from '../../config/stream-names.js';
import type { StreamSpec } from '../types.js';
import {
  type ColumnChoice,
  type DbIntrospector,
  type DbColumn,
  type DbStream,
  type DbTable,
  chooseColumns,
} from './types.js';
import { isDateOrTimestamp } from '../../lake/duck-types.js';

/** `*` and `?` globs, anchored, case-insensitive (database names rarely differ by case only). */
export function globRegex(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${body}$`, 'i');
}

function splitName(qualified: string, defaultSchema: string): { schema: string; name: string } {
  const dot = qualified.indexOf('.');
  return dot < 0
    ? { schema: defaultSchema, name: qualified }
    : { schema: qualified.slice(0, dot), name: qualified.slice(dot + 1) };
}

type TableOptions = Exclude<DbTableConfig, string>;

interface Candidate {
  schema: string;
  name: string;
  stream: string;
  destination: string;
  options: Partial<TableOptions>;
  /** Config path for messages. */
  at: string;
}

export async function resolveStreams(
  config: DatabaseSourceConfig,
  sourceLabel: string,
  db: DbIntrospector,
): Promise<DbStream[]> {
  const defaultSchema = config.schema ?? (await db.defaultSchema());
  const candidates: Candidate[] = [];
  for (const [i, entry] of config.tables.entries()) {
    const at = `${sourceLabel}.tables[${i}]`;
    const options: Partial<TableOptions> = typeof entry === 'string' ? {} : entry;
    if (typeof entry === 'string' || 'name' in entry) {
      const qualified = typeof entry === 'string' ? entry : entry.name;
      const { schema, name } = splitName(qualified, defaultSchema);
      const stream =
        (typeof entry === 'string' ? undefined : entry.stream) ??
        streamNameOf(schema === defaultSchema ? name : `${schema}_${name}`);
      candidates.push({
        schema,
        name,
        stream,
        destination: (typeof entry === 'string' ? undefined : entry.table) ?? stream,
        options,
        at,
      });
      continue;
    }
    const { schema, name: glob } = splitName(entry.pattern, defaultSchema);
    const include = globRegex(glob);
    const exclude = (entry.exclude ?? []).map(globRegex);
    const names = (await db.listTables(schema)).filter((t) => include.test(t) && !exclude.some((x) => x.test(t)));
    if (names.length === 0) {
      throw new ConfigError(
        `${at}: pattern "${entry.pattern}" matches no table in schema ${schema} (tables: ${(await db.listTables(schema)).join(', ') || '(none)'})`,
      );
    }
    for (const name of names.sort()) {
      const stream = streamNameOf(schema === defaultSchema ? name : `${schema}_${name}`);
      candidates.push({ schema, name, stream, destination: stream, options, at: `${at} (${name})` });
    }
  }
  const streams: DbStream[] = [];
  const seen = new Map<string, string>();
  const claim = (stream: string, at: string) => {
    const other = seen.get(stream);
    if (other) throw new ConfigError(`${at}: stream "${stream}" is also read by ${other}; set stream: on one of them`);
    seen.set(stream, at);
  };
  for (const c of candidates) {
    claim(c.stream, c.at);
    const table = await db.describeTable(c.schema, c.name);
    if (!table) {
      // A table named in dip.yaml that is not there (dropped, renamed, a typo) fails its own
      // stream when run; the source's other streams go on.
      const known = await db.listTables(c.schema);
      const missing = new ConfigError(
        `${c.at}: no table or view ${c.schema}.${c.name} in the database (in ${c.schema}: ${known.slice(0, 30).join(', ') || '(none)'}); if it was dropped or renamed, remove it from dip.yaml or point it at the new name`,
      );
      streams.push(missingStream(config, c, missing));
      continue;
    }
    streams.push(tableStream(config, c, table));
  }
  for (const [name, q] of Object.entries(config.queries)) {
    const at = `${sourceLabel}.queries.${name}`;
    claim(name, at);
    const columns = await db.describeQuery(q.sql);
    const primaryKey = q.primary_key ?? [];
    checkColumns(at, 'primary_key', primaryKey, columns);
    streams.push(
      finish(at, {
        name,
        destination: q.table ?? name,
        mode: q.mode,
        columns,
        primaryKey,
        cursorName: q.cursor,
        lag: q.lag,
        where: undefined,
        writeDisposition: q.write_disposition,
        chunkRows: q.chunk_rows ?? config.extract.chunk_rows,
        query: q.sql,
      }),
    );
  }
  return streams;
}

/** The stream of a named table the database does not hold: planning it fails with `missing`. */
function missingStream(config: DatabaseSourceConfig, c: Candidate, missing: ConfigError): DbStream {
  const mode = c.options.mode ?? config.mode;
  return {
    spec: {
      name: c.stream,
      table: mode === 'cdc' ? `${c.destination}_changes` : c.destination,
      writeDisposition: mode === 'full' ? 'replace' : mode === 'cdc' ? 'append' : 'merge',
      primaryKey: c.options.primary_key ?? [],
      schemaContract: 'evolve',
      ...(mode === 'cdc' ? { currentState: { table: c.destination }, widenToText: true } : {}),
    },
    mode,
    columns: [],
    chunkRows: c.options.chunk_rows ?? config.extract.chunk_rows,
    missing,
  };
}

function tableStream(config: DatabaseSourceConfig, c: Candidate, table: DbTable): DbStream {
  const o = c.options;
  const qualified = `${table.schema}.${table.name}`;
  if (o.columns) checkColumns(c.at, 'columns', o.columns, table.columns);
  if (o.exclude_columns) checkColumns(c.at, 'exclude_columns', o.exclude_columns, table.columns);
  const primaryKey = o.primary_key ?? table.primaryKey;
  checkColumns(c.at, 'primary_key', primaryKey, table.columns);
  // The key and cursor are always read: merge and keyset pagination need them.
  const columnChoice: ColumnChoice = {
    only: o.columns,
    exclude: o.exclude_columns ?? [],
    always: [...primaryKey, ...(o.cursor ? [o.cursor] : [])],
  };
  const columns = chooseColumns(columnChoice, table.columns);
  const mode = o.mode ?? config.mode;
  if (mode === 'cdc' && primaryKey.length === 0) {
    throw new ConfigError(
      `${c.at}: cdc on ${qualified} needs a primary key to keep the current table; the table has none. Add one (PostgreSQL: or set primary_key: [..] and ALTER TABLE ${qualified} REPLICA IDENTITY FULL)`,
    );
  }
  return finish(c.at, {
    name: c.stream,
    destination: c.destination,
    mode,
    columns,
    primaryKey,
    cursorName: o.cursor,
    lag: o.lag,
    where: o.where,
    writeDisposition: o.write_disposition,
    chunkRows: o.chunk_rows ?? config.extract.chunk_rows,
    table: { ...table, columns },
    columnChoice,
  });
}

interface StreamDraft {
  name: string;
  destination: string;
  mode: ExtractMode;
  columns: DbColumn[];
  primaryKey: string[];
  cursorName: string | undefined;
  lag: string | undefined;
  where: string | undefined;
  writeDisposition: WriteDisposition | undefined;
  chunkRows: number;
  table?: DbTable;
  query?: string;
  columnChoice?: ColumnChoice;
}

function finish(at: string, d: StreamDraft): DbStream {
  let cursor: DbColumn | undefined;
  if (d.mode === 'incremental') {
    if (!d.cursorName) throw new ConfigError(`${at}: mode incremental needs cursor: <column> (e.g. updated_at or id)`);
    checkColumns(at, 'cursor', [d.cursorName], d.columns);
    cursor = d.columns.find((c) => c.name === d.cursorName);
  }
  if (d.lag !== undefined && !(cursor && isDateOrTimestamp(cursor.lakeType))) {
    throw new ConfigError(
      `${at}: lag applies to a date or timestamp cursor; ${cursor ? `${cursor.name} is ${cursor.sourceType}` : 'the stream has no cursor'}`,
    );
  }
  const writeDisposition =
    d.writeDisposition ??
    (d.mode === 'full' ? 'replace' : d.mode === 'cdc' || d.primaryKey.length > 0 ? 'merge' : 'append');
  if (writeDisposition === 'merge' && d.primaryKey.length === 0) {
    throw new ConfigError(
      `${at}: write_disposition merge needs a primary key; the ${d.table ? 'table has none' : 'query declares none'} (set primary_key: [..])`,
    );
  }
  const spec: StreamSpec = {
    name: d.name,
    table: d.mode === 'cdc' ? `${d.destination}_changes` : d.destination,
    writeDisposition: d.mode === 'cdc' ? 'append' : writeDisposition,
    primaryKey: d.primaryKey,
    schemaContract: 'evolve',
    ...(d.mode === 'cdc' ? { currentState: { table: d.destination }, widenToText: true } : {}),
  };
  return {
    spec,
    mode: d.mode,
    table: d.table,
    query: d.query,
    columns: d.columns,
    cursor,
    lagMs: d.lag === undefined ? undefined : durationMs(d.lag, `${at}.lag`),
    where: d.where,
    chunkRows: d.chunkRows,
    columnChoice: d.columnChoice,
  };
}

function checkColumns(at: string, field: string, names: readonly string[], columns: readonly DbColumn[]): void {
  const known = columns.map((c) => c.name);
  const missing = names.filter((n) => !known.includes(n));
  if (missing.length)
    throw new ConfigError(
      `${at}.${field}: no column ${missing.map((m) => `"${m}"`).join(', ')} (columns: ${known.join(', ')})`,
    );
}
