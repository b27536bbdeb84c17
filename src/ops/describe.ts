/** `dip describe`: a table with its schema versions and recent snapshots (commits). */
import type { CommitInfo, SchemaVersion, TableInfo } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { isMerged, morRowCount } from '../lake/deletes.js';
import { tableNames } from './tables.js';

export interface TableDescription {
  table: TableInfo;
  versions: SchemaVersion[];
  commits: CommitInfo[];
}

export async function describeTable(lake: Lake, name: string, options: { commits: number }): Promise<TableDescription> {
  const table = await lake.catalog.getTable(name);
  if (!table) {
    const known = (await tableNames(lake)).join(', ') || '(none yet)';
    throw new DipError('not_found', `no table named ${name} (tables: ${known})`);
  }
  // A silver table with delete files: the rows readers see, not the files' rows (keys included).
  const files = await lake.catalog.liveFiles(name);
  return {
    table: isMerged(files) ? { ...table, rows: morRowCount(files) } : table,
    versions: await lake.catalog.listSchemaVersions(name),
    commits: await lake.catalog.listCommits({ table: name, limit: options.commits }),
  };
}
