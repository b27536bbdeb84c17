/**
 * The scheduler with an injected clock (cron in a time zone across DST, catch-up after an
 * outage, backfill behind fresh runs), task retries (fail twice then succeed; terminal errors
 * not retried), resume from the failed task, pools, cancel and hand-back on shutdown.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { runAttempt } from '../src/orchestrate/attempt.js';
import { Orchestrator } from '../src/orchestrate/orchestrator.js';
import { startRuntime, waitForRuns, type Runtime } from '../src/orchestrate/runtime.js';
import type { OrchestratedRun, TaskAttemptRecord } from '../src/catalog/orchestration-types.js';
import { projectConfig, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const runtimes: Runtime[] = [];
after(async () => {
  for (const r of runtimes) await r.stop();
  for (const p of projects) await p.dispose();
});

async function project(pipelines: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestProject> {
  const p = await TestProject.create({});
  await p.write('dip.yaml', JSON.stringify({ ...projectConfig({}), pipelines, ...extra }, null, 2));
  projects.push(p);
  return p;
}

class FakeClock {
  constructor(public t: Date) {}
  now = (): Date => this.t;
  set(iso: string): void {
    this.t = new Date(iso);
  }
}

const intervals = (runs: OrchestratedRun[]) =>
  runs
    .map((r) => [r.interval?.start.toISOString(), r.interval?.end.toISOString()])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
const quick = { attempts: 3, delay: '10ms', backoff: 1, max_delay: '10ms', jitter: false };

describe('scheduler (injected clock)', () => {
  it('02:00 Europe/Berlin across the spring DST change: one run per local day, the short day a 23 h interval', async () => {
    const p = await project({
      daily: {
        schedule: { cron: '0 2 * * *', timezone: 'Europe/Berlin', start: '2026-03-26' },
        sources: {},
        tasks: { t: { shell: 'true' } },
      },
    });
    const clock = new FakeClock(new Date('2026-03-27T12:00:00Z'));
    const o = Orchestrator.create(await p.lake(), { clock: clock.now });
    assert.equal((await o.tick()).scheduled, 1, 'the first interval since start');
    assert.equal((await o.tick()).scheduled, 0, 'a second tick at the same time schedules nothing');
    clock.set('2026-03-31T12:00:00Z');
    assert.equal((await o.tick()).scheduled, 4);
    const runs = await o.store.listRuns({ pipeline: 'daily' });
    assert.deepEqual(intervals(runs), [
      ['2026-03-26T01:00:00.000Z', '2026-03-27T01:00:00.000Z'],
      ['2026-03-27T01:00:00.000Z', '2026-03-28T01:00:00.000Z'],
      ['2026-03-28T01:00:00.000Z', '2026-03-29T01:00:00.000Z'], // 02:00 does not exist on the 29th: 03:00 CEST
      ['2026-03-29T01:00:00.000Z', '2026-03-30T00:00:00.000Z'], // the 23-hour local day
      ['2026-03-30T00:00:00.000Z', '2026-03-31T00:00:00.000Z'],
    ]);
    assert.ok(runs.every((r) => r.trigger === 'schedule' && r.priority === 10));
  });

  it('catch-up after an outage: all missed intervals, or only the latest', async () => {
    const p = await project({
      all: {
        schedule: { every: '1h', catchup: 'all', start: '2026-06-01T09:00:00Z' },
        sources: {},
        tasks: { t: { shell: 'true' } },
      },
      latest: {
        schedule: { every: '1h', catchup: 'latest', start: '2026-06-01T09:00:00Z' },
        sources: {},
        tasks: { t: { shell: 'true' } },
      },
    });
    const clock = new FakeClock(new Date('2026-06-01T10:30:00Z'));
    const o = Orchestrator.create(await p.lake(), { clock: clock.now });
    await o.tick();
    clock.set('2026-06-01T15:10:00Z'); // the scheduler was down for almost 5 hours
    await o.tick();
    const all = await o.store.listRuns({ pipeline: 'all' });
    const latest = await o.store.listRuns({ pipeline: 'latest' });
    assert.deepEqual(
      intervals(all).map((i) => i[0]?.slice(11, 16)),
      ['09:00', '10:00', '11:00', '12:00', '13:00', '14:00'],
    );
    assert.deepEqual(
      intervals(latest).map((i) => i[0]?.slice(11, 16)),
      ['09:00', '14:00'],
    );
  });

  it('one broken pipeline does not stop the scheduler for the others', async () => {
    const p = await project({
      // A task cycle is refused when the project loads (issue 14); a cron expression is judged when the schedule is evaluated.
      bad: { schedule: { cron: '99 99 * * *' }, sources: {}, tasks: { a: { shell: 'true' } } },
      good: { schedule: { every: '1h', start: '2026-06-01T09:00:00Z' }, sources: {}, tasks: { t: { shell: 'true' } } },
    });
    const o = Orchestrator.create(await p.lake(), { clock: () => new Date('2026-06-01T10:30:00Z') });
    const report = await o.tick();
    assert.deepEqual(
      report.errors.map((e) => e.pipeline),
      ['bad'],
    );
    assert.match(report.errors[0]?.error ?? '', /99 99/);
    assert.equal(report.scheduled, 1);
    assert.equal(report.started, 1, "the good pipeline's run started");
  });

  it('a schedule with start runs from there; two schedulers on one catalog schedule each interval once', async () => {
    const p = await project({
      d: { schedule: { every: '1d', start: '2026-01-01' }, sources: {}, tasks: { t: { shell: 'true' } } },
    });
    const clock = new FakeClock(new Date('2026-01-04T06:00:00Z'));
    const lake = await p.lake();
    const a = Orchestrator.create(lake, { clock: clock.now });
    const b = Orchestrator.create(lake, { clock: clock.now });
    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
    assert.equal(ra.scheduled + rb.scheduled, 3);
    assert.deepEqual(
      intervals(await a.store.listRuns({ pipeline: 'd' })).map((i) => i[0]?.slice(0, 10)),
      ['2026-01-01', '2026-01-02', '2026-01-03'],
    );
  });

  it('a backfill never holds back fresh runs: a scheduled run starts while the backfill keeps to its own --parallel', async () => {
    const p = await project({
      p: {
        schedule: { every: '1h', start: '2026-06-01T09:00:00Z' },
        max_active_runs: 1,
        sources: {},
        tasks: { t: { shell: 'sleep 0.2' } },
      },
    });
    const clock = new FakeClock(new Date('2026-06-01T10:30:00Z'));
    const r = startRuntime(await p.lake(), { clock: clock.now, leaseMs: 60_000, pollMs: 20 });
    runtimes.push(r);
    const plan = await r.orchestrator.backfill('p', {
      from: new Date('2026-05-01T00:00:00Z'),
      to: new Date('2026-05-01T05:00:00Z'),
      parallel: 1,
    });
    assert.equal(plan.runIds.length, 5);
    await r.orchestrator.tick(); // the fresh 09:00 interval arrives while backfill run 1 runs
    const fresh = (await r.orchestrator.store.listRuns({ pipeline: 'p' })).find(
      (x) => x.trigger === 'schedule',
    ) as OrchestratedRun;
    assert.equal(
      (await r.orchestrator.store.getRun(fresh.id))?.status,
      'running',
      'started at once, beside the backfill',
    );
    clock.set('2026-06-01T11:30:00Z');
    await r.orchestrator.tick(); // the next fresh run waits for the first (max_active_runs 1), not for the backfill
    const fresh2 = (await r.orchestrator.store.listRuns({ pipeline: 'p' })).find(
      (x) => x.trigger === 'schedule' && x.id !== fresh.id,
    ) as OrchestratedRun;
    const all = await waitForRuns(r.orchestrator.store, [...plan.runIds, fresh.id, fresh2.id], { pollMs: 20 });
    assert.ok(all.every((x) => x.status === 'succeeded'));
    const span = (x: OrchestratedRun) => [(x.startedAt as Date).getTime(), (x.endedAt as Date).getTime()] as const;
    const backfill = all.filter((x) => x.trigger === 'backfill').sort((a, b) => span(a)[0] - span(b)[0]);
    assert.deepEqual(
      backfill.map((x) => x.interval?.start.toISOString().slice(11, 13)),
      ['00', '01', '02', '03', '04'],
      'oldest interval first',
    );
    for (let i = 1; i < backfill.length; i++)
      assert.ok(
        span(backfill[i] as OrchestratedRun)[0] >= span(backfill[i - 1] as OrchestratedRun)[1],
        'backfill --parallel 1',
      );
    const [f1, f2] = all.filter((x) => x.trigger === 'schedule').sort((a, b) => span(a)[0] - span(b)[0]) as [
      OrchestratedRun,
      OrchestratedRun,
    ];
    assert.ok(span(f1)[0] < span(backfill[1] as OrchestratedRun)[0], 'the fresh run did not wait for the backfill');
    assert.ok(span(f2)[0] >= span(f1)[1], 'fresh runs keep max_active_runs among themselves');
  });
});

describe('retries, resume, pools, cancel', () => {
  it('a task failing twice then succeeding; a terminal error not retried and its downstream not run', async () => {
    const p = await project({
      flaky: {
        sources: {},
        retries: quick,
        tasks: { t: { module: 'tasks/flaky.mjs' }, after: { shell: 'true', depends_on: ['t'] } },
      },
      broken: {
        sources: {},
        retries: quick,
        tasks: { t: { shell: 'no-such-command-dip' }, after: { shell: 'true', depends_on: ['t'] } },
      },
    });
    await p.write(
      'tasks/flaky.mjs',
      `export default async ({ attempt, log }) => { log('attempt ' + attempt); if (attempt < 3) throw new Error('flaky ' + attempt); };\n`,
    );
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    const [flaky] = await waitForRuns(r.orchestrator.store, [(await r.orchestrator.trigger('flaky')).id], {
      pollMs: 20,
    });
    assert.equal(flaky?.status, 'succeeded');
    const attempts = await r.orchestrator.store.listAttempts(flaky?.id as string, 't');
    assert.deepEqual(
      attempts.map((a: TaskAttemptRecord) => [a.attempt, a.status, a.error]),
      [
        [1, 'failed', 'flaky 1'],
        [2, 'failed', 'flaky 2'],
        [3, 'succeeded', null],
      ],
    );
    assert.match(attempts[2]?.log ?? '', /attempt 3/);
    const [broken] = await waitForRuns(r.orchestrator.store, [(await r.orchestrator.trigger('broken')).id], {
      pollMs: 20,
    });
    assert.equal(broken?.status, 'failed');
    const tasks = await r.orchestrator.store.listTasks(broken?.id as string);
    assert.deepEqual(
      tasks.map((t) => [t.task, t.status, t.attempt]),
      [
        ['t', 'failed', 1],
        ['after', 'upstream_failed', 0],
      ],
    );
    assert.match(tasks[0]?.error ?? '', /exited with code 127/);
  });

  it('a failed run resumes from the failed task: succeeded tasks are not run again', async () => {
    const p = await project({
      p: {
        sources: {},
        retries: { ...quick, attempts: 1 },
        tasks: {
          first: { shell: 'echo ran >> first.txt' },
          gate: { shell: 'test -f ok.flag', depends_on: ['first'] },
          last: { shell: 'echo ran >> last.txt', depends_on: ['gate'] },
        },
      },
    });
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    const [failed] = await waitForRuns(r.orchestrator.store, [(await r.orchestrator.trigger('p')).id], { pollMs: 20 });
    assert.equal(failed?.status, 'failed');
    await p.write('ok.flag', '');
    const resumed = await r.orchestrator.rerun(failed?.id as string);
    assert.equal(resumed.attempt, 2);
    const [done] = await waitForRuns(r.orchestrator.store, [resumed.id], { pollMs: 20 });
    assert.equal(done?.status, 'succeeded');
    const { readFile } = await import('node:fs/promises');
    assert.equal(await readFile(p.path('first.txt'), 'utf8'), 'ran\n', 'the succeeded task did not run again');
    assert.equal(await readFile(p.path('last.txt'), 'utf8'), 'ran\n');
    const tasks = await r.orchestrator.store.listTasks(done?.id as string);
    assert.deepEqual(
      tasks.map((t) => [t.task, t.status, t.attempt]),
      [
        ['first', 'succeeded', 1],
        ['gate', 'succeeded', 2],
        ['last', 'succeeded', 1],
      ],
    );
    await assert.rejects(r.orchestrator.rerun('run_nope'), /no orchestrated run run_nope/);
  });

  it('a pool slot is held by one task at a time across runs, and freed when a run is cancelled', async () => {
    const p = await project(
      {
        p: { sources: {}, max_active_runs: 3, retries: quick, tasks: { call: { shell: 'sleep 0.3', pool: 'api' } } },
        slow: { sources: {}, tasks: { wait: { shell: 'sleep 30', pool: 'api' } } },
      },
      { pools: { api: { slots: 1 } } },
    );
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20, concurrency: 4 });
    runtimes.push(r);
    const slow = await r.orchestrator.trigger('slow');
    while ((await r.orchestrator.store.listTasks(slow.id))[0]?.status !== 'running')
      await new Promise((res) => setTimeout(res, 20));
    const ids = [
      (await r.orchestrator.trigger('p')).id,
      (await r.orchestrator.trigger('p')).id,
      (await r.orchestrator.trigger('p')).id,
    ];
    await new Promise((res) => setTimeout(res, 300));
    assert.deepEqual(
      await Promise.all(ids.map(async (id) => (await r.orchestrator.store.listTasks(id))[0]?.status)),
      ['queued', 'queued', 'queued'],
      'the pool is full',
    );
    const cancelled = await r.orchestrator.cancel(slow.id);
    assert.equal(cancelled.cancelRequested, true);
    const [slowDone] = await waitForRuns(r.orchestrator.store, [slow.id], { pollMs: 20 });
    assert.equal(slowDone?.status, 'cancelled');
    const runs = await waitForRuns(r.orchestrator.store, ids, { pollMs: 20 });
    assert.deepEqual(
      runs.map((x) => x.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    const spans = (await Promise.all(ids.map((id) => r.orchestrator.store.listAttempts(id, 'call'))))
      .flat()
      .map((a) => [a.startedAt.getTime(), (a.endedAt as Date).getTime()] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++)
      assert.ok((spans[i]?.[0] ?? 0) >= (spans[i - 1]?.[1] ?? 0), 'pool tasks never overlap');
  });

  it('runs of a source that shares one state ingest one at a time; interval-templated sources ingest in parallel', async () => {
    const day = (d: string) => new Date(`${d}T00:00:00Z`);
    const p = await project({
      // No {interval.*}: every run reads the same glob and advances the same file ledger.
      shared: {
        schedule: { every: '1d' },
        max_active_runs: 4,
        sources: { shop: { type: 'files', streams: { orders: { path: 'in/*.csv' } } } },
        tasks: { after: { shell: 'sleep 0.2', depends_on: ['ingest.shop'] } },
      },
      // Its own table: two pipelines writing one table is a config error (issue 14).
      sliced: {
        schedule: { every: '1d' },
        sources: {
          shop: {
            type: 'files',
            streams: { orders: { path: 'sliced/{interval.start_date}.csv', table: 'sliced_orders' } },
          },
        },
      },
    });
    for (let i = 1; i <= 4; i++) {
      await p.write(`in/${i}.csv`, `id\n${i}\n`);
      await p.write(`sliced/2026-03-0${i}.csv`, `id\n${i}\n`);
    }
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20, concurrency: 4 });
    runtimes.push(r);
    const shared = await r.orchestrator.backfill('shared', {
      from: day('2026-03-01'),
      to: day('2026-03-05'),
      parallel: 4,
    });
    const sliced = await r.orchestrator.backfill('sliced', {
      from: day('2026-03-01'),
      to: day('2026-03-05'),
      parallel: 4,
    });
    const runs = await waitForRuns(r.orchestrator.store, [...shared.runIds, ...sliced.runIds], { pollMs: 20 });
    assert.deepEqual(
      runs.map((x) => [x.status, x.error]),
      Array.from({ length: 8 }, () => ['succeeded', null]),
    );
    const mutexes = async (ids: string[]) =>
      (
        await Promise.all(
          ids.map(
            async (id) => (await r.orchestrator.store.listTasks(id)).find((t) => t.task === 'ingest.shop')?.mutex,
          ),
        )
      ).sort();
    assert.deepEqual(
      await mutexes(shared.runIds),
      Array.from({ length: 4 }, () => 'shared:ingest.shop'),
    );
    assert.deepEqual(await mutexes(sliced.runIds), [null, null, null, null]);
    const spans = (await Promise.all(shared.runIds.map((id) => r.orchestrator.store.listAttempts(id, 'ingest.shop'))))
      .flat()
      .map((a) => [a.startedAt.getTime(), (a.endedAt as Date).getTime()] as const)
      .sort((a, b) => a[0] - b[0]);
    assert.equal(spans.length, 4, 'one attempt each: no run lost a race on the ledger and retried');
    for (let i = 1; i < spans.length; i++)
      assert.ok((spans[i]?.[0] ?? 0) >= (spans[i - 1]?.[1] ?? 0), 'ingests of the shared source never overlap');
    // The four files landed once, whichever run took them.
    assert.equal((await p.count('bronze.orders')) + (await p.count('bronze.sliced_orders')), 4 + 4);
  });

  it('max_parallel_tasks bounds the tasks of one run at once', async () => {
    const tasks = Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((n) => [n, { shell: 'sleep 0.2' }]));
    const p = await project({ p: { sources: {}, max_parallel_tasks: 2, tasks } });
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20, concurrency: 5 });
    runtimes.push(r);
    const run = await r.orchestrator.trigger('p');
    assert.equal((await waitForRuns(r.orchestrator.store, [run.id], { pollMs: 20 }))[0]?.status, 'succeeded');
    const spans = (await r.orchestrator.store.listAttempts(run.id)).map(
      (a) => [a.startedAt.getTime(), (a.endedAt as Date).getTime()] as const,
    );
    const most = Math.max(...spans.map(([s]) => spans.filter(([s2, e2]) => s2 <= s && e2 > s).length));
    assert.equal(most, 2);
  });

  it('shutdown hands a running task back: queued again, the attempt recorded as interrupted, not counted', async () => {
    const p = await project({ p: { sources: {}, tasks: { t: { shell: 'sleep 30' } } } });
    const lake = await p.lake();
    const r = startRuntime(lake, { leaseMs: 5_000, pollMs: 20 });
    const run = await r.orchestrator.trigger('p');
    while ((await r.orchestrator.store.listTasks(run.id))[0]?.status !== 'running')
      await new Promise((res) => setTimeout(res, 20));
    const started = Date.now();
    await r.stop(100);
    assert.ok(Date.now() - started < 6_000);
    const [task] = await r.orchestrator.store.listTasks(run.id);
    // Issue 21: the interrupted attempt is recorded (attempt 1, interrupted) and does not count.
    assert.deepEqual([task?.status, task?.attempt, task?.leaseOwner], ['queued', 1, null]);
    assert.equal((await r.orchestrator.store.getRun(run.id))?.status, 'running');
    // Another process takes it over.
    await p.write(
      'dip.yaml',
      JSON.stringify({ ...projectConfig({}), pipelines: { p: { sources: {}, tasks: { t: { shell: 'true' } } } } }),
    );
    const other = startRuntime(await p.reopen(), { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(other);
    const [done] = await waitForRuns(other.orchestrator.store, [run.id], { pollMs: 20 });
    assert.equal(done?.status, 'succeeded');
    assert.equal((await other.orchestrator.store.listTasks(run.id))[0]?.attempt, 2);
    assert.deepEqual(
      (await other.orchestrator.store.listAttempts(run.id)).map((a) => [a.attempt, a.status]),
      [
        [1, 'interrupted'],
        [2, 'succeeded'],
      ],
    );
  });

  it('a holder that cannot renew its lease stops itself before the lease runs out; the task is taken over, never run twice at once', async () => {
    const p = await project({
      p: {
        sources: {},
        retries: quick,
        tasks: { t: { shell: 'echo start >> spans.txt; sleep 3; echo end >> spans.txt' } },
      },
    });
    // This process is cut off from the catalog for its heartbeats (a network partition).
    const partitioned = await Lake.open(await loadProject(p.dir));
    try {
      partitioned.catalog.orchestration.heartbeat = async () => {
        throw new Error('catalog unreachable');
      };
      const o = Orchestrator.create(partitioned);
      const run = await o.trigger('p');
      const claimedAt = Date.now();
      const claim = await o.store.claim(
        { runId: run.id, task: 't' },
        'partitioned',
        1_000,
        () => 1,
        new Date(claimedAt),
      );
      assert.ok(claim.ok);
      const attempt = await runAttempt(partitioned, { runId: run.id, task: 't' }, claim, {
        owner: 'partitioned',
        leaseMs: 1_000,
        dag: (x) => o.dag(x),
        clock: () => new Date(),
        handBack: new AbortController().signal,
      });
      const fencedAt = Date.now();
      assert.equal(attempt, 'lost');
      assert.ok(
        fencedAt - claimedAt < 1_000,
        `stopped ${fencedAt - claimedAt} ms after the claim, before its 1 s lease ran out`,
      );
      // Once the lease has run out, a healthy process's sweep takes the task over.
      await new Promise((res) => setTimeout(res, Math.max(0, claimedAt + 1_050 - Date.now())));
      const healthy = startRuntime(await p.lake(), { leaseMs: 1_000, pollMs: 20 });
      runtimes.push(healthy);
      await healthy.orchestrator.maintain();
      const [done] = await waitForRuns(healthy.orchestrator.store, [run.id], { pollMs: 20 });
      assert.equal(done?.status, 'succeeded');
      const attempts = await healthy.orchestrator.store.listAttempts(run.id);
      assert.deepEqual(
        attempts.map((a) => [a.attempt, a.status, a.worker === 'partitioned']),
        [
          [1, 'lost', true],
          [2, 'succeeded', false],
        ],
      );
      const { readFile } = await import('node:fs/promises');
      assert.deepEqual(
        (await readFile(p.path('spans.txt'), 'utf8')).trim().split('\n'),
        ['start', 'start', 'end'],
        "the partitioned holder's command was stopped before its end",
      );
    } finally {
      await partitioned.close();
    }
  });

  it('a task whose worker died (lease expired) is recovered and run again', async () => {
    const p = await project({ p: { sources: {}, retries: quick, tasks: { t: { shell: 'true' } } } });
    const lake = await p.lake();
    const o = Orchestrator.create(lake);
    const run = await o.trigger('p');
    const claim = await o.store.claim({ runId: run.id, task: 't' }, 'dead-worker', 50, () => 1, new Date());
    assert.equal(claim.ok, true);
    await new Promise((res) => setTimeout(res, 80));
    const r = startRuntime(lake, { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    await r.orchestrator.maintain();
    const [done] = await waitForRuns(o.store, [run.id], { pollMs: 20 });
    assert.equal(done?.status, 'succeeded');
    assert.deepEqual(
      (await o.store.listAttempts(run.id, 't')).map((a) => [a.attempt, a.status, a.worker === 'dead-worker']),
      [
        [1, 'lost', true],
        [2, 'succeeded', false],
      ],
    );
  });
});
