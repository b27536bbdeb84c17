import { join } from 'node:path';
import { DipError, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Column } from '../catalog/types.js';
import type { CsvOptions } from '../config/schema.js';
import type { FileInput } from './units.js';
import type { Engine } from './engine.js';
import { LINES_COPY_OPTIONS, lineScan } from './scan.js';
import { lit } from './sql.js';
import { isDateOrTimestamp } from './duck-types.js';

/** A malformed record: where it was, what was wrong, and the text as it stood. */
export interface RejectedRecord {
  line: number | null;
  column: string | null;
  errorType: string;
  reason: string;
  raw: string | null;
}

/**
 * How the engine reads one input: a typed relation for bronze, an untyped one for the raw
 * zone, and the records the reader refused. Readers stream: DuckDB never holds the file.
 */
export interface PreparedInput {
  /** A FROM-able relation of typed records. */
  typed: string;
  /** A FROM-able relation of records as the source wrote them (CSV: every field as text). */
  raw: string;
  /** The raw relation has one JSON column `json` holding each record's text (JSON inputs). */
  rawIsJson?: boolean;
  /**
   * How `raw` reads from a stored copy of the input file (`storedRawRelation`); absent when
   * the raw relation is not the input as it is (NDJSON with malformed lines taken out).
   */
  stored?: RawRead | undefined;
  /**
   * A relation with a row when the input holds at least one record (no rejects table; an
   * error means "not empty": the read proper quarantines what it refuses). Inputs whose
   * columns are inferred are checked, so an empty one decides no type.
   */
  probe?: string;
  /**
   * Parse options the typing of these columns depended on (CSV date/timestamp formats), kept
   * so replay types raw records the same way.
   */
  typing(columns: readonly Column[]): Promise<Record<string, string>>;
  rejected(): Promise<RejectedRecord[]>;
  /** A second attempt after a reader error (malformed NDJSON lines, late type changes), or undefined. */
  recover(error: unknown): Promise<PreparedInput | undefined>;
  cleanup(): Promise<void>;
}

export async function prepareInput(engine: Engine, input: FileInput, stagingDir: string): Promise<PreparedInput> {
  switch (input.format) {
    case 'csv':
      return input.columns
        ? prepareSourceCsv(engine, input.path, input.columns)
        : prepareCsv(engine, input.path, input.csv);
    case 'ndjson':
    case 'json':
      return input.fields
        ? prepareKnownJson(engine, input.path, input.format, stagingDir, input.fields)
        : prepareJson(engine, input.path, input.format, stagingDir, 20480);
    case 'parquet': {
      const rel = `read_parquet(${lit(input.path)}, hive_partitioning=false)`;
      return { ...simple(rel, rel), stored: { kind: 'parquet' } };
    }
  }
}

/** How envelopes are derived from a stored copy of an input (kept in the raw file's metadata). */
export type RawRead =
  | { kind: 'csv'; csv?: CsvOptions | undefined; args?: string | undefined }
  | { kind: 'source-csv'; columns: string[]; types?: string[] | undefined }
  | { kind: 'json'; format: 'json' | 'ndjson' }
  | { kind: 'parquet' }
  | { kind: 'events' };

/**
 * The records of a stored input exactly as ingest's raw relation read them, as `(payload)`:
 * CSV fields as text, JSON records as their own text, Parquet rows as JSON. `compression` is
 * the stored copy's (zstd, or none for inputs that came compressed).
 */
export function storedRawRelation(uri: string, read: RawRead, compression: string): string {
  const z = compression === 'zstd' ? `compression='zstd'` : `compression='auto'`;
  switch (read.kind) {
    case 'csv': {
      // The dialect sniffed at ingest, when recorded: binding then reads nothing (a view over
      // many files would otherwise sniff, and hold a buffer for, every one of them).
      const params = read.args ? [read.args] : [...csvParams(read.csv), 'all_varchar=true'];
      return `(SELECT to_json(r) AS payload FROM read_csv(${[lit(uri), ...params, 'ignore_errors=true', z].join(', ')}) r)`;
    }
    case 'source-csv': {
      const columns = `columns={${read.columns.map((c) => `${lit(c)}: 'VARCHAR'`).join(', ')}}`;
      return `(SELECT to_json(r) AS payload FROM read_csv(${[lit(uri), ...SOURCE_CSV_BASE, columns, 'ignore_errors=true', z].join(', ')}) r)`;
    }
    case 'json':
      return `(SELECT json AS payload FROM read_json_objects(${lit(uri)}, format=${lit(read.format === 'json' ? 'array' : 'newline_delimited')}, hive_partitioning=false, ${z}))`;
    case 'events':
      return `(SELECT json AS payload FROM read_json_objects(${lit(uri)}, format='newline_delimited', hive_partitioning=false, ${z}))`;
    case 'parquet':
      return `(SELECT to_json(r) AS payload FROM read_parquet(${lit(uri)}, hive_partitioning=false) r)`;
  }
}

/**
 * A stored CSV extract a source wrote (`source-csv` with types) read with the types ingest
 * read it with: replay types records exactly as the first ingest did. Records that did not
 * convert were quarantined then, and are skipped here.
 */
export function storedTypedRelation(uri: string, read: RawRead, compression: string): string | undefined {
  if (read.kind !== 'source-csv' || !read.types || read.types.length !== read.columns.length) return undefined;
  const types = read.types;
  const columns = `columns={${read.columns.map((c, i) => `${lit(c)}: ${lit(types[i] as string)}`).join(', ')}}`;
  const z = compression === 'zstd' ? `compression='zstd'` : `compression='auto'`;
  return `read_csv(${[lit(uri), ...SOURCE_CSV_BASE, columns, 'ignore_errors=true', z].join(', ')})`;
}

const NO_TYPING = async (): Promise<Record<string, string>> => ({});

function simple(typed: string, raw: string): PreparedInput {
  return {
    typed,
    raw,
    typing: NO_TYPING,
    rejected: async () => [],
    recover: async () => undefined,
    cleanup: async () => {},
  };
}

function csvParams(o: CsvOptions | undefined): string[] {
  const p: string[] = ['hive_partitioning=false'];
  if (!o) return p;
  if (o.delimiter !== undefined) p.push(`delim=${lit(o.delimiter)}`);
  if (o.quote !== undefined) p.push(`quote=${lit(o.quote)}`);
  if (o.escape !== undefined) p.push(`escape=${lit(o.escape)}`);
  if (o.header !== undefined) p.push(`header=${o.header}`);
  if (o.encoding !== 'utf-8') p.push(`encoding=${lit(o.encoding)}`);
  if (o.null_values) p.push(`nullstr=[${o.null_values.map(lit).join(', ')}]`);
  if (o.skip_rows !== undefined) p.push(`skip=${o.skip_rows}`);
  if (o.date_format) p.push(`dateformat=${lit(o.date_format)}`);
  if (o.timestamp_format) p.push(`timestampformat=${lit(o.timestamp_format)}`);
  return p;
}

/**
 * The reader arguments (after the path) that read a CSV file's records as text exactly as
 * ingest's raw relation does, with the dialect and columns the sniffer finds spelled out
 * (`auto_detect=false`), so reading them back needs no sniffing; undefined if DuckDB does
 * not say them in the expected form.
 */
export async function sniffedCsvArgs(
  engine: Engine,
  path: string,
  options: CsvOptions | undefined,
): Promise<string | undefined> {
  try {
    const rows = await engine.all(
      `SELECT Prompt AS p FROM sniff_csv(${[lit(path), ...csvParams(options), 'all_varchar=true'].join(', ')})`,
    );
    const prompt = String(rows[0]?.['p'] ?? '');
    const head = `FROM read_csv(${lit(path)}, `;
    if (!prompt.startsWith(head) || !prompt.endsWith(');') || !prompt.includes('auto_detect=false')) return undefined;
    return prompt.slice(head.length, -2);
  } catch {
    return undefined;
  }
}

/** Reader options of CSV a source wrote itself (RFC 4180, typed by the source, not sniffed). */
const SOURCE_CSV_BASE = [
  'hive_partitioning=false',
  'header=true',
  'auto_detect=false',
  "delim=','",
  `quote='"'`,
  `escape='"'`,
  'allow_quoted_nulls=false',
];

/**
 * CSV a source wrote with known columns and types (a database extract): no sniffing, RFC 4180
 * quoting, and a quoted empty field is an empty string while an unquoted one is NULL.
 */
async function prepareSourceCsv(
  engine: Engine,
  path: string,
  columns: readonly { name: string; type: string }[],
): Promise<PreparedInput> {
  const base = SOURCE_CSV_BASE;
  const spec = (type: (c: { type: string }) => string) =>
    `columns={${columns.map((c) => `${lit(c.name)}: ${lit(type(c))}`).join(', ')}}`;
  const params = { base, typed: [spec((c) => c.type)], raw: [spec(() => 'VARCHAR')] };
  // The source rendered every value from its declared type, so the fast read (no rejects
  // table) nearly always succeeds; a value that does not convert (a numeric NaN bound for
  // DECIMAL, a BC date) makes the read start over keeping rejects, to quarantine just it.
  const stored: RawRead = {
    kind: 'source-csv',
    columns: columns.map((c) => c.name),
    types: columns.map((c) => c.type),
  };
  return {
    ...simple(
      `read_csv(${[lit(path), ...base, ...params.typed].join(', ')})`,
      `read_csv(${[lit(path), ...base, ...params.raw].join(', ')})`,
    ),
    stored,
    recover: async () => ({ ...(await prepareCsv(engine, path, undefined, params)), typing: NO_TYPING, stored }),
  };
}

async function prepareCsv(
  engine: Engine,
  path: string,
  options: CsvOptions | undefined,
  params: { base: string[]; typed: string[]; raw: string[] } = {
    base: csvParams(options),
    typed: options?.columns
      ? [
          `types={${Object.entries(options.columns)
            .map(([k, v]) => `${lit(k)}: ${lit(v)}`)
            .join(', ')}}`,
        ]
      : [],
    raw: ['all_varchar=true'],
  },
): Promise<PreparedInput> {
  const id = newId().slice(-12);
  const rejectsTable = `dip_rejects_${id}`;
  const rejectsScan = `dip_rejscan_${id}`;
  const base = params.base;
  const typed = `read_csv(${[lit(path), ...base, ...params.typed, 'store_rejects=true', `rejects_table=${lit(rejectsTable)}`, `rejects_scan=${lit(rejectsScan)}`].join(', ')})`;
  const rawRejects = `dip_rawrej_${id}`;
  const raw = `read_csv(${[lit(path), ...base, ...params.raw, 'store_rejects=true', `rejects_table=${lit(rawRejects)}`, `rejects_scan=${lit(rawRejects + '_scan')}`].join(', ')})`;
  const drop = async () => {
    for (const t of [rejectsTable, rejectsScan, rawRejects, rawRejects + '_scan'])
      await engine.run(`DROP TABLE IF EXISTS ${t}`);
  };
  return {
    typed,
    raw,
    stored: { kind: 'csv', csv: options },
    probe: `read_csv(${[lit(path), ...base, 'all_varchar=true'].join(', ')})`,
    // Sniffing the formats costs a pass over the sample: only when a column needs them.
    typing: (columns) =>
      columns.some((c) => isDateOrTimestamp(c.type)) ? csvTyping(engine, path, base, options) : NO_TYPING(),
    async rejected() {
      const exists = await engine.all(`SELECT 1 FROM duckdb_tables() WHERE table_name = ${lit(rejectsTable)}`);
      if (exists.length === 0) return [];
      const rows = await engine.all(
        `SELECT line, column_name, error_type, csv_line, error_message FROM ${rejectsTable} ORDER BY line, column_idx`,
      );
      return rows.map((r) => ({
        line: r['line'] === null ? null : Number(r['line']),
        column: (r['column_name'] as string | null) ?? null,
        errorType: String(r['error_type']),
        reason: String(r['error_message']),
        raw: (r['csv_line'] as string | null) ?? null,
      }));
    },
    recover: async () => undefined,
    cleanup: drop,
  };
}

/**
 * The date and timestamp formats the CSV reader applies (declared, else sniffed), recorded
 * with the raw file so replay parses the text the same way.
 */
async function csvTyping(
  engine: Engine,
  path: string,
  base: string[],
  options: CsvOptions | undefined,
): Promise<Record<string, string>> {
  const typing: Record<string, string> = {};
  if (options?.date_format) typing['dateformat'] = options.date_format;
  if (options?.timestamp_format) typing['timestampformat'] = options.timestamp_format;
  if (typing['dateformat'] && typing['timestampformat']) return typing;
  const params = base.filter((p) => !p.startsWith('hive_partitioning'));
  const sniffed = (
    await engine.all(
      `SELECT DateFormat AS d, TimestampFormat AS t FROM sniff_csv(${[lit(path), ...params].join(', ')})`,
    )
  )[0];
  if (sniffed?.['d'] && !typing['dateformat']) typing['dateformat'] = String(sniffed['d']);
  if (sniffed?.['t'] && !typing['timestampformat']) typing['timestampformat'] = String(sniffed['t']);
  return typing;
}

/** Records sampled to type a file whose fields are known up front; a later value that does not convert re-reads with a full sample. */
const KNOWN_FIELDS_SAMPLE = 2048;

/**
 * JSON records whose fields the source listed: types come from a small sample and the read
 * names its columns explicitly (one inference, not one per statement). If the sample missed
 * a field, the whole file is sampled instead: an explicit column list would drop that field.
 */
async function prepareKnownJson(
  engine: Engine,
  path: string,
  format: 'json' | 'ndjson',
  stagingDir: string,
  fields: readonly string[],
): Promise<PreparedInput> {
  const fmt = format === 'json' ? 'array' : 'newline_delimited';
  const columns = await engine.describe(
    `SELECT * FROM read_json(${lit(path)}, format=${lit(fmt)}, sample_size=${KNOWN_FIELDS_SAMPLE}, hive_partitioning=false)`,
  );
  const sampled = new Set(columns.map((c) => c.name));
  if (fields.length !== sampled.size || fields.some((f) => !sampled.has(f)))
    return prepareJson(engine, path, format, stagingDir, -1);
  const spec = columns.map((c) => `${lit(c.name)}: ${lit(c.type)}`).join(', ');
  const prepared = await prepareJson(engine, path, format, stagingDir, KNOWN_FIELDS_SAMPLE);
  return {
    ...prepared,
    typed: `read_json(${lit(path)}, format=${lit(fmt)}, columns={${spec}}, hive_partitioning=false)`,
  };
}

async function prepareJson(
  engine: Engine,
  path: string,
  format: 'json' | 'ndjson',
  stagingDir: string,
  sampleSize: number,
  rejected: RejectedRecord[] = [],
  cleanupFiles: string[] = [],
): Promise<PreparedInput> {
  const fmt = format === 'json' ? 'array' : 'newline_delimited';
  const rel = `read_json(${lit(path)}, format=${lit(fmt)}, sample_size=${sampleSize}, hive_partitioning=false)`;
  // Raw keeps each record's own JSON (big integers, timestamp text, key order), not our typing of it.
  const raw = `(SELECT json FROM read_json_objects(${lit(path)}, format=${lit(fmt)}, hive_partitioning=false))`;
  return {
    typed: rel,
    raw,
    probe: raw,
    rawIsJson: true,
    // The cleaned copy of an NDJSON file with malformed lines is not the input as it arrived.
    stored: cleanupFiles.length === 0 ? { kind: 'json', format } : undefined,
    typing: NO_TYPING,
    rejected: async () => rejected,
    async recover(error) {
      const message = errorMessage(error);
      if (
        /Could not convert|Failed to cast|conversion|unknown key|transform error/i.test(message) &&
        sampleSize !== -1
      ) {
        // A type that changed after the sampled rows: sample the whole file instead.
        return prepareJson(engine, path, format, stagingDir, -1, rejected, cleanupFiles);
      }
      if (/Malformed JSON/i.test(message) && format === 'ndjson' && cleanupFiles.length === 0) {
        const clean = join(stagingDir, `clean-${newId()}.ndjson`);
        const bad = await splitNdjson(engine, path, clean);
        return prepareJson(engine, clean, format, stagingDir, sampleSize, bad, [clean]);
      }
      if (format === 'json') {
        throw new DipError('input', `${path}: not a readable JSON array of objects: ${message}`, { cause: error });
      }
      return undefined;
    },
    async cleanup() {
      const { rm } = await import('node:fs/promises');
      for (const f of cleanupFiles) await rm(f, { force: true });
    },
  };
}

/** Copies the valid lines of an NDJSON file to `cleanPath` and returns the invalid ones. */
async function splitNdjson(engine: Engine, path: string, cleanPath: string): Promise<RejectedRecord[]> {
  const lines = `(SELECT row_number() OVER () AS line, text FROM ${lineScan(path)})`;
  await engine.run(
    `CREATE OR REPLACE TEMP TABLE dip_ndjson_lines AS SELECT line, text, json_valid(text) AS ok FROM ${lines}`,
  );
  try {
    await engine.copy(
      `COPY (SELECT text FROM dip_ndjson_lines WHERE ok AND trim(text) <> '' ORDER BY line) TO ${lit(cleanPath)} (${LINES_COPY_OPTIONS})`,
    );
    const bad = await engine.all(
      `SELECT line, text FROM dip_ndjson_lines WHERE NOT ok AND trim(text) <> '' ORDER BY line`,
    );
    return bad.map((r) => ({
      line: Number(r['line']),
      column: null,
      errorType: 'MALFORMED JSON',
      reason: 'line is not a valid JSON value',
      raw: String(r['text']),
    }));
  } finally {
    await engine.run(`DROP TABLE IF EXISTS dip_ndjson_lines`);
  }
}
