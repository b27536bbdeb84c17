import { join } from 'node:path';
import type { NewFile, TableChange } from '../catalog/types.js';
import { newId } from '../core/ids.js';
import type { Lake } from './lake.js';
import { lineage } from './lineage.js';
import { EXT, dataFilePath } from './paths.js';
import { parquetScan } from './scan.js';
import { lit } from './sql.js';

/**
 * Makes `change` also take out every row that came from `sourceFile` (an input that changed
 * since it was ingested): files holding only that input are removed; compacted files holding
 * it among others are rewritten without its rows, in the same commit.
 */
export async function supersedeSource(lake: Lake, change: TableChange, sourceFile: string): Promise<void> {
  const remove: string[] = [];
  for (const file of await lake.catalog.liveFiles(change.table)) {
    const refs = lineage(file);
    if (!refs.some((r) => r.source_file === sourceFile)) continue;
    remove.push(file.path);
    const others = refs.filter((r) => r.source_file !== sourceFile);
    if (others.length > 0 && change.format === 'parquet') change.add.push(await rewriteWithout(lake, change, file.path, sourceFile, others));
  }
  change.remove = remove;
}

async function rewriteWithout(lake: Lake, change: TableChange, path: string, sourceFile: string, others: unknown[]): Promise<NewFile> {
  const local = join(await lake.storage.stagingDir(), `${newId('s')}.parquet`);
  const rows = await lake.engine.copy(
    `COPY (SELECT * FROM ${parquetScan([lake.storage.uri(path)])} WHERE _dip_source_file IS DISTINCT FROM ${lit(sourceFile)})
     TO ${lit(local)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  const [zone, source, table] = path.split('/');
  const target = dataFilePath(change.zone, source ?? zone ?? 'lake', table ?? change.table, new Date(), EXT.parquet);
  const stored = await lake.storage.publish(local, target);
  return { path: target, rows, bytes: stored.bytes, meta: { sources: others, rewritten_from: path } };
}
