/** SQL (DuckDB) over committed tables, optionally as of a commit or a time. */
import type { AsOf } from '../catalog/types.js';
import type { Lake } from '../lake/lake.js';
import { query, type QueryResult } from '../lake/query.js';

export type { QueryResult } from '../lake/query.js';

export function runQuery(lake: Lake, sql: string, asOf?: AsOf): Promise<QueryResult> {
  return query(lake, sql, asOf);
}
