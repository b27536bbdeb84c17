import { extname } from 'node:path';
import { DipError } from '../../core/errors.js';
import { filesSourceSchema, type FileStreamConfig } from '../../config/schema.js';
import { defineConnector, type InputFormat, type PlanContext, type ReadUnit, type SourceInstance, type StreamPlan, type StreamSpec } from '../types.js';
import { discoverFiles } from './discover.js';

const EXTENSION_FORMATS: Record<string, InputFormat> = {
  '.csv': 'csv',
  '.tsv': 'csv',
  '.txt': 'csv',
  '.json': 'json',
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
  '.parquet': 'parquet',
};

export function formatOf(path: string, declared: InputFormat | undefined, label: string): InputFormat {
  if (declared) return declared;
  const lower = path.toLowerCase().replace(/\.(gz|zst)$/, '');
  const format = EXTENSION_FORMATS[extname(lower)];
  if (!format) {
    throw new DipError(
      'config',
      `${label}: cannot tell the format of ${path} from its extension; set format: csv | json | ndjson | parquet on the stream`,
    );
  }
  return format;
}

/**
 * Files source: CSV, JSON arrays, NDJSON and Parquet from local paths and globs. The
 * processed-file ledger (path, size, modification time) makes a re-run read only files that
 * are new or changed since they were last committed.
 */
export const filesConnector = defineConnector({
  name: 'files',
  description: 'CSV, JSON, NDJSON and Parquet files from local paths and globs',
  spec: filesSourceSchema,
  capabilities: { incremental: true, fileLedger: true, formats: ['csv', 'json', 'ndjson', 'parquet'] },
  create(config, { baseDir }): SourceInstance {
    const streams = Object.entries(config.streams).map(([name, s]) => toSpec(name, s));
    return {
      streams: () => streams,
      async plan(stream: StreamSpec, ctx: PlanContext): Promise<StreamPlan> {
        const cfg = config.streams[stream.name] as FileStreamConfig;
        const label = `${ctx.pipeline}.${ctx.source}.${stream.name}`;
        const patterns = Array.isArray(cfg.path) ? cfg.path : [cfg.path];
        const files = await discoverFiles(patterns, baseDir, label);
        const units: ReadUnit[] = [];
        let skipped = 0;
        for (const f of files) {
          ctx.signal.throwIfAborted();
          const seen = ctx.ledger.get(f.path);
          if (seen && seen.bytes === f.bytes && seen.modifiedMs === f.modifiedMs) {
            skipped++;
            continue;
          }
          units.push({
            label: f.path,
            input: { path: f.path, format: formatOf(f.path, cfg.format, label), csv: cfg.csv },
            bytes: f.bytes,
            position: { file: f.path, bytes: f.bytes, modified_ms: f.modifiedMs },
            ledger: { pipeline: ctx.pipeline, source: ctx.source, stream: stream.name, path: f.path, bytes: f.bytes, modifiedMs: f.modifiedMs },
          });
        }
        return { units, skipped, total: { units: units.length, bytes: units.reduce((n, u) => n + u.bytes, 0) } };
      },
      async close() {},
    };
  },
});

function toSpec(name: string, s: FileStreamConfig): StreamSpec {
  return {
    name,
    table: s.table ?? name,
    writeDisposition: s.write_disposition,
    primaryKey: s.primary_key ?? [],
    deletedColumn: s.deleted_column,
    schemaContract: s.schema_contract,
  };
}
