/**
 * What the console shows of a table beyond `dip tables`: sample rows (silver and gold only: their
 * PII columns are masked when written; raw and bronze hold what sources sent) at a commit, and the
 * freshness deadlines (pipelines' `sla:`) per table.
 */
import { DipError } from '../core/errors.js';
import { durationMs } from '../core/time.js';
import type { Lake } from '../lake/lake.js';
import { ident } from '../lake/sql.js';
import { runQuery, type QueryResult } from './query.js';

const SAMPLE_ZONES = ['silver', 'gold'];

/** The first `limit` rows of a silver or gold table, as of `commit` (default: now). */
export async function sampleRows(
  lake: Lake,
  table: string,
  options: { limit: number; commit?: number | undefined },
): Promise<QueryResult> {
  const [zone, name] = table.split('.', 2);
  if (!zone || !name || !SAMPLE_ZONES.includes(zone))
    throw new DipError(
      'input',
      `sample rows of ${table}: only silver and gold tables (their PII is masked); raw and bronze hold what sources sent`,
    );
  if (!(await lake.catalog.getTable(table))) throw new DipError('not_found', `no table ${table}`);
  return runQuery(
    lake,
    `SELECT * FROM ${ident(zone)}.${ident(name)} LIMIT ${Math.max(1, Math.floor(options.limit))}`,
    options.commit === undefined ? undefined : { commit: options.commit },
  );
}

/** zone.table → its freshness deadline in seconds (the tightest when several pipelines set one). */
export function tableSlas(lake: Lake): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pipeline, config] of Object.entries(lake.project.config.pipelines))
    for (const [table, duration] of Object.entries(config.sla ?? {})) {
      const seconds = durationMs(duration, `pipelines.${pipeline}.sla.${table}`) / 1000;
      out[table] = Math.min(out[table] ?? Number.POSITIVE_INFINITY, seconds);
    }
  return out;
}
