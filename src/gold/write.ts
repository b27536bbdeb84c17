/**
 * The one way every gold model lands: its output SELECT goes through the model's checks (row
 * checks: refused rows to `quarantine.gold__<model>`, a breach fails the build with nothing
 * committed), is written as one Parquet file (columns cast as documented, sorted by cluster_by),
 * judged by table checks, and committed with the model's state and quality report in ONE commit.
 */
import type { NewFile, TableChange } from '../catalog/types.js';
import type { CheckConfig } from '../config/silver.js';
import type { GoldModelConfig } from '../config/gold.js';
import type { Lake } from '../lake/lake.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { writeLakeFile } from '../lake/write-file.js';
import { compileChecks, evaluateTableChecks, validateRowChecks } from '../quality/checks.js';
import { summarize, type CheckResult, type QualityReport } from '../quality/report.js';
import { POSITION_COLUMNS } from '../transform/plan.js';
import { REJECTS, flagRows } from '../transform/quarantine.js';
import { QualityFailedError } from '../transform/silver.js';
import { GOLD_STATE_SOURCE, type GoldState } from './inputs.js';

export type GoldMode = 'full' | 'incremental' | 'view' | 'up_to_date';

export interface GoldModelResult {
  table: string;
  kind: GoldModelConfig['kind'];
  mode: GoldMode;
  /** Rows the table holds after the build. */
  rows: number;
  /** Rows this build added or changed. */
  newRows: number;
  quarantined: number;
  commit: number | null;
  warnings: string[];
  report?: QualityReport | undefined;
  /** Fact lookups: rows that got the unknown member (-1), per lookup column. */
  misses?: Record<string, number> | undefined;
}

export interface GoldTarget {
  lake: Lake;
  pipeline: string;
  runId: string;
  now: Date;
  warn: (message: string) => void;
}

export interface GoldOutput {
  mode: 'full' | 'incremental';
  /** The rows to write: the whole table after this build, or (append) only the new rows. */
  sql: string;
  append?: boolean | undefined;
  /** Rows this build added or changed (default: the written rows). */
  newRows?: number | undefined;
  /** Extra table checks (a fact's grain). */
  checks?: CheckConfig[] | undefined;
  /** Results computed over the written file (a fact's lookup misses). */
  afterWrite?: ((relation: string) => Promise<{ results: CheckResult[]; misses?: Record<string, number> }>) | undefined;
  /** Primary key recorded on the table. */
  primaryKey?: string[] | undefined;
}

const OUT = '_dip_gold_out';

function castsAndOrder(model: GoldModelConfig, sql: string): string {
  const casts = Object.entries(model.columns)
    .filter((e): e is [string, { type: string }] => typeof e[1] === 'object' && e[1].type !== undefined)
    .map(([c, d]) => `CAST(${ident(c)} AS ${d.type}) AS ${ident(c)}`);
  const replaced = casts.length ? `SELECT * REPLACE (${casts.join(', ')}) FROM (${sql})` : sql;
  return model.cluster_by.length
    ? `SELECT * FROM (${replaced}) ORDER BY ${model.cluster_by.map(ident).join(', ')}`
    : replaced;
}

/** Checks, writes and commits one model's output. */
export async function writeGold(
  t: GoldTarget,
  name: string,
  model: GoldModelConfig,
  output: GoldOutput,
  state: GoldState,
): Promise<GoldModelResult> {
  const { lake, runId, now } = t;
  const table = `gold.${name}`;
  const info = await lake.catalog.getTable(table);
  const head = info?.headCommit ?? null;
  const shaped = castsAndOrder(model, output.sql);
  const columns = await lake.engine.describe(shaped);
  const compiled = await compileChecks(
    table,
    [...model.checks, ...(output.checks ?? [])],
    columns,
    async (ref, field) => `(SELECT ${ident(field)} FROM ${ref})`,
  );
  const target = { zone: 'gold' as const, source: t.pipeline, table: name };
  const meta = {
    run_id: runId,
    mode: output.mode,
    ...(model.cluster_by.length ? { cluster_by: model.cluster_by } : {}),
  };
  let file: NewFile;
  let quarantine: NewFile | undefined;
  let rowResults: CheckResult[] = [];
  let evaluated = 0;
  if (compiled.row.length === 0) {
    file = await writeLakeFile(lake, shaped, target, meta);
    evaluated = file.rows;
  } else {
    // Row checks need a position per row: the output is materialized once, flagged in one pass.
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE ${OUT} AS SELECT *, 'gold' AS ${POSITION_COLUMNS.file}, row_number() OVER () AS ${POSITION_COLUMNS.row} FROM (${shaped})`,
    );
    try {
      await validateRowChecks(lake.engine, OUT, compiled.row);
      const flagged = await flagRows(lake, OUT, compiled.row);
      rowResults = flagged.results;
      evaluated = flagged.rows;
      const breached = rowResults.filter((r) => r.severity === 'error' && !r.passed);
      if (breached.length) {
        const report = summarize(table, runId, now, evaluated, rowResults);
        await lake.catalog.saveQualityReport({
          table,
          runId,
          status: report.status,
          rows: evaluated,
          report: { ...report },
        });
        throw new QualityFailedError(
          `${table}: data quality checks failed, nothing was committed:\n${breached.map((r) => `  ${r.message}`).join('\n')}`,
          report,
        );
      }
      const pos = `${ident(POSITION_COLUMNS.file)}, ${ident(POSITION_COLUMNS.row)}`;
      file = await writeLakeFile(
        lake,
        `SELECT * EXCLUDE (${pos}) FROM ${OUT} AS o ANTI JOIN ${REJECTS} AS q ON o.${POSITION_COLUMNS.row} = q.r ORDER BY o.${POSITION_COLUMNS.row}`,
        target,
        meta,
      );
      const refused = Number((await lake.engine.all(`SELECT count(*) AS n FROM ${REJECTS}`))[0]?.['n'] ?? 0);
      if (refused > 0)
        quarantine = await writeLakeFile(
          lake,
          `SELECT o.* EXCLUDE (${pos}), q.checks AS _dip_check, q.reasons AS _dip_reason, ${lit(now.toISOString())}::TIMESTAMPTZ AS _dip_quarantined_at, ${lit(runId)} AS _dip_quarantine_run_id FROM ${OUT} AS o JOIN ${REJECTS} AS q ON o.${POSITION_COLUMNS.row} = q.r`,
          { zone: 'quarantine', source: t.pipeline, table: `gold__${name}` },
          { run_id: runId },
        );
    } finally {
      await lake.engine.run(`DROP TABLE IF EXISTS ${OUT}`);
      await lake.engine.run(`DROP TABLE IF EXISTS ${REJECTS}`);
    }
  }

  const current = output.append ? await lake.catalog.liveFiles(table) : [];
  const written = parquetScan([...current.map((f) => lake.storage.uri(f.path)), lake.storage.uri(file.path)]);
  const fileColumns = await lake.engine.describe(`SELECT * FROM ${parquetScan([lake.storage.uri(file.path)])}`);
  const newRows = output.newRows !== undefined ? Math.max(0, output.newRows - (quarantine?.rows ?? 0)) : file.rows;
  const tableResults = await evaluateTableChecks(lake.engine, written, compiled.table, {
    now,
    newRows,
    history: [],
    columns: fileColumns,
  });
  const extra = output.afterWrite
    ? await output.afterWrite(parquetScan([lake.storage.uri(file.path)]))
    : { results: [] };
  const report: QualityReport & { newRows: number; mode: string } = {
    ...summarize(table, runId, now, evaluated, [...rowResults, ...tableResults, ...extra.results]),
    newRows,
    mode: output.mode,
  };
  if (report.status === 'failed') {
    await lake.storage.delete([file.path, ...(quarantine ? [quarantine.path] : [])]);
    await lake.catalog.saveQualityReport({
      table,
      runId,
      status: report.status,
      rows: evaluated,
      report: { ...report },
    });
    const breached = [...tableResults, ...extra.results].filter((r) => r.severity === 'error' && !r.passed);
    throw new QualityFailedError(
      `${table}: data quality checks failed, nothing was committed:\n${breached.map((r) => `  ${r.message}`).join('\n')}`,
      report,
    );
  }
  for (const r of [...rowResults, ...tableResults, ...extra.results]) if (!r.passed) t.warn(r.message);

  const changes: TableChange[] = [
    {
      table,
      zone: 'gold',
      format: 'parquet',
      primaryKey: output.primaryKey ?? [],
      schema: { columns: fileColumns },
      add: [file],
      expectedHead: head,
      ...(output.append ? {} : { remove: 'all' as const }),
    },
  ];
  if (quarantine || output.mode === 'full') {
    const qTable = `quarantine.gold__${name}`;
    const exists = quarantine !== undefined || (await lake.catalog.getTable(qTable)) !== undefined;
    if (exists)
      changes.push({
        table: qTable,
        zone: 'quarantine',
        format: 'parquet',
        add: quarantine ? [quarantine] : [],
        ...(output.mode === 'full' ? { remove: 'all' as const } : {}),
        ...(quarantine
          ? {
              schema: {
                columns: await lake.engine.describe(
                  `SELECT * FROM ${parquetScan([lake.storage.uri(quarantine.path)])}`,
                ),
              },
            }
          : {}),
      });
  }
  const commit = await lake.catalog.commit({
    runId,
    operation: output.append ? 'append' : 'replace',
    tables: changes,
    state: [{ pipeline: t.pipeline, source: GOLD_STATE_SOURCE, stream: name, value: state }],
    summary: { rows: newRows, quarantined: quarantine?.rows ?? 0, mode: output.mode },
    qualityReports: [{ table, runId, status: report.status, rows: evaluated, report: { ...report } }],
  });
  return {
    table,
    kind: model.kind,
    mode: output.mode,
    rows: output.append ? current.reduce((n, f) => n + f.rows, 0) + file.rows : file.rows,
    newRows,
    quarantined: quarantine?.rows ?? 0,
    commit: commit.id,
    warnings: [],
    report,
    ...(extra.misses ? { misses: extra.misses } : {}),
  };
}

/** A build that changed no rows: only the state moves (the inputs it has now seen). */
export async function commitStateOnly(
  t: GoldTarget,
  name: string,
  model: GoldModelConfig,
  state: GoldState,
  mode: GoldMode,
): Promise<GoldModelResult> {
  const table = `gold.${name}`;
  const commit = await t.lake.catalog.commit({
    runId: t.runId,
    operation: 'state',
    tables: [],
    state: [{ pipeline: t.pipeline, source: GOLD_STATE_SOURCE, stream: name, value: state }],
    summary: { rows: 0, mode },
  });
  const info = await t.lake.catalog.getTable(table);
  return {
    table,
    kind: model.kind,
    mode,
    rows: info?.rows ?? 0,
    newRows: 0,
    quarantined: 0,
    commit: commit.id,
    warnings: [],
  };
}
