/** Over 400 lines: staging one unit (raw, bronze, quarantine, type unification across files) is one sequence of DuckDB statements. */
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NewFile, TableSchema } from '../catalog/types.js';
import { DipError, SchemaChangeError, errorMessage } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { ReadUnit, StreamSpec } from './units.js';
import type { Lake } from './lake.js';
import { EXT, dataFilePath } from './paths.js';
import { prepareInput, type PreparedInput, type RawRead, type RejectedRecord, sniffedCsvArgs } from './readers.js';
import { isPlainScalarType } from './duck-types.js';
import { evolveSchema, type SchemaChange } from './schema-evolution.js';
import { ident, lit } from './sql.js';
import { AUDIT_COLUMNS } from './zone-schemas.js';
import { PARQUET_COPY_OPTIONS } from './scan.js';
import { type RawCopy, compressLines, copyRawInput, publishRawCopy } from './raw-store.js';

export interface IngestTarget {
  pipeline: string;
  source: string;
  stream: StreamSpec;
  rawEnabled: boolean;
  runId: string;
}

/** One unit's files, written and published to storage but not yet committed. */
export interface StagedUnit {
  unit: ReadUnit;
  /** The bronze file, published (append, replace). */
  bronze?: NewFile | undefined;
  /** Merge streams: the typed records as a local file, input to the merge, deleted after it. */
  mergeInput?: string | undefined;
  raw?: NewFile | undefined;
  quarantine?: NewFile | undefined;
  schema: TableSchema;
  changes: SchemaChange[];
  rows: number;
  quarantined: number;
  /** The input held no records: nothing lands and no type is decided; only its ledger entry is committed. */
  empty?: boolean;
}

const isAudit = (name: string) => name.startsWith('_dip_');

/**
 * Reads one unit with DuckDB into a bronze Parquet file (typed, audit columns), a raw NDJSON
 * envelope file (records as the source wrote them) and a quarantine file (refused records),
 * and publishes them to storage. Nothing is visible until the caller commits them.
 */
export async function stageUnit(
  lake: Lake,
  target: IngestTarget,
  unit: ReadUnit,
  tableSchema: TableSchema | undefined,
  onProgress: (fraction: number) => void = () => undefined,
): Promise<StagedUnit> {
  // with the raw zone on, the bronze pass is about half of the work
  const bronzeShare = target.rawEnabled ? 0.5 : 1;
  const staging = await lake.storage.stagingDir();
  const ingestedAt = new Date();
  const sourceName = `${target.pipeline}.${target.source}.${target.stream.name}`;
  const file = sourceFileOf(unit);
  const local = {
    bronze: join(staging, `${newId('b')}.parquet`),
    raw: join(staging, `${newId('r')}.ndjson.zst`),
    q: join(staging, `${newId('q')}.parquet`),
  };
  // Page envelopes are compressed in Node's thread pool while DuckDB reads the records.
  const rawPages = target.rawEnabled && unit.rawPages ? compressLines(unit.rawPages, local.raw) : undefined;
  rawPages?.catch(() => undefined);
  if (!unit.input) {
    // Response pages without records (an empty last page): only the raw zone gets them.
    const out: StagedUnit = { unit, schema: tableSchema ?? { columns: [] }, changes: [], rows: 0, quarantined: 0 };
    if (target.rawEnabled && unit.rawPages)
      out.raw = await stageRawPages(lake, local.raw, unit, target, ingestedAt, rawPages);
    if (unit.rejected?.length) {
      const refused = sourceRejected(unit);
      await writeQuarantine(lake, local.q, refused, target, sourceName, file, ingestedAt);
      out.quarantine = await publish(
        lake,
        local.q,
        dataFilePath('quarantine', target.source, target.stream.table, ingestedAt, EXT.parquet),
        refused.length,
        { run_id: target.runId, source_file: file },
      );
      out.quarantined = refused.length;
    }
    return out;
  }
  const input = unit.input;
  let prepared: PreparedInput = await prepareInput(lake.engine, input, staging);
  const cleanups: PreparedInput[] = [prepared];
  // The raw zone keeps the input itself, compressed while DuckDB reads it for bronze.
  const rawCopy: Promise<RawCopy> | undefined =
    target.rawEnabled && !unit.rawPages
      ? unit.rawEvents
        ? copyRawInput(lake, unit.rawEvents, 'ndjson')
        : copyRawInput(lake, input.path, input.format)
      : undefined;
  rawCopy?.catch(() => undefined);
  try {
    if (!input.columns && !input.fields && (await holdsNoRecords(lake, input.path, prepared))) {
      // A 0-byte file, `[]`, a header line alone: the reader would invent a column (`column0`,
      // `json`) or type every column as text, and the table would keep that forever.
      const out: StagedUnit = {
        unit,
        schema: tableSchema ?? { columns: [] },
        changes: [],
        rows: 0,
        quarantined: 0,
        empty: true,
      };
      if (target.rawEnabled && unit.rawPages)
        out.raw = await stageRawPages(lake, local.raw, unit, target, ingestedAt, rawPages);
      return out;
    }
    let evolution: ReturnType<typeof evolveSchema> | undefined;
    let rows = 0;
    let enforced: Record<string, string> | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        const described = (await lake.engine.describe(`SELECT * FROM ${prepared.typed}`)).filter(
          (c) => !isAudit(c.name),
        );
        const isJson = (input.format === 'json' || input.format === 'ndjson') && !input.fields;
        const { columns, relation } = isJson
          ? await unifyJsonColumns(lake, prepared.typed, described, tableSchema, input.json?.columns)
          : { columns: described, relation: prepared.typed };
        evolution = evolveSchema(
          tableSchema,
          [...columns.map(({ name, type }) => ({ name, type })), ...AUDIT_COLUMNS],
          target.stream.schemaContract,
          { widenToText: target.stream.widenToText },
        );
        const enforce =
          input.format === 'csv' && !input.columns && !enforced ? typeOverrides(evolution.incompatible) : undefined;
        if (enforce) {
          // CSV types are sniffed: a stray bad value makes a whole column look like text. Read
          // such columns with the table's type instead, so only the bad records are refused.
          enforced = enforce;
          const csv = { encoding: 'utf-8' as const, ...input.csv, columns: { ...input.csv?.columns, ...enforce } };
          prepared = await prepareInput(lake.engine, { ...input, csv }, staging);
          cleanups.push(prepared);
          continue;
        }
        await assertCompatible(lake, relation, evolution.incompatible, target, file, tableSchema, input.format);
        const select = columns
          .map((c) => {
            const type = evolution?.writeTypes.get(c.name) ?? c.type;
            return type === c.type ? ident(c.name) : `CAST(${ident(c.name)} AS ${type}) AS ${ident(c.name)}`;
          })
          .join(', ');
        const audit = `${constant(target.runId)} AS _dip_run_id, ${lit(ingestedAt.toISOString())}::TIMESTAMPTZ AS _dip_ingested_at, ${constant(sourceName)} AS _dip_source, ${constant(file)} AS _dip_source_file`;
        rows = await lake.engine.copy(
          `COPY (SELECT ${select}${select ? ', ' : ''}${audit} FROM ${relation}) TO ${lit(local.bronze)} (${PARQUET_COPY_OPTIONS})`,
          (f) => onProgress(f * bronzeShare),
        );
        break;
      } catch (err) {
        if (err instanceof DipError || attempt >= 3 || failsDeclaredType(err, input.json?.columns))
          throw wrapReadError(err, unit, Object.values(local));
        const next = await prepared.recover(err);
        if (!next) throw wrapReadError(err, unit, Object.values(local));
        prepared = next;
        cleanups.push(next);
      }
    }
    const typing = await prepared.typing(evolution.schema.columns);
    const rejected = [...(await prepared.rejected()), ...sourceRejected(unit)];
    // A record with two bad fields is one refused record (with two quarantine rows of reasons).
    const quarantined = new Set(rejected.map((r, i) => r.line ?? `#${i}`)).size;
    if (enforced && rows === 0 && quarantined > 0) {
      const columns = Object.entries(enforced).map(
        ([c, t]) => `  column ${c}: table has ${t}, and no record of ${file} converts to it`,
      );
      throw new SchemaChangeError(
        `incompatible schema change for bronze.${target.stream.table} from ${file}:\n${columns.join('\n')}\n(the column's type changed; declare it as text with csv.columns or load into a new table)`,
        { table: `bronze.${target.stream.table}`, file, columns: enforced },
      );
    }
    const out: StagedUnit = {
      unit,
      schema: evolution.schema,
      changes: evolution.changes,
      rows,
      quarantined,
    };
    if (target.stream.writeDisposition === 'merge') {
      // Only an input to the merge: the merged table is what lands, so the file stays local.
      out.mergeInput = `${local.bronze}.merge-input.parquet`;
      await rename(local.bronze, out.mergeInput);
    } else {
      out.bronze = await publish(
        lake,
        local.bronze,
        dataFilePath('bronze', target.source, target.stream.table, ingestedAt, EXT.parquet),
        rows,
        {
          run_id: target.runId,
          source_file: file,
          position: unit.position,
          typing,
        },
      );
    }
    if (quarantined > 0) {
      await writeQuarantine(lake, local.q, rejected, target, sourceName, file, ingestedAt);
      out.quarantine = await publish(
        lake,
        local.q,
        dataFilePath('quarantine', target.source, target.stream.table, ingestedAt, EXT.parquet),
        rejected.length,
        {
          run_id: target.runId,
          source_file: file,
        },
      );
    }
    if (target.rawEnabled && unit.rawPages) {
      out.raw = await stageRawPages(lake, local.raw, unit, target, ingestedAt, rawPages, typing);
    } else if (rawCopy && (unit.rawEvents || prepared.stored)) {
      let read: RawRead = unit.rawEvents ? { kind: 'events' } : (prepared.stored as RawRead);
      if (read.kind === 'csv') read = { ...read, args: await sniffedCsvArgs(lake.engine, input.path, read.csv) };
      const stored = await publishRawCopy(lake, await rawCopy, target.source, target.stream.table);
      const copy = await rawCopy;
      // Records read: those landed and those quarantined (counted without another pass).
      out.raw = {
        path: stored.path,
        rows: rows + quarantined,
        bytes: stored.bytes,
        meta: rawMeta(unit, target, ingestedAt, {
          envelope: 'stored',
          read,
          compression: copy.compression,
          sha256: copy.sha256,
          format: input.format,
          typing,
        }),
      };
    } else if (target.rawEnabled) {
      const rawRows = await writeRaw(lake, local.raw, prepared, target, file, ingestedAt, (f) =>
        onProgress(bronzeShare + f * (1 - bronzeShare)),
      );
      out.raw = await publishRaw(lake, local.raw, rawRows, unit, target, ingestedAt, { format: input.format, typing });
    }
    return out;
  } finally {
    await rawPages?.catch(() => undefined);
    for (const p of cleanups) await p.cleanup().catch(() => undefined);
    for (const f of Object.values(local)) await rm(f, { force: true }).catch(() => undefined);
    const copy = await rawCopy?.catch(() => undefined);
    if (copy) await rm(copy.local, { force: true }).catch(() => undefined);
  }
}

/**
 * Raw envelopes of whole response pages the source wrote (API sources): numbered, stamped
 * with the run, compressed and published like any raw file.
 */
async function stageRawPages(
  lake: Lake,
  localFile: string,
  unit: ReadUnit,
  target: IngestTarget,
  receivedAt: Date,
  compressed: Promise<number> | undefined,
  typing: Record<string, string> = {},
): Promise<NewFile> {
  // Copied as written (no JSON parsing), only compressed (raw-store.ts, started with the unit).
  const rows = await (compressed ?? compressLines(unit.rawPages as string, localFile));
  return publishRaw(lake, localFile, rows, unit, target, receivedAt, {
    envelope: 'page',
    format: unit.input?.format ?? 'json',
    typing,
  });
}

/** Publishes a raw-zone file with the metadata replay and lineage read. */
function publishRaw(
  lake: Lake,
  localFile: string,
  rows: number,
  unit: ReadUnit,
  target: IngestTarget,
  at: Date,
  meta: Record<string, unknown>,
): Promise<NewFile> {
  const path = dataFilePath('raw', target.source, target.stream.table, at, EXT.rawNdjson);
  return publish(lake, localFile, path, rows, rawMeta(unit, target, at, meta));
}

/**
 * A raw file's metadata: where its records came from (replay, lineage) and, for the stored
 * form, every envelope field that is the same on all its records.
 */
function rawMeta(
  unit: ReadUnit,
  target: IngestTarget,
  at: Date,
  meta: Record<string, unknown>,
): Record<string, unknown> {
  const stored = meta['envelope'] === 'stored';
  return {
    run_id: target.runId,
    source_file: sourceFileOf(unit),
    position: unit.position,
    pipeline: target.pipeline,
    ...(stored ? { source: target.source, stream: target.stream.name, received_at: at.toISOString() } : {}),
    ...meta,
    ingest_date: at.toISOString().slice(0, 10),
  };
}

/** The input a unit's rows are recorded as coming from (`_dip_source_file`, lineage). */
function sourceFileOf(unit: ReadUnit): string {
  return String(unit.position['file'] ?? unit.label);
}

/**
 * A string that is the same on every row. Typed as a one-value ENUM, DuckDB's Parquet writer
 * skips per-row string work (measured: four VARCHAR constants added 27% to a 5M-row copy,
 * as ENUMs ~0%); the file still stores plain UTF-8 and reads back as VARCHAR.
 */
function constant(value: string): string {
  return `${lit(value)}::ENUM(${lit(value)})`;
}

async function publish(
  lake: Lake,
  localFile: string,
  path: string,
  rows: number,
  meta: Record<string, unknown>,
): Promise<NewFile> {
  const stored = await lake.storage.publish(localFile, path);
  return { path, rows, bytes: stored.bytes, meta };
}

/** Raw zone envelopes: one JSON object per record, zstd-compressed, in source order. */
async function writeRaw(
  lake: Lake,
  localFile: string,
  prepared: PreparedInput,
  target: IngestTarget,
  file: string,
  receivedAt: Date,
  onProgress: (fraction: number) => void,
): Promise<number> {
  // Numbering records with row_number() OVER () runs single-threaded (measured: the raw pass
  // took twice as long). Staging the records as Parquet first keeps both steps parallel, and
  // the Parquet reader numbers rows for free (file_row_number), in source order.
  const numbered = `${localFile}.stage.parquet`;
  try {
    await lake.engine.copy(
      `COPY (SELECT ${prepared.rawIsJson ? 'r.json' : 'r'} AS payload FROM ${prepared.raw} r) TO ${lit(numbered)} (FORMAT parquet, COMPRESSION lz4_raw)`,
      (f) => onProgress(f * 0.4),
    );
    return await lake.engine.copy(
      `COPY (
        SELECT file_row_number + 1 AS seq, payload, ${lit(target.pipeline)} AS pipeline, ${lit(target.source)} AS source,
          ${lit(target.stream.name)} AS stream, ${lit(target.runId)} AS run_id, ${lit(receivedAt.toISOString())} AS received_at,
          {'file': ${lit(file)}, 'record': file_row_number + 1} AS position
        FROM read_parquet(${lit(numbered)}, file_row_number=true, hive_partitioning=false)
      ) TO ${lit(localFile)} (FORMAT json, COMPRESSION zstd)`,
      (f) => onProgress(0.4 + f * 0.6),
    );
  } finally {
    await rm(numbered, { force: true });
  }
}

async function writeQuarantine(
  lake: Lake,
  localFile: string,
  rejected: RejectedRecord[],
  target: IngestTarget,
  sourceName: string,
  file: string,
  at: Date,
): Promise<void> {
  const table = `dip_q_${newId().slice(-10)}`;
  await lake.engine.run(
    `CREATE TEMP TABLE ${table} (line BIGINT, column_name VARCHAR, error_type VARCHAR, reason VARCHAR, raw VARCHAR)`,
  );
  try {
    for (let i = 0; i < rejected.length; i += 500) {
      const values = rejected
        .slice(i, i + 500)
        .map(
          (r) =>
            `(${r.line ?? 'NULL'}, ${r.column === null ? 'NULL' : lit(r.column)}, ${lit(r.errorType)}, ${lit(r.reason)}, ${r.raw === null ? 'NULL' : lit(r.raw)})`,
        )
        .join(', ');
      await lake.engine.run(`INSERT INTO ${table} VALUES ${values}`);
    }
    await lake.engine.copy(`COPY (
      SELECT ${lit(target.runId)} AS _dip_run_id, ${lit(at.toISOString())}::TIMESTAMPTZ AS _dip_quarantined_at,
        ${lit(sourceName)} AS _dip_source, ${lit(file)} AS _dip_source_file, line, column_name, error_type, reason, raw
      FROM ${table} ORDER BY line
    ) TO ${lit(localFile)} (${PARQUET_COPY_OPTIONS})`);
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** The records a source refused itself (`ReadUnit.rejected`), numbered after the file's lines. */
function sourceRejected(unit: ReadUnit): RejectedRecord[] {
  return (unit.rejected ?? []).map((r) => ({
    line: null,
    column: null,
    errorType: r.errorType,
    reason: r.reason,
    raw: r.raw,
  }));
}

/** Column → table type, for incompatible columns that exist in the table (not new ones). */
function typeOverrides(
  incompatible: ReturnType<typeof evolveSchema>['incompatible'],
): Record<string, string> | undefined {
  const known = incompatible.filter((c) => c.tableType !== '(absent)' && !c.column.startsWith('_dip_'));
  return known.length ? Object.fromEntries(known.map((c) => [c.column, c.tableType])) : undefined;
}

async function assertCompatible(
  lake: Lake,
  relation: string,
  incompatible: ReturnType<typeof evolveSchema>['incompatible'],
  target: IngestTarget,
  file: string,
  tableSchema: TableSchema | undefined,
  format: string,
): Promise<void> {
  if (incompatible.length === 0) return;
  const table = `bronze.${target.stream.table}`;
  const lines: string[] = [];
  for (const c of incompatible) {
    if (c.tableType === '(absent)') {
      lines.push(`  column ${c.column}: new column of type ${c.batchType}`);
      continue;
    }
    // The first record whose value the table's type cannot hold: what to fix, and where.
    const col = ident(c.column);
    const first = await lake.engine
      .all(
        `SELECT n, v FROM (SELECT row_number() OVER () AS n, ${col} AS x, ${c.batchType === 'JSON' ? `json_extract_string(${col}, '$')` : `CAST(${col} AS VARCHAR)`} AS v FROM ${relation})
         WHERE x IS NOT NULL AND TRY_CAST(v AS ${c.tableType}) IS NULL ORDER BY n LIMIT 1`,
      )
      .catch(() => []);
    const at = first[0]
      ? `; first misfit: record ${String(first[0]['n'])}, value ${JSON.stringify(first[0]['v'])}`
      : '';
    lines.push(`  column ${c.column}: table has ${c.tableType}, ${file} has ${c.batchType}${at}`);
  }
  const hint =
    target.stream.schemaContract === 'freeze'
      ? 'the stream declares schema_contract: freeze; allow evolution with schema_contract: evolve'
      : `only new columns and safe widenings (integer → larger integer → double, date → timestamp) evolve a table; ${declareHint(format)} or load into a new table`;
  throw new SchemaChangeError(`incompatible schema change for ${table} from ${file}:\n${lines.join('\n')}\n(${hint})`, {
    table,
    file,
    incompatible,
    columns: tableSchema?.columns.length ?? 0,
  });
}

function wrapReadError(err: unknown, unit: ReadUnit, outputs: readonly string[]): unknown {
  if (err instanceof DipError) return err;
  const format = unit.input?.format ?? 'input';
  const message = errorMessage(err);
  const declared = unit.input?.json?.columns;
  if (failsDeclaredType(err, declared) && declared) {
    const list = Object.entries(declared)
      .map(([c, t]) => `${c}: ${t}`)
      .join(', ');
    const what = message
      .slice(message.indexOf(DECLARED_MISFIT) + DECLARED_MISFIT.length)
      .split('\n')[0]
      ?.trim();
    return new DipError(
      'input',
      `cannot read ${unit.label} as ${format}: a value does not convert to a type declared in json.columns (${list}):${what ? ` ${what}` : ''}`,
      { cause: err },
    );
  }
  // Failing to write our own staging files is the machine's problem, not the input's.
  if (outputs.some((o) => message.includes(o)) || /No space left|Disk full|Read-only file system/i.test(message)) {
    return new DipError('internal', `writing lake files for ${unit.label} failed: ${message}`, { cause: err });
  }
  return new DipError('input', `cannot read ${unit.label} as ${format}: ${message}`, { cause: err });
}

/** A value that does not convert to a type the stream declared (json.columns): re-sampling cannot help. */
function failsDeclaredType(err: unknown, declared: Record<string, string> | undefined): boolean {
  return declared !== undefined && errorMessage(err).includes(DECLARED_MISFIT);
}

const DECLARED_MISFIT = 'json.columns:';

/** Where a stream of this format declares a column's type. */
function declareHint(format: string): string {
  if (format === 'csv') return 'declare the column type on the stream (csv.columns)';
  if (format === 'json' || format === 'ndjson') return 'declare the column type on the stream (json.columns)';
  return 'convert the column upstream';
}

/** Whether a file is empty or holds only whitespace (blank lines): read until the first other byte. */
async function onlyWhitespace(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    for (let pos = 0; ; ) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return true;
      for (let i = 0; i < bytesRead; i++) {
        const b = buf[i];
        if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return false;
      }
      pos += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** Whether an input whose columns are inferred holds no record at all (0 bytes, `[]`, a header line alone). */
async function holdsNoRecords(lake: Lake, path: string, prepared: PreparedInput): Promise<boolean> {
  if (!prepared.probe) return false;
  if (await onlyWhitespace(path)) return true;
  try {
    const rows = await lake.engine.all(`SELECT count(*) AS n FROM (SELECT 1 FROM ${prepared.probe} LIMIT 1)`);
    return Number(rows[0]?.['n']) === 0;
  } catch {
    return false; // unreadable: the read proper reports it (or quarantines what it can)
  }
}

/** A batch column as written: its name, its type and the expression producing it from the read relation. */
interface BatchColumn {
  name: string;
  type: string;
  expr: string;
}

/**
 * JSON types inferred from one file alone would pin the table to that file's accidents. So:
 * declared types (json.columns) win; a column null in every record decides no type (it takes
 * the table's type, or is left out until a file gives it a value); a column mixing scalars
 * (strings and numbers) is text holding the values as written, not quoted JSON; and a scalar
 * column bound for a table column that is already text is written as text.
 */
async function unifyJsonColumns(
  lake: Lake,
  typed: string,
  described: readonly { name: string; type: string }[],
  tableSchema: TableSchema | undefined,
  declared: Record<string, string> | undefined,
): Promise<{ columns: { name: string; type: string }[]; relation: string }> {
  const tableTypes = new Map((tableSchema?.columns ?? []).map((c) => [c.name, c.type]));
  const decl = declared ?? {};
  const untyped = described.filter((c) => c.type === 'JSON' && decl[c.name] === undefined);
  const facts = new Map<string, { values: number; scalar: boolean }>();
  if (untyped.length > 0) {
    const agg = untyped
      .map(
        (c, i) =>
          `count(${ident(c.name)}) AS n${i}, coalesce(bool_and(json_type(${ident(c.name)}) NOT IN ('OBJECT', 'ARRAY')), true) AS s${i}`,
      )
      .join(', ');
    const row = (await lake.engine.all(`SELECT ${agg} FROM ${typed}`))[0] ?? {};
    untyped.forEach((c, i) => facts.set(c.name, { values: Number(row[`n${i}`]), scalar: Boolean(row[`s${i}`]) }));
  }
  const columns: BatchColumn[] = [];
  let changed = false;
  for (const c of described) {
    const col = ident(c.name);
    const want = decl[c.name];
    if (want !== undefined) {
      const nested = /^(STRUCT|MAP|UNION)\(|\[\d*\]$/.test(c.type);
      const toText = /^(VARCHAR|TEXT|STRING|JSON)$/i.test(want.trim());
      // Scalars as their plain text; objects and arrays as JSON text (not DuckDB's struct notation).
      const src =
        c.type === 'JSON' && isPlainScalarType(want.toUpperCase())
          ? `json_extract_string(${col}, '$')`
          : nested && toText
            ? `to_json(${col})`
            : col;
      // A value that does not convert fails the file naming the declared column (DECLARED_MISFIT).
      const expr = `CASE WHEN ${src} IS NOT NULL AND TRY_CAST(${src} AS ${want}) IS NULL
        THEN error(${lit(`${DECLARED_MISFIT} column ${c.name} (${want}): value `)} || left(CAST(${src} AS VARCHAR), 60) || ' does not convert')
        ELSE TRY_CAST(${src} AS ${want}) END`;
      columns.push({ name: c.name, type: want, expr });
      changed = true;
      continue;
    }
    const fact = facts.get(c.name);
    const tableType = tableTypes.get(c.name);
    if (fact && fact.values === 0) {
      changed = true;
      if (tableType !== undefined) columns.push({ name: c.name, type: tableType, expr: `CAST(NULL AS ${tableType})` });
      continue;
    }
    if (fact && fact.scalar) {
      columns.push({ name: c.name, type: 'VARCHAR', expr: `json_extract_string(${col}, '$')` });
      changed = true;
      continue;
    }
    if (tableType === 'VARCHAR' && c.type !== 'VARCHAR' && isPlainScalarType(c.type)) {
      columns.push({ name: c.name, type: 'VARCHAR', expr: `CAST(${col} AS VARCHAR)` });
      changed = true;
      continue;
    }
    columns.push({ name: c.name, type: c.type, expr: col });
  }
  for (const [name, type] of Object.entries(decl)) {
    if (described.some((c) => c.name === name)) continue;
    columns.push({ name, type, expr: `CAST(NULL AS ${type})` });
    changed = true;
  }
  if (!changed) return { columns, relation: typed };
  if (columns.length === 0) return { columns, relation: `(SELECT NULL AS _dip_none FROM ${typed})` };
  const relation = `(SELECT ${columns.map((c) => `${c.expr} AS ${ident(c.name)}`).join(', ')} FROM ${typed})`;
  // DuckDB's own spelling of the types (a declared `int` is INTEGER), as the table records them.
  return { columns: await lake.engine.describe(`SELECT * FROM ${relation}`), relation };
}
