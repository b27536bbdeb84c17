import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NewFile, Zone } from '../catalog/types.js';
import { newId } from '../core/ids.js';
import type { Lake } from './lake.js';
import { EXT, dataFilePath } from './paths.js';
import { PARQUET_COPY_OPTIONS } from './scan.js';
import { lit } from './sql.js';

export interface LakeFileTarget {
  zone: Zone;
  source: string;
  table: string;
  /** Partition date (default: now). */
  date?: Date;
}

/**
 * Writes the result of a query as one Parquet file into the lake: DuckDB writes it to staging,
 * storage publishes it durably, and the caller commits the returned file. The staging file is
 * removed whatever happens.
 */
export async function writeLakeFile(
  lake: Lake,
  selectSql: string,
  target: LakeFileTarget,
  meta: Record<string, unknown>,
): Promise<NewFile> {
  const local = join(await lake.storage.stagingDir(), `${newId('w')}.parquet`);
  try {
    const rows = await lake.engine.copy(`COPY (${selectSql}) TO ${lit(local)} (${PARQUET_COPY_OPTIONS})`);
    const path = dataFilePath(target.zone, target.source, target.table, target.date ?? new Date(), EXT.parquet);
    const stored = await lake.storage.publish(local, path);
    return { path, rows, bytes: stored.bytes, meta };
  } finally {
    await rm(local, { force: true });
  }
}
