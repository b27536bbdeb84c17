/** `dip describe`: a table with its schema versions and recent snapshots (commits). */
import type { CommitInfo, SchemaVersion } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { summarizeTable, tableNames, type TableSummary } from './tables.js';

export interface TableDescription {
  /** Rows as readers see them (a CDC current-state table's true count; `pendingChanges` not merged yet). */
  table: TableSummary;
  versions: SchemaVersion[];
  commits: CommitInfo[];
}

export async function describeTable(lake: Lake, name: string, options: { commits: number }): Promise<TableDescription> {
  const table = await lake.catalog.getTable(name);
  if (!table) {
    const known = (await tableNames(lake)).join(', ') || '(none yet)';
    throw new DipError('not_found', `no table named ${name} (tables: ${known})`);
  }
  return {
    table: await summarizeTable(lake, table),
    versions: await lake.catalog.listSchemaVersions(name),
    commits: await lake.catalog.listCommits({ table: name, limit: options.commits }),
  };
}
