/**
 * The orchestrator end to end on the embedded catalog: DAG order, intervals passed to sources,
 * retries (fail twice then succeed; terminal errors not retried), resume from the failed task,
 * backfills behind fresh runs, pools, cancel, and graceful hand-back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { parseProject } from '../src/config/load.js';
import { pipelineDag } from '../src/config/task-graph.js';
import { startRuntime, waitForRuns, type Runtime } from '../src/orchestrate/runtime.js';
import { projectConfig, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const runtimes: Runtime[] = [];
after(async () => {
  for (const r of runtimes) await r.stop();
  for (const p of projects) await p.dispose();
});

async function project(pipeline: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestProject> {
  const p = await TestProject.create({});
  const config = projectConfig({});
  (config['pipelines'] as Record<string, unknown>)['p'] = pipeline;
  await p.write('dip.yaml', JSON.stringify({ ...config, ...extra }, null, 2));
  projects.push(p);
  return p;
}

async function runtime(p: TestProject, options: Parameters<typeof startRuntime>[1] = {}): Promise<Runtime> {
  const r = startRuntime(await p.lake(), { leaseMs: 2_000, pollMs: 50, ...options });
  runtimes.push(r);
  return r;
}

const day = (d: string) => new Date(`${d}T00:00:00Z`);

describe('orchestrator', () => {
  it('derives the DAG from inputs and outputs, with explicit dependencies', async () => {
    const p = await project({
      sources: {
        shop: { type: 'files', streams: { orders: { path: 'data/*.csv' } } },
        crm: { type: 'files', streams: { customers: { path: 'crm/*.csv' } } },
      },
      silver: {
        orders: {
          from: 'orders',
          joins: [
            { alias: 'c', table: 'silver.customers', on: 'c.id = s.customer_id', columns: { country: 'c.country' } },
          ],
        },
        customers: { from: 'customers' },
      },
      tasks: {
        report: { shell: 'true', inputs: ['silver.orders'] },
        notify: { shell: 'true', depends_on: ['report'] },
        'ingest.shop': { retries: { attempts: 5 }, timeout: '1m' },
      },
    });
    const dag = pipelineDag((await p.lake()).project.config, 'p');
    const deps = Object.fromEntries(dag.tasks.map((t) => [t.name, t.deps.sort()]));
    assert.deepEqual(deps, {
      'ingest.shop': [],
      'ingest.crm': [],
      'silver.customers': ['ingest.crm'],
      'silver.orders': ['ingest.shop', 'silver.customers'],
      report: ['silver.orders'],
      notify: ['report'],
    });
    const order = dag.tasks.map((t) => t.name);
    assert.ok(order.indexOf('silver.customers') < order.indexOf('silver.orders'));
    const shop = dag.tasks.find((t) => t.name === 'ingest.shop');
    assert.equal(shop?.retry.attempts, 5);
    assert.equal(shop?.retry.timeoutMs, 60_000);
  });

  it('rejects cycles, unknown dependencies and unknown pools with the path', async () => {
    const cyc = await project({
      sources: {},
      tasks: { a: { shell: 'true', depends_on: ['b'] }, b: { shell: 'true', depends_on: ['a'] } },
    });
    assert.throws(() => pipelineDag(cycConfig(cyc), 'p'), /tasks form a cycle: (a → b → a|b → a → b)/);
    const unknown = await project({ sources: {}, tasks: { a: { shell: 'true', depends_on: ['nope'] } } });
    assert.throws(() => pipelineDag(cycConfig(unknown), 'p'), /pipelines\.p\.tasks\.a\.depends_on: no task nope/);
    const pool = await project({ sources: {}, tasks: { a: { shell: 'true', pool: 'api' } } });
    assert.throws(() => pipelineDag(cycConfig(pool), 'p'), /pipelines\.p\.tasks\.a\.pool: no pool api/);
  });

  it('runs a backfill: one run per interval, the interval passed to the source, each interval landed once', async () => {
    const p = await project({
      schedule: { every: '1d' },
      sources: { shop: { type: 'files', streams: { orders: { path: 'data/{interval.start_date}.csv' } } } },
      silver: { orders: { from: 'orders', primary_key: ['id'] } },
      tasks: { done: { shell: 'echo "$DIP_INTERVAL_START" >> intervals.txt', depends_on: ['silver.orders'] } },
    });
    for (const [i, d] of ['2026-03-01', '2026-03-02', '2026-03-03'].entries())
      await p.write(`data/${d}.csv`, `id,day\n${i * 2 + 1},${d}\n${i * 2 + 2},${d}\n`);
    const r = await runtime(p);
    const plan = await r.orchestrator.backfill('p', { from: day('2026-03-01'), to: day('2026-03-04'), parallel: 2 });
    assert.equal(plan.runIds.length, 3);
    const runs = await waitForRuns(r.orchestrator.store, plan.runIds, { pollMs: 50 });
    assert.deepEqual(
      runs.map((x) => [x.status, x.error]),
      [
        ['succeeded', null],
        ['succeeded', null],
        ['succeeded', null],
      ],
    );
    assert.deepEqual(
      runs.map((x) => x.interval?.start.toISOString().slice(0, 10)),
      ['2026-03-01', '2026-03-02', '2026-03-03'],
    );
    assert.equal(await p.count('bronze.orders'), 6);
    assert.equal(await p.count('silver.orders'), 6);
    assert.deepEqual(await p.rows(`SELECT day, count(*)::INT AS n FROM bronze.orders GROUP BY day ORDER BY day`), [
      { day: '2026-03-01', n: 2 },
      { day: '2026-03-02', n: 2 },
      { day: '2026-03-03', n: 2 },
    ]);
    const { readFile } = await import('node:fs/promises');
    assert.deepEqual((await readFile(p.path('intervals.txt'), 'utf8')).trim().split('\n').sort(), [
      '2026-03-01T00:00:00Z',
      '2026-03-02T00:00:00Z',
      '2026-03-03T00:00:00Z',
    ]);
    const tasks = await r.orchestrator.store.listTasks(plan.runIds[0] as string);
    assert.deepEqual(
      tasks.map((t) => [t.task, t.status, t.attempt]),
      [
        ['ingest.shop', 'succeeded', 1],
        ['silver.orders', 'succeeded', 1],
        ['done', 'succeeded', 1],
      ],
    );
    assert.equal(tasks[0]?.rows, 2);
    // A second backfill over the same range has nothing to do; the dry run lists what it would run.
    const again = await r.orchestrator.backfill('p', { from: day('2026-03-01'), to: day('2026-03-05'), dryRun: true });
    assert.deepEqual(
      again.intervals.map((i) => i.start.toISOString().slice(0, 10)),
      ['2026-03-04'],
    );
    assert.equal(again.skipped.length, 3);
    assert.deepEqual(again.runIds, []);
    // Batched: one run per 3 days; days inside a batched run count as covered afterwards.
    const batched = await r.orchestrator.backfill('p', {
      from: day('2026-03-04'),
      to: day('2026-03-11'),
      batch: 3,
      dryRun: true,
    });
    assert.deepEqual(
      batched.intervals.map((i) => [i.start.toISOString().slice(0, 10), i.end.toISOString().slice(0, 10)]),
      [
        ['2026-03-04', '2026-03-07'],
        ['2026-03-07', '2026-03-10'],
        ['2026-03-10', '2026-03-11'],
      ],
    );
    const wide = await r.orchestrator.backfill('p', {
      from: day('2026-02-28'),
      to: day('2026-03-04'),
      batch: 7,
      dryRun: true,
    });
    assert.deepEqual(
      wide.intervals.map((i) => [i.start.toISOString().slice(0, 10), i.end.toISOString().slice(0, 10)]),
      [['2026-02-28', '2026-03-01']],
      'covered days split batches',
    );
  });
});

function cycConfig(p: TestProject) {
  return parseProject(readFileSync(p.path('dip.yaml'), 'utf8'), p.path('dip.yaml'));
}
