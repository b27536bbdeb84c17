/**
 * The web console (/ui) in Debian chromium driven by playwright-core, over `dip serve` on the
 * demo project (`dip demo`, then a day of orders with one unknown status): sign in with the
 * token, the demo runs, a failed run's log (the social pipeline: its API emulator is gone), a
 * run triggered and watched to success, a table's quality chart, quarantine browsed and one row
 * replayed, lineage from a silver table to its source; screenshots in test-artifacts/console/;
 * axe-core finds no serious or critical violation; the console shows the CLI's figures (runs,
 * row counts, quality results). Skipped without chromium unless DIP_REQUIRE_SERVICES=1.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { serve, type RunningServer } from '../src/serve/server.js';
import { makeTempDir, REPO_ROOT, runCli } from './support/project.js';

const CHROMIUM = process.env['DIP_CHROMIUM'] ?? '/usr/bin/chromium';
const required = process.env['DIP_REQUIRE_SERVICES'] === '1';
const missing = !existsSync(CHROMIUM);
if (missing && required) throw new Error(`DIP_REQUIRE_SERVICES=1 but ${CHROMIUM} is missing`);

const TOKEN = 'console-test-token-0123456789';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'console');
const TIMEOUT = 60_000;

// biome-ignore lint/suspicious/noExplicitAny: CLI JSON of many shapes, compared field by field
type Json = any;

describe('web console', { skip: missing ? `no chromium at ${CHROMIUM}` : false, timeout: 600_000 }, () => {
  let dir = '';
  let lake: Lake | undefined;
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base = '';
  const cli = async (...args: string[]): Promise<Json> => {
    const r = await runCli(['-p', dir, '--json', ...args], dir);
    assert.equal(r.code, 0, `dip ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const axe = async (where: string) => {
    const source = await readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
    await page.evaluate(source);
    const result = (await page.evaluate(
      'axe.run(document, { resultTypes: ["violations"] }).then(r => r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help })))',
    )) as { id: string; impact: string; nodes: number; help: string }[];
    const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad, [], `${where}: ${JSON.stringify(bad)}`);
  };
  const idle = async () => {
    for (let i = 0; i < 600; i++) {
      const runs: Json[] = await cli('runs', 'list');
      if (runs.every((r) => !['queued', 'running'].includes(r.status))) return runs;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error('runs did not finish');
  };

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    if (!existsSync(join(REPO_ROOT, 'dist', 'ui', 'main.js')))
      execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-ui.mjs')]);
    dir = join(await makeTempDir('dip-console-'), 'demo-project');
    const demo = await runCli(['demo', dir, '--json'], REPO_ROOT);
    assert.equal(demo.code, 0, demo.stderr);
    lake = await Lake.open(await loadProject(dir));
    server = await serve(lake, {
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      tickMs: 200,
      concurrency: 2,
      executor: 'in-process',
      pollMs: 100,
      defaultMetrics: false,
    });
    base = server.address;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.setDefaultTimeout(TIMEOUT);
  });

  after(async () => {
    await browser?.close();
    await server?.close({ graceMs: 0 });
    await lake?.close();
  });

  it('signs in with the token and lists the demo runs as the CLI does', async () => {
    // Whatever the scheduler started ends first (a schedule without `start` runs no interval that
    // ended before serve started, issue 21: the demo's own orchestrated run is what is listed).
    await idle();
    const res = await fetch(`${base}/runs`);
    assert.equal(res.status, 401, 'the API still needs the token');
    await page.goto(`${base}/ui/`);
    await page.getByLabel('API token (serve.token)').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Runs' }).waitFor();
    const runs: Json[] = await cli('runs', 'list');
    assert.ok(runs.length >= 1, JSON.stringify(runs));
    for (const r of runs) {
      const row = page.locator(`tr[data-run="${r.id}"]`);
      await row.waitFor();
      assert.equal(await row.locator('.status').textContent(), r.status, r.id);
      assert.equal(await row.locator('td').nth(1).textContent(), r.pipeline);
    }
    assert.equal(await page.locator('tr[data-run]').count(), runs.length);
    assert.equal(page.url().includes(TOKEN), false, 'the token is never in a URL');
    await shot('01-runs');
    await axe('runs');
  });

  it("opens a failed run's log (social: its API emulator is gone)", async () => {
    await page.getByLabel('Pipeline to run').selectOption('social');
    await page.getByRole('button', { name: 'Trigger run' }).click();
    await page.locator('h1 .status', { hasText: /^failed$/ }).waitFor();
    const id = decodeURIComponent(String(await page.evaluate('location.hash')).replace('#/runs/', ''));
    const shown: Json = await cli('runs', 'show', id);
    assert.equal(shown.run?.status ?? shown.status, 'failed');
    const logButton = page.getByRole('button', { name: /^Log of ingest\.api attempt 1$/ });
    await logButton.click();
    const log = page.getByRole('region', { name: 'Attempt log' }).locator('pre');
    await log.waitFor();
    const text = (await log.textContent()) ?? '';
    assert.match(text, /failed: api\.posts: Secret reference \$\{env:SOCIAL_CLIENT_SECRET\} cannot be resolved/);
    assert.equal(text.includes(process.env['SOCIAL_CLIENT_SECRET'] ?? '\u0000none'), false);
    await shot('02-failed-run-log');
  });

  it('triggers a run of shop and watches it succeed (a day of orders, one with quantity 0)', async () => {
    await writeFile(
      join(dir, 'data', 'orders', 'orders-2026-11-04.csv'),
      'order_id,customer_id,product_id,quantity,unit_price,ordered_at,status\n400000,C-1001,P-101,1,21.00,2026-11-04 10:00:00,paid\n400001,C-1002,P-101,0,21.00,2026-11-04 11:00:00,paid\n',
    );
    await page.goto(`${base}/ui/#/runs`);
    await page.getByLabel('Pipeline to run').selectOption('shop');
    await page.getByRole('button', { name: 'Trigger run' }).click();
    const status = page.locator('h1 .status', { hasText: /^(succeeded|failed|crashed)$/ });
    await status.waitFor();
    assert.equal(await status.textContent(), 'succeeded', (await page.locator('main').textContent()) ?? '');
    await page.getByRole('group', { name: /^Tasks of run / }).waitFor();
    assert.ok((await page.locator('g.node.tone-succeeded').count()) >= 3);
    await shot('03-run-dag');
    await axe('run');
  });

  it('shows every table with the row counts the CLI shows', async () => {
    await page.goto(`${base}/ui/#/tables`);
    const tables: Json[] = await cli('tables');
    await page.locator(`tr[data-table="${tables[0].name}"]`).waitFor();
    for (const t of tables) {
      const rows = await page.locator(`tr[data-table="${t.name}"] td[data-rows]`).getAttribute('data-rows');
      assert.equal(Number(rows), t.rows, t.name);
    }
    assert.equal(await page.locator('tr[data-table]').count(), tables.length);
    await shot('04-tables');
  });

  it("opens silver.orders' quality chart with the CLI's quality results", async () => {
    await page.locator('a', { hasText: /^silver\.orders$/ }).click();
    const chart = page.getByRole('img', { name: /Failed rows per check over the last \d+ quality report/ });
    await chart.locator('canvas').waitFor();
    const [latest]: Json[] = await cli('quality', 'silver.orders');
    for (const c of latest.report.checks) {
      const failed = await page.locator(`tr[data-check="${c.name}"] td[data-failed]`).getAttribute('data-failed');
      assert.equal(Number(failed), c.failed, c.name);
    }
    assert.equal(
      latest.report.checks.find((c: Json) => c.name === 'range_quantity')?.failed,
      1,
      'the order with quantity 0',
    );
    await shot('05-quality');
    await axe('table');
  });

  it('browses quarantine and replays one row', async () => {
    const quarantine = page.getByRole('region', { name: 'Quarantine' });
    await quarantine.getByText('range_quantity: 1').waitFor();
    const listed: Json = await cli('quarantine', 'list', 'silver.orders');
    assert.equal(JSON.stringify(listed).includes('400001'), true);
    await quarantine.getByRole('button', { name: 'Replay row 400001' }).click();
    const status = quarantine.getByRole('status').filter({ hasText: /^Replayed / });
    await status.waitFor();
    const m = /^Replayed 1 row\(s\): (\d+) passed, (\d+) still quarantined; silver\.orders holds (\d+) row\(s\)$/.exec(
      (await status.textContent()) ?? '',
    );
    assert.ok(m, (await status.textContent()) ?? '');
    assert.equal(Number(m[1]) + Number(m[2]), 1);
    const after: Json = await cli('quarantine', 'list', 'silver.orders');
    assert.equal(JSON.stringify(after.rows ?? after).includes('400001'), m[2] === '1');
    const [silver]: Json[] = (await cli('tables')).filter((t: Json) => t.name === 'silver.orders');
    assert.equal(Number(m[3]), silver.rows);
    await shot('06-quarantine-replay');
  });

  it('follows lineage from silver.orders to its source', async () => {
    await page.goto(`${base}/ui/#/lineage`);
    await page.locator('g[data-node="silver.orders"]').click();
    const up = page.getByRole('region', { name: 'Upstream' }).locator('li');
    await page.getByRole('heading', { name: 'silver.orders comes from' }).waitFor();
    assert.deepEqual(await up.allTextContents(), ['bronze.orders', 'raw.orders', 'source:shop.exports']);
    await shot('07-lineage');
    await axe('lineage');
  });

  it('shows health from /metrics', async () => {
    await page.goto(`${base}/ui/#/health`);
    await page.getByRole('region', { name: 'Queue depth' }).locator('td').first().waitFor();
    await shot('08-health');
    await axe('health');
  });
});
