/** Data quality reports of a silver table, newest first. */
import type { QualityReportRecord } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';

/** `posts` → `silver.posts`; a name with a zone stays as it is. */
export function qualityTableName(table: string): string {
  return table.includes('.') ? table : `silver.${table}`;
}

/** The latest `runs` reports of a table; not_found when it has none. */
export async function qualityReports(
  lake: Lake,
  table: string,
  options: { runs: number },
): Promise<QualityReportRecord[]> {
  const name = qualityTableName(table);
  const reports = await lake.catalog.listQualityReports(name, { limit: options.runs });
  if (reports.length === 0)
    throw new DipError('not_found', `no quality report for ${name} yet (run dip transform first)`);
  return reports;
}
