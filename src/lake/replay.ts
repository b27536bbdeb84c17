import type { Column, CommitInfo, DataFile, NewFile, TableChange } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { StreamSpec } from './units.js';
import type { Lake } from './lake.js';
import { mergeFiles } from './merge.js';
import { qualifiedTable } from './paths.js';
import { lineage, refKey } from './lineage.js';
import { AUDIT_COLUMNS } from './zone-schemas.js';
import { isStoredRaw, rawEnvelopesSql } from './raw-read.js';
import { type RawRead, storedTypedRelation } from './readers.js';
import { writeLakeFile } from './write-file.js';
import { ident, lit } from './sql.js';

export interface ReplayRange {
  /** Ingest dates (UTC, inclusive) of the raw files to replay. */
  from?: string | undefined;
  to?: string | undefined;
}

export interface ReplayResult {
  table: string;
  rawFiles: number;
  rows: number;
  removedFiles: number;
  commit: CommitInfo | undefined;
}

const NESTED = /^(STRUCT|MAP|UNION|JSON)|\[\]$/;
const TEMPORAL = new Set(['DATE', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE', 'TIMESTAMP_NS', 'TIME']);

/** How a raw payload field becomes the bronze column (the same typing the first ingest did). */
function typedField(col: Column, typing: Record<string, string>): { expr: string; check: string | undefined } {
  // An explicit JSONPath: a bare key starting with $ or / would be read as a path or pointer.
  const key = lit(`$.${JSON.stringify(col.name)}`);
  const text = `payload->>${key}`;
  if (col.type === 'VARCHAR') return { expr: `${text} AS ${ident(col.name)}`, check: undefined };
  if (col.type === 'JSON') return { expr: `payload->${key} AS ${ident(col.name)}`, check: undefined };
  let expr: string;
  if (NESTED.test(col.type)) expr = `TRY_CAST(payload->${key} AS ${col.type})`;
  else if (col.type === 'DATE' && typing['dateformat'])
    expr = `TRY_STRPTIME(${text}, ${lit(typing['dateformat'])})::DATE`;
  else if (TEMPORAL.has(col.type) && col.type !== 'DATE' && typing['timestampformat']) {
    expr = `TRY_STRPTIME(${text}, ${lit(typing['timestampformat'])})::${col.type}`;
  } else expr = `TRY_CAST(${text} AS ${col.type})`;
  return { expr: `${expr} AS ${ident(col.name)}`, check: `(${text} IS NULL OR ${expr} IS NOT NULL)` };
}

/**
 * Rebuilds a stream's bronze table from its raw zone alone: raw envelopes are typed with the
 * table's current schema and swapped in for the bronze files they produced, in one commit.
 * Records that fail typing are left out, as they were quarantined at first ingest.
 */
export async function replayStream(
  lake: Lake,
  pipeline: string,
  source: string,
  stream: StreamSpec,
  range: ReplayRange,
  runId: string,
): Promise<ReplayResult> {
  const bronze = qualifiedTable('bronze', stream.table);
  const rawTable = qualifiedTable('raw', stream.table);
  if (stream.currentState) {
    throw new DipError(
      'input',
      `${bronze} is a change-data-capture log: its raw events are kept for audit, but replay does not rebuild change logs yet (re-snapshot with dip state reset instead)`,
    );
  }
  const info = await lake.catalog.getTable(bronze);
  const schema = (await lake.catalog.schemaAt(bronze))?.schema;
  if (!info || !schema) throw new DipError('not_found', `${bronze} has no commits yet: nothing to replay`);
  const pipelineRaws = (await lake.catalog.liveFiles(rawTable)).filter(
    (f) => f.meta['pipeline'] === undefined || f.meta['pipeline'] === pipeline,
  );
  let raws = pipelineRaws;
  if (raws.length === 0)
    throw new DipError('not_found', `${rawTable} holds no raw files: was the raw zone disabled for ${pipeline}?`);
  if (stream.writeDisposition === 'replace') {
    // The raw files of the replacement in force: all added by its commit (a resumed replace
    // commits batches staged by the interrupted run beside its own).
    const lastCommit = Math.max(...raws.map((f) => f.addedCommit));
    raws = raws.filter((f) => f.addedCommit === lastCommit);
  } else if (stream.writeDisposition === 'append') {
    raws = raws.filter((f) => inRange(String(f.meta['ingest_date'] ?? ''), range));
  }
  if (raws.length === 0) return { table: bronze, rawFiles: 0, rows: 0, removedFiles: 0, commit: undefined };
  const live = await lake.catalog.liveFiles(bronze);
  let removed = live;
  if (stream.writeDisposition === 'append') {
    // A compacted bronze file holds rows of several inputs: replacing it means replaying all
    // of them, so widen the set until every affected file is covered.
    const allRaws = new Map(pipelineRaws.flatMap((f) => lineage(f).map((r) => [refKey(r), f] as const)));
    const keys = new Set(raws.flatMap((f) => lineage(f).map(refKey)));
    for (let grew = true; grew; ) {
      grew = false;
      for (const f of live) {
        const refs = lineage(f).map(refKey);
        if (!refs.some((k) => keys.has(k))) continue;
        for (const k of refs) if (!keys.has(k) && allRaws.has(k)) keys.add(k), (grew = true);
      }
    }
    raws = [...new Set([...keys].flatMap((k) => (allRaws.has(k) ? [allRaws.get(k) as DataFile] : [])))].sort(
      (a, b) => a.addedCommit - b.addedCommit || a.id - b.id,
    );
    removed = live.filter((f) => lineage(f).some((r) => keys.has(refKey(r))));
  }

  const audit = new Set<string>(AUDIT_COLUMNS.map((c) => c.name));
  const dataColumns = schema.columns.filter((c) => !audit.has(c.name));
  const produced: NewFile[] = [];
  let rows = 0;
  for (const raw of raws) {
    const typed = isStoredRaw(raw)
      ? storedTypedRelation(lake.storage.uri(raw.path), raw.meta['read'] as RawRead, String(raw.meta['compression']))
      : undefined;
    if (typed) {
      // A database extract kept as it came: read with the types the first ingest read it with.
      const file = await writeLakeFile(
        lake,
        storedExtractSelect(typed, dataColumns, raw),
        {
          zone: 'bronze',
          source,
          table: stream.table,
          date: new Date(`${String(raw.meta['ingest_date'] ?? new Date().toISOString().slice(0, 10))}T00:00:00Z`),
        },
        { run_id: raw.meta['run_id'], source_file: raw.meta['source_file'], replayed_from: raw.path },
      );
      produced.push(file);
      rows += file.rows;
      continue;
    }
    const typing = (raw.meta['typing'] ?? {}) as Record<string, string>;
    const fields = dataColumns.map((c) => typedField(c, typing));
    const checks = fields.flatMap((f) => (f.check ? [f.check] : []));
    const scan = `(${rawEnvelopesSql(lake, [raw])})`;
    const pages = raw.meta['envelope'] === 'page';
    if (pages) await assertReplayablePages(lake, scan, raw.path);
    const file = await writeLakeFile(
      lake,
      `SELECT ${fields.map((f) => f.expr).join(', ')}${fields.length ? ', ' : ''}
        run_id AS _dip_run_id, received_at::TIMESTAMPTZ AS _dip_ingested_at,
        pipeline || '.' || source || '.' || stream AS _dip_source,
        coalesce(position->>'file', ${lit(String(raw.meta['source_file'] ?? ''))}) AS _dip_source_file
      FROM ${pages ? pageRecords(scan) : `(SELECT *, 0 AS record_index FROM ${scan})`}
      ${checks.length ? `WHERE ${checks.join(' AND ')}` : ''}
      ORDER BY seq, record_index`,
      {
        zone: 'bronze',
        source,
        table: stream.table,
        date: new Date(`${String(raw.meta['ingest_date'] ?? new Date().toISOString().slice(0, 10))}T00:00:00Z`),
      },
      { run_id: raw.meta['run_id'], source_file: raw.meta['source_file'], replayed_from: raw.path },
    );
    produced.push(file);
    rows += file.rows;
  }
  let add = produced;
  if (stream.writeDisposition === 'merge') {
    const merged = await mergeFiles(lake, {
      source,
      table: stream.table,
      primaryKey: stream.primaryKey,
      deletedColumn: stream.deletedColumn,
      current: [],
      incoming: produced.map((f) => lake.storage.uri(f.path)),
      runId,
    });
    add = merged ? [merged] : [];
    rows = merged?.rows ?? 0;
  }
  const change: TableChange = {
    table: bronze,
    zone: 'bronze',
    format: 'parquet',
    schema,
    add,
    remove: removed.map((f) => f.path),
    expectedHead: info.headCommit,
  };
  const commit = await lake.catalog.commit({
    runId,
    operation: 'replay',
    tables: [change],
    summary: {
      pipeline,
      source,
      stream: stream.name,
      rawFiles: raws.length,
      rows,
      from: range.from ?? null,
      to: range.to ?? null,
    },
  });
  return { table: bronze, rawFiles: raws.length, rows, removedFiles: removed.length, commit };
}

/** Bronze rows of a stored database extract: the table's columns (cast to its types) and the audit columns. */
function storedExtractSelect(typed: string, dataColumns: readonly Column[], raw: DataFile): string {
  const read = raw.meta['read'] as { columns: string[] };
  const present = new Set(read.columns);
  const text = (key: string) => lit(String(raw.meta[key] ?? ''));
  const columns = dataColumns.map((c) =>
    present.has(c.name)
      ? `CAST(${ident(c.name)} AS ${c.type}) AS ${ident(c.name)}`
      : `CAST(NULL AS ${c.type}) AS ${ident(c.name)}`,
  );
  const audit = `${text('run_id')} AS _dip_run_id, ${text('received_at')}::TIMESTAMPTZ AS _dip_ingested_at,
    ${lit(`${String(raw.meta['pipeline'])}.${String(raw.meta['source'])}.${String(raw.meta['stream'])}`)} AS _dip_source,
    ${text('source_file')} AS _dip_source_file`;
  return `SELECT ${[...columns, audit].join(', ')} FROM ${typed}`;
}

/**
 * Records of raw response pages (API sources), one row each with the record as `payload`:
 * taken from the page at the path its envelope names, with the parent fields the source
 * added to them, in page and record order.
 */
function pageRecords(scan: string): string {
  // Function forms, not ->>: DuckDB binds `a->>'k' = 'v'` as `a->>('k' = 'v')`.
  const at = `json_extract(payload, json_extract_string(position, 'records'))`;
  return `(
    SELECT seq, record_index, json_merge_patch(rec, coalesce(position->'copy', '{}'::JSON)) AS payload,
      run_id, received_at, pipeline, source, stream, position
    FROM (
      SELECT seq, UNNEST(range(len(recs))) AS record_index, UNNEST(recs) AS rec, run_id, received_at, pipeline, source, stream, position
      FROM (
        SELECT *, CASE
            WHEN json_extract_string(position, 'records') = 'ndjson' THEN list_transform(list_filter(string_split(json_extract_string(payload, '$'), chr(10)), x -> trim(x) <> ''), x -> x::JSON)
            WHEN ${at} IS NULL OR json_type(${at}) = 'NULL' THEN []::JSON[]
            WHEN json_type(${at}) = 'ARRAY' THEN CAST(${at} AS JSON[])
            ELSE [${at}]
          END AS recs
        FROM ${scan}
      )
    )
  )`;
}

async function assertReplayablePages(lake: Lake, scan: string, path: string): Promise<void> {
  const records = `json_extract_string(position, 'records')`;
  const rows =
    await lake.engine.all(`SELECT count(*) AS n, any_value(json_extract_string(position, 'url')) AS url FROM ${scan}
    WHERE (${records} IS NULL OR ${records} = 'csv') AND coalesce(TRY_CAST(json_extract_string(position, 'status') AS INT), 0) <> 0`);
  if (Number(rows[0]?.['n'] ?? 0) > 0) {
    throw new DipError(
      'input',
      `cannot replay ${path}: its pages (e.g. ${String(rows[0]?.['url'])}) are CSV or were selected with a JSONPath that is not a plain path; re-run the source instead`,
    );
  }
}

function inRange(date: string, range: ReplayRange): boolean {
  if (range.from && date < range.from) return false;
  if (range.to && date > range.to) return false;
  return true;
}
