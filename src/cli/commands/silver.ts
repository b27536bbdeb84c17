import type { Command } from 'commander';
import type { PipelineConfig } from '../../config/schema.js';
import { ConfigError } from '../../core/errors.js';
import { asRegisteredWriter } from '../../lake/writers.js';
import { formatReport, type QualityReport } from '../../quality/report.js';
import { runSilver, type SilverEvent, type SilverTableResult } from '../../transform/silver.js';
import { withLake, type GlobalOptions } from '../context.js';
import { bronzeTableNames } from '../../pipeline/pipelines.js';
import { assertKnown, wholeNumber } from '../options.js';
import { formatCount, printJson, renderTable } from '../output.js';

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
      const runs = wholeNumber(opts.runs, '--runs', 1);
      const { qualityReports } = await import('../../ops/quality.js');
      const reports = await withLake(global, (lake) => qualityReports(lake, table, { runs }));
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
      const limit = wholeNumber(opts.limit, '--limit', 1);
      const { listQuarantine } = await import('../../ops/quarantine.js');
      const out = await withLake(global, (lake) => listQuarantine(lake, { table, check: opts.check, limit }));
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
      const { replayQuarantined } = await import('../../ops/quarantine.js');
      const result = await withLake(global, (lake) =>
        replayQuarantined(lake, table, {
          check: opts.check,
          where: opts.where,
          set,
          onEvent: logEvent(Boolean(global.json)),
        }),
      );
      if (global.json) return printJson({ ...result, report: result.report?.status });
      process.stdout.write(
        `replayed ${formatCount(result.inputRows)} quarantined rows into ${result.table}: ${formatCount(result.inputRows - result.stillQuarantined)} landed, ${formatCount(result.stillQuarantined)} still failing${result.commit ? ` (commit ${result.commit})` : ''}\n`,
      );
    });
}
