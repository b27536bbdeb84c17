/**
 * Over 400 lines: the silver runner: input selection, the build, checks and the one commit per table share one sequence of state.
 *
 * Builds silver tables from bronze: per table, the new bronze files (or all of them, when the
 * table is new, its definition changed, or bronze was rewritten) go through the silver plan;
 * row checks decide which rows land and which go to quarantine; the latest record per key is
 * merged with the table; table checks judge the result; and the table, its child tables, its
 * quarantine rows, the quality report and the bronze position it reached land in ONE commit.
 */
import { createHash } from 'node:crypto';
import type { Column, CommitRequest, DataFile, NewFile, TableChange } from '../catalog/types.js';
import type { PipelineConfig } from '../config/schema.js';
import type { SilverTableConfig } from '../config/silver.js';
import { ConfigError, DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { tableRowsSql } from '../lake/deletes.js';
import { liveRowsSql, mergeOnReadKey } from '../lake/merge.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { writeLakeFile } from '../lake/write-file.js';
import {
  compileChecks,
  evaluateTableChecks,
  judgeOverTable,
  validateRowChecks,
  type CheckTotals,
  type CompiledRowCheck,
} from '../quality/checks.js';
import { summarize, type CheckResult, type QualityReport } from '../quality/report.js';
import { applyContract } from './contract.js';
import { detectPii } from './pii-detect.js';
import { maskMacrosSql } from './mask.js';
import { POSITION_COLUMNS, bronzeName, planSilver, type SilverPlan } from './plan.js';
import { privacyContext, type PrivacyContext } from './privacy.js';
import {
  QUARANTINE_META,
  REJECTS,
  flagRows,
  quarantineTableName,
  unsealedQuarantine,
  writeQuarantine,
} from './quarantine.js';
import { compactAfterBuild } from './compaction.js';
import { writeSilver, type BuildTarget, type SilverMode } from './write.js';

export type { SilverMode };

/** Where a silver table's progress through bronze is kept (catalog state, source `_silver`). */
export const SILVER_STATE_SOURCE = '_silver';

export interface SilverState {
  /** Bronze commit whose live files this table has consumed. */
  bronzeCommit: number;
  /** Fingerprint of the table definition that built it; a change rebuilds the table. */
  definition: string;
  /** Rows evaluated and failed per row check since the last full build (scope: table thresholds). */
  checks?: CheckTotals | undefined;
}

export interface SilverOptions {
  runId: string;
  /** Silver tables to build (default: all of the pipeline). */
  tables?: string[] | undefined;
  /** Rebuild from every live bronze file. */
  fullRefresh?: boolean | undefined;
  /** Clock for freshness checks. */
  now?: Date | undefined;
  onEvent?: ((event: SilverEvent) => void) | undefined;
  signal?: AbortSignal | undefined;
  /** Bronze tables the pipeline's streams declare: a silver `from` outside them is a config error. */
  declaredBronze?: { names: readonly string[]; complete: boolean } | undefined;
}

export type SilverEvent =
  | { type: 'silver_started'; table: string; mode: SilverMode; files: number }
  | { type: 'silver_warning'; table: string; message: string }
  | { type: 'silver_committed'; table: string; result: SilverTableResult };

export interface SilverTableResult {
  table: string;
  mode: SilverMode | 'up_to_date';
  /** Bronze files read (quarantine files, on replay). */
  files: number;
  /** Rows read from bronze (or quarantine, on replay). */
  inputRows: number;
  /** Rows the silver table holds after the commit. */
  rows: number;
  /** Rows this build added or changed (after dedup). */
  newRows: number;
  quarantined: number;
  commit: number | null;
  warnings: string[];
  report?: QualityReport | undefined;
  /** Milliseconds per phase: checks, pii_detection, write, quarantine, table_checks. */
  timings?: Record<string, number> | undefined;
  /** Tables compacted after the build (the delta passed `compaction`), each its own commit. */
  compacted?: { table: string; commit: number; rows: number; ms: number }[] | undefined;
}

/** A run failed its data quality checks: nothing was committed, the report was kept. */
export class QualityFailedError extends DipError {
  constructor(
    message: string,
    readonly report: QualityReport,
  ) {
    super('quality', message, { details: { table: report.table } });
    this.name = 'QualityFailedError';
  }
}

export function silverTables(pipeline: PipelineConfig, only?: readonly string[]): [string, SilverTableConfig][] {
  const all = Object.entries(pipeline.silver);
  if (only) {
    const unknown = only.filter((t) => !pipeline.silver[t]);
    if (unknown.length)
      throw new ConfigError(
        `no silver table ${unknown.join(', ')} in this pipeline (silver tables: ${all.map(([n]) => n).join(', ') || 'none'})`,
      );
  }
  return orderByDependencies(all.filter(([n]) => !only || only.includes(n)));
}

/** Tables that join or reference other silver tables of the pipeline are built after them. */
function orderByDependencies(tables: [string, SilverTableConfig][]): [string, SilverTableConfig][] {
  const names = new Set(tables.map(([n]) => n));
  const deps = (cfg: SilverTableConfig) =>
    [...cfg.joins.map((j) => j.table), ...cfg.checks.map((c) => (c.type === 'relationships' ? c.to : undefined))]
      .filter((t): t is string => t !== undefined && t.startsWith('silver.'))
      .map((t) => t.slice('silver.'.length))
      .filter((t) => names.has(t));
  const done = new Set<string>();
  const out: [string, SilverTableConfig][] = [];
  const visit = (entry: [string, SilverTableConfig], path: string[]) => {
    const [name, cfg] = entry;
    if (done.has(name)) return;
    if (path.includes(name))
      throw new ConfigError(`silver tables depend on each other in a cycle: ${[...path, name].join(' → ')}`);
    for (const d of deps(cfg)) {
      const dep = tables.find(([n]) => n === d);
      if (dep) visit(dep, [...path, name]);
    }
    done.add(name);
    out.push(entry);
  };
  for (const t of tables) visit(t, []);
  return out;
}

/** Builds every (chosen) silver table of a pipeline; stops at the first table that fails. */
export async function runSilver(
  lake: Lake,
  pipelineName: string,
  pipeline: PipelineConfig,
  options: SilverOptions,
): Promise<SilverTableResult[]> {
  const privacy = await privacyContext(lake.project);
  const results: SilverTableResult[] = [];
  for (const [name, cfg] of silverTables(pipeline, options.tables)) {
    options.signal?.throwIfAborted();
    const result = await buildSilverTable(
      { lake, pipeline: pipelineName, runId: options.runId, privacy, options },
      name,
      cfg,
    );
    if (result.commit !== null) {
      result.compacted = await compactAfterBuild(lake, result.table, cfg, (message) => {
        result.warnings.push(message);
        options.onEvent?.({ type: 'silver_warning', table: result.table, message });
      });
    }
    results.push(result);
  }
  return results;
}

interface BuildContext extends BuildTarget {
  privacy: PrivacyContext;
  options: SilverOptions;
}

/** The definition fingerprint: the table's config plus the secrets that shape its values. */
function definitionOf(cfg: SilverTableConfig, privacy: PrivacyContext): string {
  // Compaction settings shape the file layout, not the values: changing them rebuilds nothing.
  const { compaction: _layout, ...shaping } = cfg;
  return createHash('sha256').update(JSON.stringify(shaping)).update(privacy.fingerprint).digest('hex').slice(0, 16);
}

interface InputSelection {
  mode: SilverMode;
  relation: string;
  files: number;
  bronzeCommit: number;
  /** Live quarantine files a replay consumed (removed by its commit). */
  replayedQuarantine?: DataFile[];
  /** The table's definition is the one that built it: the schema contract judges the input. */
  contract: boolean;
  /** Row check totals before this build (incremental and replay builds add to them). */
  totals?: CheckTotals | undefined;
  /** Replay: per error check, how many of the replayed rows had failed it. */
  replayedFailures?: Record<string, number> | undefined;
}

async function selectInput(
  ctx: BuildContext,
  name: string,
  cfg: SilverTableConfig,
  definition: string,
): Promise<InputSelection | 'up_to_date' | 'no_bronze'> {
  const { lake } = ctx;
  const bronze = `bronze.${bronzeName(cfg.from)}`;
  const info = await lake.catalog.getTable(bronze);
  if (!info || info.headCommit === null) return 'no_bronze';
  // Pinned to the head just read: a bronze commit landing meanwhile is left for the next build.
  const live = await lake.catalog.liveFiles(bronze, info.headCommit);
  const state = (await lake.catalog.getState(ctx.pipeline, SILVER_STATE_SOURCE, name)) as SilverState | undefined;
  const silver = await lake.catalog.getTable(`silver.${name}`);
  const key = mergeOnReadKey(live);
  let files = live;
  let mode: SilverMode = 'full';
  const sameDefinition =
    !ctx.options.fullRefresh && state !== undefined && silver?.headCommit != null && state.definition === definition;
  if (sameDefinition && state && !key) {
    const before = await lake.catalog.liveFiles(bronze, state.bronzeCommit);
    const now = new Set(live.map((f) => f.path));
    if (before.every((f) => now.has(f.path))) {
      const seen = new Set(before.map((f) => f.path));
      files = live.filter((f) => !seen.has(f.path));
      mode = 'incremental';
      if (files.length === 0) return 'up_to_date';
    }
  }
  if (files.length === 0) return 'no_bronze'; // a bronze table with no live file (rolled back to empty)
  const scan = parquetScan(
    files.map((f) => lake.storage.uri(f.path)),
    ['filename=true', 'file_row_number=true'],
  );
  const rows = liveRowsSql(scan, live);
  return {
    mode,
    relation: `(SELECT * EXCLUDE (filename, file_row_number), filename AS ${POSITION_COLUMNS.file}, file_row_number AS ${POSITION_COLUMNS.row} FROM ${rows})`,
    files: files.length,
    bronzeCommit: info.headCommit,
    contract: sameDefinition,
    ...(mode === 'incremental' ? { totals: state?.checks ?? {} } : {}),
  };
}

async function buildSilverTable(ctx: BuildContext, name: string, cfg: SilverTableConfig): Promise<SilverTableResult> {
  const { lake } = ctx;
  const definition = definitionOf(cfg, ctx.privacy);
  const input = await selectInput(ctx, name, cfg, definition);
  const silver = await lake.catalog.getTable(`silver.${name}`);
  if (input === 'no_bronze' || input === 'up_to_date') {
    const declared = ctx.options.declaredBronze;
    if (input === 'no_bronze' && declared?.complete && !declared.names.includes(bronzeName(cfg.from))) {
      throw new ConfigError(
        `silver.${name}: from: ${cfg.from} is not a bronze table of this pipeline (its streams land in: ${declared.names.map((n) => `bronze.${n}`).join(', ') || 'none'})`,
      );
    }
    return {
      table: `silver.${name}`,
      mode: 'up_to_date',
      files: 0,
      inputRows: 0,
      rows: silver?.rows ?? 0,
      newRows: 0,
      quarantined: 0,
      commit: null,
      warnings: input === 'no_bronze' ? [`bronze.${bronzeName(cfg.from)} has no data yet`] : [],
    };
  }
  return buildFrom(ctx, name, cfg, definition, input);
}

/** Re-runs quarantined rows (optionally fixed by SQL) through the silver step. */
export async function replayQuarantine(
  lake: Lake,
  pipelineName: string,
  pipeline: PipelineConfig,
  table: string,
  options: SilverOptions & {
    check?: string | undefined;
    where?: string | undefined;
    set?: Record<string, string> | undefined;
  },
): Promise<SilverTableResult & { stillQuarantined: number }> {
  const cfg = pipeline.silver[table];
  if (!cfg)
    throw new ConfigError(
      `no silver table ${table} in pipeline ${pipelineName} (silver tables: ${Object.keys(pipeline.silver).join(', ') || 'none'})`,
    );
  const privacy = await privacyContext(lake.project);
  const qTable = quarantineTableName(table);
  const files = await lake.catalog.liveFiles(qTable);
  const silver = await lake.catalog.getTable(`silver.${table}`);
  const state = (await lake.catalog.getState(pipelineName, SILVER_STATE_SOURCE, table)) as SilverState | undefined;
  if (files.length === 0 || !state || !silver) {
    return {
      table: `silver.${table}`,
      mode: 'replay',
      files: 0,
      inputRows: 0,
      rows: silver?.rows ?? 0,
      newRows: 0,
      quarantined: 0,
      commit: null,
      warnings: ['nothing in quarantine'],
      stillQuarantined: 0,
    };
  }
  const scan = parquetScan(files.map((f) => lake.storage.uri(f.path)));
  // Sealed values of masked columns are opened for the replay (in memory only); rows that still
  // fail are sealed again, the rows not replayed are kept as they are.
  const opened = await unsealedQuarantine(lake, scan, () => privacy.sealer());
  try {
    return await replayOpened(lake, pipelineName, cfg, table, options, {
      privacy,
      files,
      state,
      scan,
      base: opened.relation,
    });
  } finally {
    await opened.dispose();
  }
}

async function replayOpened(
  lake: Lake,
  pipelineName: string,
  cfg: SilverTableConfig,
  table: string,
  options: SilverOptions & {
    check?: string | undefined;
    where?: string | undefined;
    set?: Record<string, string> | undefined;
  },
  q: { privacy: PrivacyContext; files: DataFile[]; state: SilverState; scan: string; base: string },
): Promise<SilverTableResult & { stillQuarantined: number }> {
  const { privacy, files, state, scan, base } = q;
  const selected: string[] = [];
  if (options.check)
    selected.push(`list_contains(string_split(${QUARANTINE_META.check}, ', '), ${lit(options.check)})`);
  if (options.where) selected.push(`(${options.where})`);
  const pick = selected.length ? selected.join(' AND ') : 'true';
  const fixes = Object.entries(options.set ?? {});
  const fixed = fixes.length ? ` REPLACE (${fixes.map(([c, e]) => `(${e}) AS ${ident(c)}`).join(', ')})` : '';
  const meta = Object.values(QUARANTINE_META).map(ident).join(', ');
  const picked = `coalesce(${pick}, false)`;
  // Rows are picked before the fixes apply, so the picked rows and the kept ones are complements.
  const relation = `(SELECT * EXCLUDE (${meta}) FROM (SELECT *${fixed} FROM (SELECT * FROM ${base} WHERE ${picked})))`;
  // The rows not replayed stay as stored (sealed): the complement of the picked positions.
  const kept = `(SELECT s.* FROM ${scan} AS s ANTI JOIN (SELECT ${POSITION_COLUMNS.file} AS _f, ${POSITION_COLUMNS.row} AS _r FROM ${base} WHERE ${picked}) AS k ON s.${POSITION_COLUMNS.file} = k._f AND s.${POSITION_COLUMNS.row} = k._r)`;
  const replayedFailures: Record<string, number> = {};
  for (const r of await lake.engine.all(
    `SELECT c, count(*) AS n FROM (SELECT unnest(string_split(${QUARANTINE_META.check}, ', ')) AS c FROM ${base} WHERE ${picked}) GROUP BY c`,
  )) {
    replayedFailures[String(r['c'])] = Number(r['n']);
  }
  const result = await buildFrom(
    { lake, pipeline: pipelineName, runId: options.runId, privacy, options },
    table,
    cfg,
    state.definition,
    {
      mode: 'replay',
      relation,
      files: files.length,
      bronzeCommit: state.bronzeCommit,
      replayedQuarantine: files,
      contract: true,
      totals: state.checks ?? {},
      replayedFailures,
    },
    kept,
  );
  return { ...result, stillQuarantined: result.quarantined };
}

async function buildFrom(
  ctx: BuildContext,
  name: string,
  cfg: SilverTableConfig,
  definition: string,
  input: InputSelection,
  keptQuarantine?: string,
): Promise<SilverTableResult> {
  const { lake, options } = ctx;
  const table = `silver.${name}`;
  const runId = options.runId;
  const now = options.now ?? new Date();
  const emit = options.onEvent ?? (() => undefined);
  emit({ type: 'silver_started', table, mode: input.mode, files: input.files });
  const timings: Record<string, number> = {};
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings[phase] = Math.round(performance.now() - t0);
    }
  };
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    emit({ type: 'silver_warning', table, message });
  };

  for (const macro of maskMacrosSql()) await lake.engine.run(macro);
  const inputColumns = await lake.engine.describe(`SELECT * FROM ${input.relation}`);
  const relationOf = async (t: string) => {
    const files = await lake.catalog.liveFiles(t);
    if (files.length === 0)
      throw new ConfigError(`${table}: ${t} has no data (it is referenced by a join or relationships check)`);
    return tableRowsSql((p) => lake.storage.uri(p), files);
  };
  const plan = await planSilver({
    table: name,
    config: cfg,
    inputColumns,
    mask: ctx.privacy.mask,
    engine: lake.engine,
    joinRelation: async (j) => (j.table ? relationOf(j.table) : ctx.privacy.referenceFile(j.file as string)),
  });
  const clear = `(${plan.clearSql(input.relation)})`;

  const current = await lake.catalog.getTable(table);
  const currentSchema = current?.schemaVersion != null ? (await lake.catalog.schemaAt(table))?.schema : undefined;
  const contract =
    currentSchema && input.contract
      ? await applyContract(lake.engine, { table, plan, clear, current: currentSchema, config: cfg })
      : { checks: [] as CompiledRowCheck[], changes: [] as string[], dropped: [] as string[] };
  for (const c of contract.changes) warn(`schema change: ${c}`);

  const compiled = await compileChecks(
    table,
    cfg.checks,
    plan.columns,
    async (t, field) => `(SELECT ${ident(field)} FROM ${await relationOf(t)})`,
  );
  // Reports and quarantine reasons must not carry clear values of masked columns.
  const guarded = compiled.row.map((c) =>
    c.columns.some((col) => plan.masked.has(col))
      ? { ...c, valueSql: `'(masked)'`, reasonSql: lit(`${c.type} failed on masked column ${c.columns.join(', ')}`) }
      : c,
  );
  const conversions = plan.conversions.map((c) =>
    c.columns.some((col) => plan.masked.has(col))
      ? {
          ...c,
          valueSql: `'(masked)'`,
          reasonSql: lit(`${c.columns.join(', ')}: value does not convert (masked column)`),
        }
      : c,
  );
  const rowChecks = [...conversions, ...contract.checks, ...guarded];
  await validateRowChecks(lake.engine, clear, rowChecks);
  const flagged = await timed('checks', () => flagRows(lake, clear, rowChecks));
  const inputRows = flagged.rows;
  // scope: table thresholds judge every row since the last full build, this build included.
  const judged = judgeOverTable(
    flagged.results,
    rowChecks,
    input.mode === 'full' ? {} : (input.totals ?? {}),
    input.replayedFailures,
  );
  const rowResults = judged.results;
  for (const r of rowResults) {
    const conversion = r.severity === 'warn' && r.failed > 0 ? conversions.find((c) => c.name === r.name) : undefined;
    if (conversion)
      warn(
        `${r.failed} ${r.failed === 1 ? 'value' : 'values'} of ${conversion.columns.join(', ')} did not convert and became null: ${r.samples.slice(0, 3).join('; ')}`,
      );
  }
  const anyRejected = rowResults.some((r) => r.severity === 'error' && r.failed > 0);
  // Rows refused by error checks, by input position: every later step leaves them out by an anti join.
  const passing = `(SELECT * FROM ${clear} AS c ANTI JOIN ${REJECTS} AS q ON c.${POSITION_COLUMNS.file} = q.f AND c.${POSITION_COLUMNS.row} = q.r)`;

  const failReport = async (checks: CheckResult[], rows: number) => {
    const report = summarize(table, runId, now, rows, checks);
    await lake.catalog.saveQualityReport({
      table,
      runId,
      status: report.status,
      rows,
      report: { ...report, mode: input.mode } as unknown as Record<string, unknown>,
    });
    return report;
  };
  const breached = rowResults.filter((r) => r.severity === 'error' && !r.passed);
  if (breached.length) {
    const report = await failReport(rowResults, inputRows);
    throw new QualityFailedError(
      `${table}: data quality checks failed, nothing was committed:\n${breached.map((r) => `  ${r.message}`).join('\n')}`,
      report,
    );
  }

  // Columns that look like PII but have no mask: a warning or an error per kind (privacy.detect;
  // a Luhn-valid card number is an error by default). Messages show redacted examples only.
  const judgePii = async (relation: string, columns: readonly Column[], prefix = '') => {
    const levels = ctx.privacy.detect;
    if (Object.values(levels).every((l) => l === 'off')) return;
    const unmasked = columns.filter((c) => cfg.columns[`${prefix}${c.name}`]?.pii !== false);
    for (const f of await detectPii(lake.engine, relation, unmasked, { wholeNumbers: true })) {
      const level = levels[f.kind];
      if (level === 'off') continue;
      const column = `${prefix}${f.column}`;
      const message = `column ${column} looks like ${f.kind} (detector ${f.kind}: ${f.matched} of ${f.sampled} sampled values, e.g. ${f.examples.join(', ')}) but has no mask; set columns.${column}.mask, or pii: false if it is not personal data`;
      if (level === 'error') {
        throw new ConfigError(
          `${table}: ${message}${f.kind === 'card' ? ' (card numbers fail the build by default; privacy.detect: {card: warn} only warns)' : ''}`,
          { details: { table, column, detector: f.kind } },
        );
      }
      warn(message);
    }
  };
  await timed('pii_detection', () =>
    judgePii(
      clear,
      plan.columns.filter((c) => !plan.masked.has(c.name)),
    ),
  );

  await storeTokens(ctx, cfg, plan, passing, warn);
  const written = await timed('write', () =>
    writeSilver(ctx, name, cfg, plan, passing, input, contract.dropped, judgePii),
  );
  const quarantineFiles: NewFile[] = [];
  // Input columns of masked columns are sealed in the quarantined copy (no clear PII there).
  const sensitive = inputColumns.filter((c) => plan.sensitiveInputs.includes(c.name));
  const seal = sensitive.length ? { columns: sensitive, sealer: await ctx.privacy.sealer() } : undefined;
  if (anyRejected)
    quarantineFiles.push(await timed('quarantine', () => writeQuarantine(ctx, name, input.relation, now, seal)));
  const quarantined = quarantineFiles[0]?.rows ?? 0;
  await lake.engine.run(`DROP TABLE IF EXISTS ${REJECTS}`);
  if (keptQuarantine) {
    const keptRows = await lake.engine.all(`SELECT count(*) AS n FROM ${keptQuarantine}`);
    if (Number(keptRows[0]?.['n'] ?? 0) > 0) {
      quarantineFiles.push(
        await writeLakeFile(
          lake,
          `SELECT * FROM ${keptQuarantine}`,
          { zone: 'quarantine', source: ctx.pipeline, table: `silver__${name}` },
          { run_id: runId, kept: true },
        ),
      );
    }
  }

  const silverRelation = written.relationAfter;
  const history = (await lake.catalog.listQualityReports(table, { limit: 60 }))
    .filter((r) => r.commitId !== null)
    .map((r) => Number((r.report as { newRows?: number }).newRows ?? r.rows))
    .reverse();
  const tableResults = await timed('table_checks', () =>
    evaluateTableChecks(lake.engine, silverRelation, compiled.table, {
      now,
      newRows: written.newRows,
      history,
      columns: written.schema.columns,
      rows: written.rows,
    }),
  );
  const report = {
    ...summarize(table, runId, now, inputRows, [...rowResults, ...tableResults]),
    newRows: written.newRows,
    mode: input.mode,
  };
  if (report.status === 'failed') {
    await lake.storage.delete([...written.files.map((f) => f.path), ...quarantineFiles.map((f) => f.path)]);
    await lake.catalog.saveQualityReport({
      table,
      runId,
      status: report.status,
      rows: inputRows,
      report: report as unknown as Record<string, unknown>,
    });
    const breachedTable = tableResults.filter((r) => r.severity === 'error' && !r.passed);
    throw new QualityFailedError(
      `${table}: data quality checks failed, nothing was committed:\n${breachedTable.map((r) => `  ${r.message}`).join('\n')}`,
      report,
    );
  }
  for (const r of [...rowResults, ...tableResults]) if (!r.passed) warn(r.message);

  const changes: TableChange[] = [...written.changes];
  const qName = quarantineTableName(name);
  if (quarantineFiles.length || input.replayedQuarantine) {
    const qSchema = quarantineFiles.length
      ? await lake.engine.describe(`SELECT * FROM ${parquetScan(quarantineFiles.map((f) => lake.storage.uri(f.path)))}`)
      : undefined;
    changes.push({
      table: qName,
      zone: 'quarantine',
      format: 'parquet',
      add: quarantineFiles,
      ...(input.mode === 'full'
        ? { remove: 'all' as const }
        : input.replayedQuarantine
          ? { remove: input.replayedQuarantine.map((f) => f.path) }
          : {}),
      ...(qSchema ? { schema: { columns: qSchema } } : {}),
    });
  }
  const request: CommitRequest = {
    runId,
    operation: written.operation,
    tables: changes,
    state: [
      {
        pipeline: ctx.pipeline,
        source: SILVER_STATE_SOURCE,
        stream: name,
        value: { bronzeCommit: input.bronzeCommit, definition, checks: judged.totals } satisfies SilverState,
      },
    ],
    summary: { rows: written.newRows, quarantined, mode: input.mode, input_rows: inputRows },
    qualityReports: [
      { table, runId, status: report.status, rows: inputRows, report: report as unknown as Record<string, unknown> },
    ],
  };
  const commit = await lake.catalog.commit(request);
  const result: SilverTableResult = {
    table,
    mode: input.mode,
    files: input.files,
    inputRows,
    rows: written.rows,
    newRows: written.newRows,
    quarantined,
    commit: commit.id,
    warnings,
    report,
    timings,
  };
  emit({ type: 'silver_committed', table, result });
  return result;
}

/** Tokenized values go into the vault before the tokens can appear in a commit. */
async function storeTokens(
  ctx: BuildContext,
  cfg: SilverTableConfig,
  plan: SilverPlan,
  passing: string,
  warn: (message: string) => void,
): Promise<void> {
  const columns = plan.columns.filter((c) => cfg.columns[c.name]?.mask === 'tokenize').map((c) => c.name);
  if (columns.length === 0) return;
  const vault = await ctx.privacy.openVault();
  if (!vault) throw new ConfigError(`silver: mask tokenize needs privacy.vault in dip.yaml`);
  const legacy = vault.legacyEntries();
  if (legacy)
    warn(
      `token vault ${vault.path} holds ${legacy} entries in the deprecated format any holder of privacy.vault.key can decrypt; run \`dip vault migrate\` to encrypt them for the roles' public keys`,
    );
  for (const column of columns) {
    const rows = await ctx.lake.engine.all(
      `SELECT DISTINCT CAST(${ident(column)} AS VARCHAR) AS v, ${plan.outputExpr.get(column) ?? ident(column)} AS t FROM ${passing} WHERE ${ident(column)} IS NOT NULL`,
    );
    vault.store(
      column,
      rows.map((r) => ({ token: String(r['t']), value: String(r['v']) })),
    );
  }
}
