import type { Command } from 'commander';
import { withLake, type GlobalOptions } from '../context.js';
import { formatCount, printJson, renderTable } from '../output.js';

export function registerBuild(program: Command): void {
  program
    .command('build')
    .description('build gold models (SQL models, SCD2 dimensions, star schemas, aggregates) in dependency order')
    .argument('[models...]', 'gold models, e.g. fact_sales or gold.fact_sales (default: all)')
    .option('--full-refresh', 'rebuild from every input row instead of the commits since the last build')
    .option('--quiet', 'no progress output')
    .action(async (models: string[], opts: { fullRefresh?: boolean; quiet?: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const quiet = Boolean(opts.quiet) || Boolean(global.json);
      const { buildModels } = await import('../../ops/build.js');
      const results = await withLake(global, (lake) =>
        buildModels(lake, {
          models: models.length ? models : undefined,
          fullRefresh: Boolean(opts.fullRefresh),
          onEvent: (e) => {
            if (quiet) return;
            if (e.type === 'gold_started') process.stderr.write(`${e.table}: building (${e.kind})\n`);
            if (e.type === 'gold_warning') process.stderr.write(`warning: ${e.table}: ${e.message}\n`);
          },
        }),
      );
      if (global.json) return printJson(results.map(({ report, ...r }) => ({ ...r, quality: report?.status })));
      if (results.length === 0) return;
      process.stdout.write(
        `${renderTable(
          ['gold model', 'kind', 'build', 'new/changed', 'rows', 'quarantined', 'quality', 'commit'],
          results.map((r) => [
            r.table,
            r.kind,
            r.mode,
            formatCount(r.newRows),
            formatCount(r.rows),
            formatCount(r.quarantined),
            r.report?.status ?? '',
            r.commit ?? '',
          ]),
        )}\n`,
      );
    });
}
