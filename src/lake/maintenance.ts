import { readdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import type { CommitInfo, DataFile, TableInfo } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import { processAlive } from '../core/process.js';
import type { Lake } from './lake.js';
import {
  MOR_META,
  deltaRows,
  hasDeltas,
  isMerged,
  liveTombstonesSql,
  morMeta,
  morRowCount,
  morRowsSql,
} from './deletes.js';
import { combinedLineage } from './lineage.js';
import { MERGE_KEY_META, mergeOnReadKey } from './merge.js';
import { sourceOfDataPath, splitTableName } from './paths.js';
import { assertReadable } from './query.js';
import { parquetScan } from './scan.js';
import { writeLakeFile } from './write-file.js';
import { asRegisteredWriter } from './writers.js';
import { litList } from './sql.js';
import { LEGACY_STAGING_PREFIX } from './storage/local.js';
import { engineTempOwner, listScratch, type ScratchFile } from './storage/scratch.js';

export interface GcOptions {
  /** Files removed from tables by commits older than this stop being time-travelable and are deleted. */
  retentionMs: number;
  /** Unreferenced files younger than this are left alone: a running writer may be about to commit them. */
  orphanGraceMs: number;
  dryRun?: boolean;
}

export interface GcResult {
  expiredFiles: number;
  orphanFiles: number;
  stagingFiles: number;
  bytesFreed: number;
  deleted: string[];
}

/**
 * Garbage collection: deletes files that no commit references (left by crashed or failed
 * runs, or by merges) and files removed from their table longer ago than the retention.
 */
export async function collectGarbage(lake: Lake, options: GcOptions): Promise<GcResult> {
  const now = Date.now();
  const result: GcResult = { expiredFiles: 0, orphanFiles: 0, stagingFiles: 0, bytesFreed: 0, deleted: [] };
  // A running replace/merge stream publishes files long before it commits them: nothing
  // written since the oldest live run started is an orphan yet, whatever the grace period.
  await lake.catalog.markCrashedRuns(processAlive);
  const running = (await lake.catalog.listRuns({ limit: 1000 })).filter((r) => r.status === 'running');
  const writersSince = Math.min(...running.map((r) => r.startedAt.getTime()), Number.POSITIVE_INFINITY);
  // A dry run forgets nothing, so the expiring files are still referenced: they count as the
  // real run would count them.
  const expired = new Set(
    await lake.catalog.expireRemovedFiles(new Date(now - options.retentionMs), { dryRun: options.dryRun ?? false }),
  );
  const referenced = await lake.catalog.referencedPaths();
  for (const path of await stagedPaths(lake)) referenced.add(path);
  const doomed: string[] = [];
  for await (const obj of lake.storage.list('')) {
    if (referenced.has(obj.path) && !expired.has(obj.path)) continue;
    if (now - obj.modifiedAt.getTime() < options.orphanGraceMs || obj.modifiedAt.getTime() >= writersSince - 1000)
      continue;
    if (obj.path.startsWith(`${LEGACY_STAGING_PREFIX}/`)) result.stagingFiles++;
    else if (expired.has(obj.path)) result.expiredFiles++;
    else if (isLakeData(obj.path)) result.orphanFiles++;
    else continue;
    result.bytesFreed += obj.bytes;
    doomed.push(obj.path);
  }
  if (!options.dryRun) await lake.storage.delete(doomed);
  // Scratch outside the lake: staged files no live writer can still publish, and the spill
  // directories of engines whose process is gone.
  const scratch: string[] = [];
  for await (const f of listScratch(await lake.storage.stagingDir())) {
    const at = f.modifiedAt.getTime();
    if (now - at < options.orphanGraceMs || at >= writersSince - 1000) continue;
    result.stagingFiles++;
    result.bytesFreed += f.bytes;
    scratch.push(f.path);
  }
  const deadSpills: string[] = [];
  for (const dir of await deadEngineTempDirs(lake.tempRoot)) {
    let young = false;
    const files: ScratchFile[] = [];
    for await (const f of listScratch(dir)) {
      files.push(f);
      if (now - f.modifiedAt.getTime() < options.orphanGraceMs) young = true;
    }
    if (young) continue;
    for (const f of files) {
      result.stagingFiles++;
      result.bytesFreed += f.bytes;
      scratch.push(f.path);
    }
    deadSpills.push(dir);
  }
  if (!options.dryRun) {
    for (const f of scratch) await rm(f, { force: true });
    for (const d of deadSpills) await rm(d, { recursive: true, force: true });
  }
  result.deleted = [...doomed, ...scratch.map((f) => shownPath(lake.project.dir, f))];
  return result;
}

/** Spill directories of engines whose process (on this host) has exited. */
async function deadEngineTempDirs(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .filter((name) => {
      const owner = engineTempOwner(name);
      return owner !== undefined && processAlive(owner.host, owner.pid) === false;
    })
    .map((name) => join(root, name));
}

/** A scratch path as the user knows it: relative to the project when inside it. */
function shownPath(projectDir: string, file: string): string {
  const rel = relative(projectDir, file);
  return rel.startsWith('..') || isAbsolute(rel) ? file : rel.split(sep).join('/');
}

/**
 * Files an interrupted replace stream staged and listed in its state (`_dip_staged`): not in
 * any table yet, but the stream's next run commits them.
 */
async function stagedPaths(lake: Lake): Promise<string[]> {
  const out: string[] = [];
  for (const pipeline of Object.keys(lake.project.config.pipelines)) {
    for (const s of await lake.catalog.listStates(pipeline)) {
      const staged = (
        s.value as {
          _dip_staged?: {
            units?: { bronze?: { path: string }; raw?: { path: string }; quarantine?: { path: string } }[];
          };
        } | null
      )?._dip_staged;
      for (const u of staged?.units ?? []) for (const f of [u.bronze, u.raw, u.quarantine]) if (f) out.push(f.path);
    }
  }
  return out;
}

function isLakeData(path: string): boolean {
  return /^(raw|bronze|silver|gold|quarantine)\//.test(path);
}

export interface CompactOptions {
  /** Files smaller than this many bytes are compacted together. */
  smallFileBytes: number;
  dryRun?: boolean;
}

export interface CompactResult {
  table: string;
  inputFiles: number;
  rows: number;
  commit: CommitInfo | undefined;
}

/** Rewrites a table's small live files as one file, in one commit; rows and their order are kept. */
function mergeKeyMeta(files: readonly { meta: Record<string, unknown> }[]): Record<string, unknown> {
  const key = mergeOnReadKey(files);
  return key ? { [MERGE_KEY_META]: key } : {};
}

export async function compactTable(lake: Lake, table: string, options: CompactOptions): Promise<CompactResult> {
  const info = await lake.catalog.getTable(table);
  if (!info) throw new DipError('not_found', `no table named ${table}`);
  if (info.format !== 'parquet') return { table, inputFiles: 0, rows: 0, commit: undefined };
  const live = await lake.catalog.liveFiles(table);
  // A merge-on-read table (upserts and delete files) compacts into a new base, whatever the sizes.
  if (hasDeltas(live)) {
    if (options.dryRun) return { table, inputFiles: live.length, rows: morRowCount(live), commit: undefined };
    return asRegisteredWriter(lake, '(compact)', () => compactMergeOnRead(lake, table, info, live));
  }
  // Compacted already: a base and its tombstones, which are not rows to pack together.
  if (isMerged(live)) return { table, inputFiles: 0, rows: 0, commit: undefined };
  const small = live.filter((f) => f.bytes < options.smallFileBytes);
  if (small.length < 2 || options.dryRun) {
    return {
      table,
      inputFiles: small.length < 2 ? 0 : small.length,
      rows: small.reduce((n, f) => n + f.rows, 0),
      commit: undefined,
    };
  }
  // The compacted file is published before its commit: registered as a writer, gc leaves it alone.
  return asRegisteredWriter(lake, '(compact)', () => compactFiles(lake, table, info, small));
}

async function compactFiles(lake: Lake, table: string, info: TableInfo, small: DataFile[]): Promise<CompactResult> {
  const [, name] = splitTableName(table);
  const zone = info.zone;
  const source = sourceOfDataPath(small[0]?.path ?? '') ?? 'compacted';
  const uris = small.map((f) => lake.storage.uri(f.path));
  const compacted = await writeLakeFile(
    lake,
    `SELECT * EXCLUDE (filename, file_row_number) FROM ${parquetScan(uris, ['filename=true', 'file_row_number=true'])}
     ORDER BY list_position(${litList(uris)}, filename), file_row_number`,
    { zone, source, table: name },
    // A merge-on-read table stays one: readers resolve its rows by key, whatever the file layout.
    { compacted_from: small.length, sources: combinedLineage(small), ...mergeKeyMeta(small) },
  );
  const rows = compacted.rows;
  const expectedRows = small.reduce((n, f) => n + f.rows, 0);
  if (rows !== expectedRows)
    throw new DipError(
      'internal',
      `compaction of ${table} read ${rows} rows, the catalog says ${expectedRows}; nothing was changed`,
    );
  const commit = await lake.catalog.commit({
    operation: 'compact',
    tables: [
      {
        table,
        zone,
        format: 'parquet',
        add: [compacted],
        remove: small.map((f) => f.path),
        expectedHead: info.headCommit,
      },
    ],
    summary: { table, inputFiles: small.length, rows },
  });
  return { table, inputFiles: small.length, rows, commit };
}

/**
 * Folds a merge-on-read table's upsert and delete files into a new base file: the merged rows,
 * in one commit (expected head: a build landing meanwhile makes it fail, nothing changed). The
 * caller registers the work as a writer (the new file is published before its commit).
 */
export async function compactMergeOnRead(
  lake: Lake,
  table: string,
  info: TableInfo,
  live: DataFile[],
): Promise<CompactResult> {
  const [, name] = splitTableName(table);
  const source = sourceOfDataPath(live[0]?.path ?? '') ?? 'compacted';
  const sql = morRowsSql((p) => lake.storage.uri(p), live);
  if (!sql) return { table, inputFiles: 0, rows: 0, commit: undefined };
  const expectedRows = morRowCount(live);
  const compacted = await writeLakeFile(
    lake,
    sql,
    { zone: info.zone, source, table: name },
    { compacted_from: live.length, ...morMeta('base', 0) },
  );
  if (compacted.rows !== expectedRows) {
    await lake.storage.delete([compacted.path]);
    throw new DipError(
      'internal',
      `compaction of ${table} read ${compacted.rows} rows, the catalog says ${expectedRows}; nothing was changed`,
    );
  }
  // Deleted keys keep their tombstones, so later builds weigh late versions against the deletion.
  const add = [compacted];
  const tombstones = liveTombstonesSql((p) => lake.storage.uri(p), live);
  if (tombstones) {
    const on = live.find((f) => f.meta[MOR_META.tombstones] === true)?.meta[MOR_META.on];
    const file = await writeLakeFile(
      lake,
      tombstones,
      { zone: info.zone, source, table: name },
      {
        compacted_from: live.length,
        ...morMeta('tombstones', 0, { on: Array.isArray(on) ? on.map(String) : [], hides: 0, tombstones: true }),
      },
    );
    if (file.rows > 0) add.push(file);
    else await lake.storage.delete([file.path]);
  }
  const commit = await lake.catalog.commit({
    operation: 'compact',
    tables: [
      {
        table,
        zone: info.zone,
        format: 'parquet',
        add,
        remove: live.map((f) => f.path),
        expectedHead: info.headCommit,
      },
    ],
    summary: { table, inputFiles: live.length, rows: compacted.rows, ...deltaRows(live) },
  });
  return { table, inputFiles: live.length, rows: compacted.rows, commit };
}

/** Makes a table hold exactly the files it held at an earlier commit, as a new commit. */
export async function rollbackTable(lake: Lake, table: string, toCommit: number): Promise<CommitInfo> {
  const info = await lake.catalog.getTable(table);
  if (!info) throw new DipError('not_found', `no table named ${table}`);
  if (info.headCommit !== null && toCommit > info.headCommit) {
    throw new DipError(
      'not_found',
      `${table} has no commit ${toCommit} to roll back to (its latest is ${info.headCommit})`,
    );
  }
  await assertReadable(lake, toCommit);
  const schema = await lake.catalog.schemaAt(table, toCommit);
  if (!schema) throw new DipError('not_found', `${table} did not exist at commit ${toCommit}`);
  const files = await lake.catalog.liveFiles(table, toCommit);
  return lake.catalog.commit({
    operation: 'rollback',
    tables: [
      {
        table,
        zone: info.zone,
        format: info.format,
        schema: schema.schema,
        remove: 'all',
        add: files.map((f) => ({
          path: f.path,
          rows: f.rows,
          bytes: f.bytes,
          meta: { ...f.meta, restored_from_commit: f.addedCommit },
        })),
        expectedHead: info.headCommit,
      },
    ],
    summary: { table, toCommit },
  });
}
