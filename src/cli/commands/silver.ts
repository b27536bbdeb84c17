import type { Command } from 'commander';
import type { LoadedProject } from '../../config/load.js';
import type { PipelineConfig } from '../../config/schema.js';
import { ConfigError, DipError } from '../../core/errors.js';
import { asRegisteredWriter } from '../../lake/writers.js';
import { parquetScan } from '../../lake/scan.js';
import { ident, lit } from '../../lake/sql.js';
import { formatReport, type QualityReport } from '../../quality/report.js';
import { QUARANTINE_META, quarantineTableName } from '../../transform/quarantine.js';
import { replayQuarantine, runSilver, type SilverEvent, type SilverTableResult } from '../../transform/silver.js';
import { withLake, type GlobalOptions } from '../context.js';
import { bronzeTableNames } from '../../pipeline/pipelines.js';
import { assertKnown, wholeNumber } from '../options.js';
import { formatCount, printJson, renderTable } from '../output.js';

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

function logEvent(quiet: boolean): (e: SilverEvent) => void {
  return (e) => {
    if (quiet) return;
    if (e.type === 'silver_started') process.stderr.write(`${e.table}: ${e.mode} build from ${e.files} file(s)\n`);
    if (e.type === 'silver_warning') process.stderr.write(`warning: ${e.table}: ${e.message}\n`);
  };
}

export function printSilverResults(results: readonly SilverTableResult[]): void {
  if (results.length === 0) return;
  process.stdout.write(
    `${renderTable(
      ['silver table', 'build', 'input rows', 'new/changed', 'rows', 'quarantined', 'quality', 'commit'],
      results.map((r) => [
        r.table,
        r.mode,
        formatCount(r.inputRows),
        formatCount(r.newRows),
        formatCount(r.rows),
        formatCount(r.quarantined),
        r.report?.status ?? '',
        r.commit ?? '',
      ]),
    )}\n`,
  );
}

export function registerSilver(program: Command): void {
  program
    .command('transform')
    .description(
      'build silver tables from bronze: standardize, flatten, dedup, mask, check (only new bronze data unless --full-refresh)',
    )
    .argument('[pipelines...]', 'pipelines (default: all with silver tables)')
    .option('--table <names...>', 'only these silver tables')
    .option('--full-refresh', 'rebuild from every live bronze file')
    .option('--quiet', 'no progress output')
    .action(
      async (names: string[], opts: { table?: string[]; fullRefresh?: boolean; quiet?: boolean }, cmd: Command) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const results = await withLake(global, async (lake) => {
          const pipelines = lake.project.config.pipelines;
          const all = Object.keys(pipelines).filter((p) => Object.keys(pipelines[p]?.silver ?? {}).length > 0);
          const chosen = names.length ? names : all;
          assertKnown('pipeline', chosen, Object.keys(pipelines));
          if (opts.table)
            assertKnown(
              'silver table',
              opts.table,
              chosen.flatMap((p) => Object.keys(pipelines[p]?.silver ?? {})),
            );
          const out: SilverTableResult[] = [];
          for (const p of chosen) {
            const config = pipelines[p] as PipelineConfig;
            const tables = opts.table?.filter((t) => config.silver[t]);
            if (opts.table && tables?.length === 0) continue;
            // A run of the pipeline, as `dip run` records one: gc leaves the files a build publishes
            // before its commit alone while it is running.
            const built = await asRegisteredWriter(
              lake,
              p,
              (runId) =>
                runSilver(lake, p, config, {
                  runId,
                  tables,
                  fullRefresh: Boolean(opts.fullRefresh),
                  onEvent: logEvent(Boolean(opts.quiet) || Boolean(global.json)),
                  declaredBronze: bronzeTableNames(config),
                }),
              (results) => ({
                streams: Object.fromEntries(
                  results.map((r) => [
                    `silver.${r.table}`,
                    {
                      rows: r.newRows,
                      bytes: 0,
                      files: r.files,
                      quarantined: r.quarantined,
                      commits: r.commit === null ? 0 : 1,
                      skippedFiles: 0,
                    },
                  ]),
                ),
              }),
            );
            out.push(...built);
          }
          return out;
        });
        if (global.json) printJson(results.map(({ report, ...r }) => ({ ...r, quality: report?.status })));
        else printSilverResults(results);
      },
    );

  program
    .command('quality')
    .description('show the data quality report of a silver table (latest run, or history)')
    .argument('<table>', 'silver table, e.g. posts or silver.posts')
    .option('--runs <n>', 'how many reports, newest first', '1')
    .action(async (table: string, opts: { runs: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const name = table.includes('.') ? table : `silver.${table}`;
      const reports = await withLake(global, (lake) =>
        lake.catalog.listQualityReports(name, { limit: wholeNumber(opts.runs, '--runs', 1) }),
      );
      if (reports.length === 0)
        throw new DipError('not_found', `no quality report for ${name} yet (run dip transform first)`);
      if (global.json) return printJson(reports);
      for (const r of reports) {
        process.stdout.write(
          `${r.commitId === null ? 'not committed' : `commit ${r.commitId}`} · run ${r.runId ?? '-'} · ${r.createdAt.toISOString()}\n`,
        );
        process.stdout.write(`${formatReport(r.report as unknown as QualityReport)}\n\n`);
      }
      if (reports[0]?.status === 'failed') process.exitCode = 7;
    });

  const quarantine = program
    .command('quarantine')
    .description('rows refused by silver checks: list them, replay them once fixed');
  quarantine
    .command('list')
    .description('quarantined rows per table and check; with a table, the rows themselves')
    .argument('[table]', 'silver table (e.g. posts)')
    .option('--check <name>', 'only rows that failed this check')
    .option('--limit <n>', 'rows to show', '20')
    .action(async (table: string | undefined, opts: { check?: string; limit: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const out = await withLake(global, async (lake) => {
        const tables = (await lake.catalog.listTables()).filter(
          (t) => t.zone === 'quarantine' && (!table || t.name === quarantineTableName(table.replace(/^silver\./, ''))),
        );
        if (table && tables.length === 0) return { summary: [], rows: [] };
        const summary: { table: string; check: string; rows: number }[] = [];
        let rows: Record<string, unknown>[] = [];
        for (const t of tables) {
          const files = await lake.catalog.liveFiles(t.name);
          if (files.length === 0) continue;
          const scan = parquetScan(files.map((f) => lake.storage.uri(f.path)));
          const silverQ = t.name.startsWith('quarantine.silver__');
          if (!silverQ) {
            summary.push({
              table: t.name,
              check: '(bronze: unparseable records)',
              rows: files.reduce((n, f) => n + f.rows, 0),
            });
            continue;
          }
          const filter = opts.check
            ? `WHERE list_contains(string_split(${QUARANTINE_META.check}, ', '), ${lit(opts.check)})`
            : '';
          for (const r of await lake.engine.all(
            `SELECT c AS check, count(*) AS n FROM (SELECT unnest(string_split(${QUARANTINE_META.check}, ', ')) AS c FROM ${scan} ${filter}) GROUP BY 1 ORDER BY 1`,
          )) {
            summary.push({ table: t.name, check: String(r['check']), rows: Number(r['n']) });
          }
          if (table) {
            rows = await lake.engine.all(
              `SELECT ${QUARANTINE_META.check} AS check, ${QUARANTINE_META.reason} AS reason, CAST(${QUARANTINE_META.at} AS VARCHAR) AS quarantined_at, * EXCLUDE (${Object.values(QUARANTINE_META).map(ident).join(', ')})
               FROM ${scan} ${filter} ORDER BY ${QUARANTINE_META.at} LIMIT ${wholeNumber(opts.limit, '--limit', 1)}`,
            );
          }
        }
        return { summary, rows };
      });
      if (global.json) return printJson(out);
      if (out.summary.length === 0) {
        process.stdout.write('quarantine is empty\n');
        return;
      }
      process.stdout.write(
        `${renderTable(
          ['table', 'check', 'rows'],
          out.summary.map((s) => [s.table, s.check, formatCount(s.rows)]),
        )}\n`,
      );
      if (out.rows.length) {
        process.stdout.write('\n');
        for (const r of out.rows)
          process.stdout.write(
            `${String(r['check'])}: ${String(r['reason'])}\n  ${JSON.stringify(Object.fromEntries(Object.entries(r).filter(([k]) => !['check', 'reason'].includes(k) && !k.startsWith('_dip_'))))}\n`,
          );
      }
    });

  quarantine
    .command('replay')
    .description(
      'run quarantined rows through the silver step again (after fixing the rules in dip.yaml, or the rows with --set); rows that pass land once and leave quarantine',
    )
    .argument('<table>', 'silver table (e.g. posts)')
    .option('--check <name>', 'only rows that failed this check')
    .option('--where <sql>', 'only rows matching this SQL condition (over the quarantined columns)')
    .option(
      '--set <assignments...>',
      'fix values before re-checking: column=SQL expression, e.g. "email=lower(trim(email))"',
    )
    .action(async (table: string, opts: { check?: string; where?: string; set?: string[] }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const set: Record<string, string> = {};
      for (const a of opts.set ?? []) {
        const eq = a.indexOf('=');
        if (eq <= 0) throw new ConfigError(`--set ${a}: expected column=SQL expression, e.g. "email=lower(email)"`);
        set[a.slice(0, eq).trim()] = a.slice(eq + 1);
      }
      const result = await withLake(global, async (lake) => {
        const owner = silverOwner(lake.project, table);
        return asRegisteredWriter(lake, owner.pipeline, (runId) =>
          replayQuarantine(lake, owner.pipeline, owner.config, owner.table, {
            runId,
            check: opts.check,
            where: opts.where,
            set,
            onEvent: logEvent(Boolean(global.json)),
          }),
        );
      });
      if (global.json) return printJson({ ...result, report: result.report?.status });
      process.stdout.write(
        `replayed ${formatCount(result.inputRows)} quarantined rows into ${result.table}: ${formatCount(result.inputRows - result.stillQuarantined)} landed, ${formatCount(result.stillQuarantined)} still failing${result.commit ? ` (commit ${result.commit})` : ''}\n`,
      );
    });
}
