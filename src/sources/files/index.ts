import { extname } from 'node:path';
import { DipError } from '../../core/errors.js';
import { filesSpec, type FileStreamConfig } from './spec.js';
import {
  defineConnector,
  type InputFormat,
  type PlanContext,
  type ReadUnit,
  type SourceInstance,
  type StreamPlan,
  type StreamSpec,
} from '../types.js';
import type { LedgerEntry } from '../../catalog/types.js';
import { ledgerKey } from '../../catalog/ddl.js';
import { HASH_MAX_BYTES, discoverFiles, hashFile } from './discover.js';

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
 * processed-file ledger makes a re-run read only files that are new or changed since they were
 * last committed: inputs are keyed by their path relative to the project directory (so a
 * moved or copied project keeps its ledger), and identified by size and modification time,
 * or, when only the time differs, by a content hash (files up to HASH_MAX_BYTES).
 */
export const filesConnector = defineConnector({
  spec: filesSpec,
  capabilities: { incremental: true, fileLedger: true, formats: ['csv', 'json', 'ndjson', 'parquet'] },
  create(config, { baseDir }): SourceInstance {
    const streams = Object.entries(config.streams).map(([name, s]) => toSpec(name, s));
    return {
      streams: () => streams,
      async plan(stream: StreamSpec, ctx: PlanContext): Promise<StreamPlan> {
        const cfg = config.streams[stream.name] as FileStreamConfig;
        const label = `${ctx.pipeline}.${ctx.source}.${stream.name}`;
        const patterns = Array.isArray(cfg.path) ? cfg.path : [cfg.path];
        const { files, unmatched } = await discoverFiles(patterns, baseDir, label);
        const warnings = unmatched.map((p) => `${label}: path "${p}" matched no files (relative to ${baseDir})`);
        if (unmatched.length > 0 && cfg.require_files) {
          throw new DipError('input', `${warnings.join('; ')}; the stream declares require_files: true`, {
            details: { patterns: unmatched },
          });
        }
        // Built on the first key the ledger does not hold as it is (most runs never need it).
        let legacy: Map<string, LedgerEntry[]> | undefined;
        const units: ReadUnit[] = [];
        const refresh: LedgerEntry[] = [];
        let skipped = 0;
        for (const f of files) {
          ctx.signal.throwIfAborted();
          const key = ledgerKey(f.path, baseDir);
          const seen =
            ctx.ledger.get(key) ?? ctx.ledger.get(f.path) ?? legacyMatch((legacy ??= legacyEntries(ctx.ledger)), key);
          let contentHash: string | undefined;
          if (seen && seen.bytes === f.bytes) {
            if (seen.modifiedMs === f.modifiedMs) {
              skipped++;
              continue;
            }
            // A new modification time where the rows were read is a change (touching a file
            // re-reads it). A file that is no longer where its rows were read from (a copied
            // project: new times) is the same input if its content is.
            const recordedAt = seen.sourceFile ?? seen.path;
            if (recordedAt !== f.path && seen.contentHash && f.bytes <= HASH_MAX_BYTES) {
              contentHash = await hashFile(f.path);
              if (contentHash === seen.contentHash) {
                skipped++;
                refresh.push({ ...seen, path: key, modifiedMs: f.modifiedMs, sourceFile: recordedAt, contentHash });
                continue;
              }
            }
          }
          // replace keeps no ledger: nothing to hash for.
          if (contentHash === undefined && f.bytes <= HASH_MAX_BYTES && stream.writeDisposition !== 'replace')
            contentHash = await hashFile(f.path);
          const ledger: LedgerEntry = {
            pipeline: ctx.pipeline,
            source: ctx.source,
            stream: stream.name,
            path: key,
            bytes: f.bytes,
            modifiedMs: f.modifiedMs,
            sourceFile: f.path,
          };
          if (contentHash !== undefined) ledger.contentHash = contentHash;
          units.push({
            label: f.path,
            input: { path: f.path, format: formatOf(f.path, cfg.format, label), csv: cfg.csv, json: cfg.json },
            bytes: f.bytes,
            position: { file: f.path, bytes: f.bytes, modified_ms: f.modifiedMs },
            ledger,
            // The rows of the earlier version leave with this commit, under the name they were recorded with.
            supersedes: seen ? (seen.sourceFile ?? seen.path) : undefined,
          });
        }
        const total = { units: units.length, bytes: units.reduce((n, u) => n + u.bytes, 0) };
        if (refresh.length > 0)
          units.unshift({
            label: `${refresh.length} inputs recognised by content`,
            bytes: 0,
            position: {},
            ledgerRefresh: refresh,
          });
        return { units, skipped, warnings, total };
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

/**
 * Absolute-path ledger keys (written before keys became project-relative, or by a project
 * that was moved before the catalog was upgraded), by file name.
 */
function legacyEntries(ledger: ReadonlyMap<string, LedgerEntry>): Map<string, LedgerEntry[]> {
  const byName = new Map<string, LedgerEntry[]>();
  for (const entry of ledger.values()) {
    if (!entry.path.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(entry.path)) continue;
    const name = entry.path.split(/[\\/]/).pop() ?? entry.path;
    const list = byName.get(name);
    if (list) list.push(entry);
    else byName.set(name, [entry]);
  }
  return byName;
}

/** The one absolute-path entry whose path ends in this relative key, if exactly one does. */
function legacyMatch(legacy: Map<string, LedgerEntry[]>, key: string): LedgerEntry | undefined {
  if (key.startsWith('/')) return undefined;
  const name = key.split('/').pop() ?? key;
  const candidates = (legacy.get(name) ?? []).filter((e) => e.path.replaceAll('\\', '/').endsWith(`/${key}`));
  return candidates.length === 1 ? candidates[0] : undefined;
}

export default filesConnector;
