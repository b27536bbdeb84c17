/**
 * Quarantine: rows refused by silver checks (and bronze's unparseable records), listed per table
 * and check, the rows themselves for one table; and the replay of a silver table's quarantined
 * rows once the rules or the rows are fixed.
 */
import type { LoadedProject } from '../config/load.js';
import type { PipelineConfig } from '../config/schema.js';
import { ConfigError, DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { asRegisteredWriter } from '../lake/writers.js';
import { QUARANTINE_META, quarantineTableName } from '../transform/quarantine.js';
import { replayQuarantine, type SilverEvent, type SilverTableResult } from '../transform/silver.js';

export interface QuarantineSummary {
  table: string;
  check: string;
  rows: number;
}

export interface QuarantineListing {
  summary: QuarantineSummary[];
  /** With a table: its quarantined rows (check, reason, quarantined_at, then the row's columns). */
  rows: Record<string, unknown>[];
}

export interface QuarantineQuery {
  /** A silver table (`posts` or `silver.posts`): its rows too. */
  table?: string | undefined;
  /** Only rows that failed this check. */
  check?: string | undefined;
  /** Rows to return with a table. */
  limit: number;
}

export async function listQuarantine(lake: Lake, q: QuarantineQuery): Promise<QuarantineListing> {
  const { table } = q;
  const tables = (await lake.catalog.listTables()).filter(
    (t) => t.zone === 'quarantine' && (!table || t.name === quarantineTableName(table.replace(/^silver\./, ''))),
  );
  if (table && tables.length === 0) return { summary: [], rows: [] };
  const summary: QuarantineSummary[] = [];
  let rows: Record<string, unknown>[] = [];
  for (const t of tables) {
    const files = await lake.catalog.liveFiles(t.name);
    if (files.length === 0) continue;
    const scan = parquetScan(files.map((f) => lake.storage.uri(f.path)));
    if (!t.name.startsWith('quarantine.silver__')) {
      summary.push({
        table: t.name,
        check: '(bronze: unparseable records)',
        rows: files.reduce((n, f) => n + f.rows, 0),
      });
      continue;
    }
    const filter = q.check ? `WHERE list_contains(string_split(${QUARANTINE_META.check}, ', '), ${lit(q.check)})` : '';
    for (const r of await lake.engine.all(
      `SELECT c AS check, count(*) AS n FROM (SELECT unnest(string_split(${QUARANTINE_META.check}, ', ')) AS c FROM ${scan} ${filter}) GROUP BY 1 ORDER BY 1`,
    )) {
      summary.push({ table: t.name, check: String(r['check']), rows: Number(r['n']) });
    }
    if (table) {
      rows = await lake.engine.all(
        `SELECT ${QUARANTINE_META.check} AS check, ${QUARANTINE_META.reason} AS reason, CAST(${QUARANTINE_META.at} AS VARCHAR) AS quarantined_at, * EXCLUDE (${Object.values(QUARANTINE_META).map(ident).join(', ')})
               FROM ${scan} ${filter} ORDER BY ${QUARANTINE_META.at} LIMIT ${q.limit}`,
      );
    }
  }
  return { summary, rows };
}

/** The pipeline that defines a silver table (`posts` or `silver.posts`). */
export function silverOwner(
  project: LoadedProject,
  table: string,
): { pipeline: string; config: PipelineConfig; table: string } {
  const name = table.startsWith('silver.') ? table.slice('silver.'.length) : table;
  const owners = Object.entries(project.config.pipelines).filter(([, p]) => p.silver[name]);
  if (owners.length === 0) {
    const all = Object.values(project.config.pipelines).flatMap((p) => Object.keys(p.silver));
    throw new DipError(
      'not_found',
      `no silver table ${name} in ${project.file} (silver tables: ${all.join(', ') || 'none'})`,
    );
  }
  if (owners.length > 1)
    throw new ConfigError(
      `silver table ${name} is defined by several pipelines (${owners.map(([p]) => p).join(', ')}); silver names must be unique`,
    );
  const [pipeline, config] = owners[0] as [string, PipelineConfig];
  return { pipeline, config, table: name };
}

export type QuarantineReplayResult = SilverTableResult & { stillQuarantined: number };

export interface QuarantineReplayOptions {
  check?: string | undefined;
  where?: string | undefined;
  /** column → SQL expression applied before the checks run again. */
  set: Record<string, string>;
  onEvent?: (e: SilverEvent) => void;
}

/** Runs a silver table's quarantined rows through its silver step again, as a run of its pipeline. */
export async function replayQuarantined(
  lake: Lake,
  table: string,
  options: QuarantineReplayOptions,
): Promise<QuarantineReplayResult> {
  const owner = silverOwner(lake.project, table);
  return asRegisteredWriter(lake, owner.pipeline, (runId) =>
    replayQuarantine(lake, owner.pipeline, owner.config, owner.table, {
      runId,
      check: options.check,
      where: options.where,
      set: options.set,
      onEvent: options.onEvent,
    }),
  );
}
