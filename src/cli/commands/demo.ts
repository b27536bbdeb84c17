import { appendFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { PRIVATE_FILE_MODE, mkdirPrivate } from '../../core/private-files.js';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../core/errors.js';
import type { Command } from 'commander';
import type { Lake } from '../../lake/lake.js';
import type { RunResult } from '../../pipeline/run.js';
import type { GlobalOptions } from '../context.js';
import { formatCount, printJson, renderTable } from '../output.js';
import { printRunSummary } from './run.js';
import { formatReport, type QualityReport } from '../../quality/report.js';
import {
  PROJECT_YAML,
  REVENUE_BY_CITY_SQL,
  SHOP_GOLD_YAML,
  addNextDay,
  scaffoldProject,
  socialPipelineYaml,
} from '../scaffold.js';

let narrate = true;
const say = (s = '') => {
  if (narrate) process.stdout.write(`${s}\n`);
};
const DEMO_MARKER = '.dip-demo';

/** Recreates only a directory an earlier demo made (or an empty one): never someone's files. */
async function clearDemoDir(abs: string): Promise<void> {
  const entries = await readdir(abs).catch(() => [] as string[]);
  if (entries.length === 0) return;
  const ours =
    entries.includes(DEMO_MARKER) || (await readFile(join(abs, 'dip.yaml'), 'utf8').catch(() => '')) === PROJECT_YAML;
  if (!ours) {
    throw new ConfigError(
      `${abs} is not empty and was not made by \`dip demo\`; pass a new directory (dip demo <dir>)`,
    );
  }
  await rm(abs, { recursive: true, force: true });
}

async function show(lake: Lake, title: string, sql: string): Promise<void> {
  if (!narrate) return;
  const { query } = await import('../../lake/query.js');
  const r = await query(lake, sql);
  const names = r.columns.map((c) => c.name);
  say(`\n▸ ${title}\n  $ dip query "${sql.replace(/\s+/g, ' ')}"`);
  say(
    renderTable(
      names,
      r.rows.map((row) => names.map((n) => row[n])),
    ).replace(/^/gm, '  '),
  );
}

/**
 * Steps 3–4: a REST API (the social metrics emulator, started here on a free port) loaded with
 * OAuth2, cursor pages, parent/child comments and incremental merges, then loaded again after
 * its data moved on.
 */
async function socialSteps(abs: string, report: (r: RunResult) => RunResult): Promise<RunResult[]> {
  const [{ SocialApiEmulator }, { runPipeline }] = await Promise.all([
    import('../../emulate/social-api.js'),
    import('../../pipeline/run.js'),
  ]);
  const api = await SocialApiEmulator.start({ seed: 7, posts: 150, errorRate: 0.03 });
  try {
    process.env['SOCIAL_CLIENT_SECRET'] = api.clientSecret;
    await appendFile(join(abs, 'dip.yaml'), socialPipelineYaml(api.url, api.clientId));
    const lake = await openLake(abs);
    try {
      say(`\n4) a REST API (the social metrics emulator at ${api.url}): OAuth2, cursor pages, comments per post`);
      const first = report(await runPipeline(lake, 'social'));
      await show(
        lake,
        'silver posts: nested author and metrics flattened, engagement derived, media and hashtags as child tables',
        `select id, metrics__views as views, engagement_rate, (select count(*) from silver.posts__hashtags h where h._dip_parent_id = p._dip_id) as tags, (select count(*) from silver.posts__media m where m._dip_parent_id = p._dip_id) as media from silver.posts p order by views desc limit 3`,
      );
      api.advance(6 * 3_600_000);
      say('\n5) six hours later: posts changed and new ones appeared; the incremental run fetches only those');
      const second = report(await runPipeline(lake, 'social'));
      await show(
        lake,
        'each response page is kept raw (URL without secrets, status, headers)',
        `select seq, json_extract_string(position, 'url') as url, json_extract_string(position, 'status') as status from raw.posts order by received_at desc, seq limit 2`,
      );
      return [first, second];
    } finally {
      await lake.close();
    }
  } finally {
    await api.close();
  }
}

async function showQuality(lake: Lake, table: string): Promise<void> {
  const [report] = await lake.catalog.listQualityReports(table, { limit: 1 });
  if (!narrate || !report) return;
  say(`\n▸ data quality of ${table} (each run keeps one)\n  $ dip quality ${table}`);
  say(formatReport(report.report as unknown as QualityReport).replace(/^/gm, '  '));
}

/** The same pipeline as a DAG under the orchestrator: tasks from inputs/outputs, run in parallel where they can. */
async function orchestratedStep(lake: Lake): Promise<void> {
  const { startRuntime, waitForRuns } = await import('../../orchestrate/runtime.js');
  const runtime = startRuntime(lake, { concurrency: 2, pollMs: 50 });
  try {
    const run = await runtime.orchestrator.trigger('shop');
    const [done] = await waitForRuns(runtime.orchestrator.store, [run.id], { pollMs: 50 });
    if (!narrate) return;
    const tasks = await runtime.orchestrator.store.listTasks(run.id);
    say(
      `\n3) the orchestrator runs the pipeline as a DAG (dip trigger shop; dip serve schedules it "0 2 * * *"): ${done?.status}`,
    );
    say(
      renderTable(
        ['task', 'after', 'status', 'attempts', 'new rows'],
        tasks.map((t) => [t.task, t.deps.join(', '), t.status, t.attempt, formatCount(t.rows)]),
      ).replace(/^/gm, '  '),
    );
  } finally {
    await runtime.stop();
  }
}

/** `dip -p <demo> serve` as a child process (stdio shared, signals forwarded); its exit code. */
async function serveDemo(abs: string): Promise<number> {
  const { spawn } = await import('node:child_process');
  const script = process.argv[1] ?? '';
  say(`\nstarting dip serve on ${abs}; the web console is at the "web console" address below (Ctrl-C stops it)`);
  // Its own process group: each signal this process gets reaches it exactly once (forwarded), so a
  // second Ctrl-C still means "exit at once" to dip serve.
  const child = spawn(process.execPath, [script, '-p', abs, 'serve'], { stdio: 'inherit', detached: true });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((done) => child.on('exit', (code) => done(code ?? 1)));
}

/** The lake of the demo project; config, lake and pipeline modules load when the demo runs, not for `dip --help`. */
async function openLake(abs: string): Promise<Lake> {
  const [{ loadProject }, { Lake }] = await Promise.all([import('../../config/load.js'), import('../../lake/lake.js')]);
  return Lake.open(await loadProject(abs));
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'scaffold a sample shop project, ingest two days of exports, and show what landed (what `npm start` runs)',
    )
    .argument('[dir]', 'where to put the demo project (recreated each time)', 'demo-project')
    .option(
      '--serve',
      'then run `dip serve` on the demo project (the web console at http://127.0.0.1:8420/ui/) until Ctrl-C',
    )
    .action(async (dir: string, opts: { serve?: boolean }, cmd: Command) => {
      narrate = !cmd.optsWithGlobals<GlobalOptions>().json;
      const report = (r: RunResult) => {
        if (narrate) printRunSummary([r]);
        return r;
      };
      const abs = resolve(dir);
      await clearDemoDir(abs);
      await scaffoldProject(abs);
      // The demo's shop pipeline also models a small star schema in gold (SQL model in models/).
      await appendFile(join(abs, 'dip.yaml'), SHOP_GOLD_YAML);
      await mkdirPrivate(join(abs, 'models'));
      await writeFile(join(abs, 'models', 'revenue_by_city.sql'), REVENUE_BY_CITY_SQL, { mode: PRIVATE_FILE_MODE });
      await writeFile(join(abs, DEMO_MARKER), 'written by `dip demo`; the directory is recreated on each demo run\n');
      say(`DIP demo — a project in ${abs} on embedded defaults (local lake, SQLite catalog, DuckDB)`);
      const { runPipeline } = await import('../../pipeline/run.js');
      const lake = await openLake(abs);
      try {
        say('\n1) first run: orders (CSV), customers (NDJSON), products (JSON) → raw + bronze');
        const first = report(await runPipeline(lake, 'shop'));
        await show(
          lake,
          'revenue by status, straight from bronze',
          `select status, count(*) as orders, round(sum(quantity * unit_price), 2) as revenue from bronze.orders group by status order by status`,
        );
        await show(
          lake,
          'malformed rows were quarantined with file, line and reason',
          `select regexp_extract(_dip_source_file, '[^/]+$') as file, line, error_type, reason from quarantine.orders order by line`,
        );

        const added = await addNextDay(abs);
        say(`\n2) a day later new exports arrive (${added.join(', ')}); the second run reads only those`);
        const second = report(await runPipeline(lake, 'shop'));
        await show(
          lake,
          'customers merged by key: updates applied, C-1001 deleted',
          `select count(*) as customers, count(*) filter (where customer_id = 'C-1001') as c1001_rows, max(address.city) as some_city from bronze.customers`,
        );
        await show(
          lake,
          'the orders table evolved: coupon was added as schema v2',
          `select _dip_source_file like '%11-01%' as first_file, count(*) as orders, count(coupon) as with_coupon from bronze.orders group by all order by 1`,
        );
        await show(
          lake,
          'every record is also kept raw, as it arrived',
          `select seq, payload, run_id from raw.orders order by received_at, seq limit 2`,
        );
        await show(
          lake,
          'silver: typed, UTC, mapped, deduplicated and checked (the orders with quantity "three" never got here)',
          `select order_id, ordered_at, status, amount, _dip_first_seen is not null as audited from silver.orders order by order_id limit 3`,
        );
        await show(
          lake,
          'silver customers: email is a salted hash, address flattened, tags a child table',
          `select customer_id, left(email, 16) || '…' as email, address__city, (select count(*) from silver.customers__tags t where t._dip_parent_id = c._dip_id) as tags from silver.customers c order by customer_id limit 3`,
        );
        await showQuality(lake, 'silver.orders');
        await show(
          lake,
          'gold: a star schema — each order joins the customer version valid when it was placed (SCD2, as-of)',
          `select d.month_name as month, c.address__city as city, count(*) as orders, round(sum(f.amount), 2) as revenue, count(*) filter (where f.customer_key = -1) as unknown_customer from gold.fact_orders f join gold.dim_date d using (date_key) left join gold.dim_customer c using (customer_key) group by all order by revenue desc limit 3`,
        );
        await show(
          lake,
          'gold dim_customer: customers whose address changed have two versions',
          `select customer_id, address__city, valid_from, valid_to, is_current from gold.dim_customer where customer_id in (select customer_id from gold.dim_customer group by 1 having count(*) > 1) order by customer_id, valid_from limit 4`,
        );
        await orchestratedStep(lake);
        const social = await socialSteps(abs, report);
        const tables = await (await import('../../ops/tables.js')).listTables(lake);
        if (!narrate) return printJson({ project: abs, runs: [first, second, ...social], tables });
        say('\n▸ tables');
        say(
          renderTable(
            ['table', 'rows', 'files', 'schema'],
            tables.map((t) => [t.name, formatCount(t.rows), t.files, `v${t.schemaVersion ?? '-'}`]),
          ).replace(/^/gm, '  '),
        );
        say(`\nlook around (from this repository; with DIP installed, plain \`dip …\` inside ${dir}):`);
        for (const cmd of [
          'status',
          'runs list',
          'tables',
          'describe silver.orders',
          'describe gold.revenue_by_city',
          'build --full-refresh',
          'quality silver.orders',
          'quarantine list',
          'query "select * from silver.customers limit 5"',
        ]) {
          say(`  npm run dip -- -p ${dir} ${cmd}`);
        }
        if (!opts.serve)
          say(
            `\nweb console: npm run dip -- -p ${dir} serve, then open http://127.0.0.1:8420/ui/ (or: npm start -- --serve)`,
          );
      } finally {
        await lake.close();
      }
      if (opts.serve) process.exitCode = await serveDemo(abs);
    });
}
