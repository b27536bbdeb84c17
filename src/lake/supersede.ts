import type { NewFile, TableChange } from '../catalog/types.js';
import type { Lake } from './lake.js';
import { lineage } from './lineage.js';
import { sourceOfDataPath, splitTableName } from './paths.js';
import { parquetScan } from './scan.js';
import { lit } from './sql.js';
import { writeLakeFile } from './write-file.js';

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
    if (others.length > 0 && change.format === 'parquet')
      change.add.push(await rewriteWithout(lake, change, file.path, sourceFile, others));
  }
  change.remove = remove;
}

function rewriteWithout(
  lake: Lake,
  change: TableChange,
  path: string,
  sourceFile: string,
  others: unknown[],
): Promise<NewFile> {
  return writeLakeFile(
    lake,
    `SELECT * FROM ${parquetScan([lake.storage.uri(path)])} WHERE _dip_source_file IS DISTINCT FROM ${lit(sourceFile)}`,
    { zone: change.zone, source: sourceOfDataPath(path) ?? 'lake', table: splitTableName(change.table)[1] },
    { sources: others, rewritten_from: path },
  );
}
