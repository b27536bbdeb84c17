/**
 * Raw-zone envelopes as readers see them (`raw.<table>`, replay), whatever form the files
 * were written in: the old form is one JSON envelope per record (`*.ndjson.zst`); the stored
 * form is the input as it arrived (raw-store.ts), whose envelopes are derived here from the
 * file's metadata: `seq` numbers the records in input order, `position` is the file and record.
 */
import type { DataFile } from '../catalog/types.js';
import type { Lake } from './lake.js';
import { type RawRead, storedRawRelation } from './readers.js';
import { rawScan } from './scan.js';
import { lit } from './sql.js';

/** A raw file in the stored-as-arrived form (its metadata says how to read it). */
export function isStoredRaw(file: Pick<DataFile, 'meta'>): boolean {
  return file.meta['envelope'] === 'stored';
}

/** The envelope columns (RAW_SCHEMA, in order) of one stored raw file. */
function storedEnvelopes(lake: Lake, file: Pick<DataFile, 'path' | 'meta'>): string {
  const m = file.meta;
  const text = (key: string) => lit(String(m[key] ?? ''));
  const read = m['read'] as RawRead;
  const records = storedRawRelation(lake.storage.uri(file.path), read, String(m['compression'] ?? 'zstd'));
  // row_number() OVER () numbers rows in scan order: DuckDB keeps insertion order.
  const position =
    read.kind === 'events'
      ? `json_object('lsn', payload->'source'->>'lsn', 'table', payload->'source'->>'table', 'op', payload->>'op')`
      : `json_object('file', ${text('source_file')}, 'record', seq)`;
  return `SELECT seq, payload, ${text('pipeline')} AS pipeline, ${text('source')} AS source, ${text('stream')} AS stream,
      ${text('run_id')} AS run_id, ${text('received_at')} AS received_at, ${position} AS position
    FROM (SELECT row_number() OVER () AS seq, payload FROM ${records})`;
}

/**
 * SELECT of the envelopes of raw files (old and stored forms mixed), columns as RAW_SCHEMA,
 * each file's records in order.
 */
export function rawEnvelopesSql(lake: Lake, files: readonly Pick<DataFile, 'path' | 'meta'>[]): string {
  const parts: string[] = [];
  const old = files.filter((f) => !isStoredRaw(f)).map((f) => lake.storage.uri(f.path));
  if (old.length > 0) parts.push(`SELECT * FROM ${rawScan(old)}`);
  for (const f of files) if (isStoredRaw(f)) parts.push(storedEnvelopes(lake, f));
  return parts.length === 1 ? (parts[0] as string) : parts.map((p) => `(${p})`).join(' UNION ALL ');
}
