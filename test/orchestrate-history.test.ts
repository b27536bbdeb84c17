/**
 * What the orchestrator reports about the past (issue 21, item 9): /metrics counters are totals
 * over the catalog's history, so a restarted `dip serve` does not start them at 0; an attempt
 * interrupted by a shutdown past its grace period stays in the attempt history (and does not
 * count against the retries); a schedule without `start` never runs an interval that ended
 * before the scheduler first saw it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Orchestrator } from '../src/orchestrate/orchestrator.js';
import { startRuntime, waitForRuns, type Runtime } from '../src/orchestrate/runtime.js';
import { DipMetrics } from '../src/serve/metrics.js';
import { projectConfig, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const runtimes: Runtime[] = [];

after(async () => {
  for (const r of runtimes) await r.stop();
  for (const p of projects) await p.dispose();
});

async function project(pipelines: Record<string, unknown>): Promise<TestProject> {
  const p = await TestProject.create({});
  await p.write('dip.yaml', JSON.stringify({ ...projectConfig({}), pipelines }, null, 2));
  projects.push(p);
  return p;
}

/** One sample of a metric with exactly these labels. */
async function sample(m: DipMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x))?.value;
}

describe('orchestration history', () => {
  it('metrics counters continue across a restart: they are read from the catalog', async () => {
    const p = await project({
      ok: { sources: {}, tasks: { t: { shell: 'true' } } },
      bad: { sources: {}, retries: { attempts: 1 }, tasks: { t: { shell: 'exit 2' } } },
    });
    const lake = await p.lake();
    const r = startRuntime(lake, { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    const ids = [
      (await r.orchestrator.trigger('ok')).id,
      (await r.orchestrator.trigger('ok')).id,
      (await r.orchestrator.trigger('bad')).id,
    ];
    await waitForRuns(r.orchestrator.store, ids, { pollMs: 20 });
    // A process started after these runs (a restarted dip serve) counts them.
    const restarted = await DipMetrics.create(lake, { defaultMetrics: false });
    await restarted.poll();
    assert.equal(await sample(restarted, 'dip_runs_total', { pipeline: 'ok', status: 'succeeded' }), 2);
    assert.equal(await sample(restarted, 'dip_runs_total', { pipeline: 'bad', status: 'failed' }), 1);
    assert.equal(
      await sample(restarted, 'dip_task_attempts_total', { pipeline: 'ok', task: 't', outcome: 'succeeded' }),
      2,
    );
    assert.equal(
      await sample(restarted, 'dip_task_attempts_total', { pipeline: 'bad', task: 't', outcome: 'failed' }),
      1,
    );
    assert.equal(await sample(restarted, 'dip_errors_total', { pipeline: 'bad' }), 1);
    // One more run: counted once, on top of the history.
    const more = (await r.orchestrator.trigger('ok')).id;
    await waitForRuns(r.orchestrator.store, [more], { pollMs: 20 });
    await restarted.poll();
    await restarted.poll();
    assert.equal(await sample(restarted, 'dip_runs_total', { pipeline: 'ok', status: 'succeeded' }), 3);
    assert.equal(
      await sample(restarted, 'dip_task_attempts_total', { pipeline: 'ok', task: 't', outcome: 'succeeded' }),
      3,
    );
  });

  it('an attempt interrupted by a shutdown past its grace period is in the history, and does not count', async () => {
    const p = await project({
      nap: { sources: {}, retries: { attempts: 1 }, tasks: { t: { shell: 'echo starting; sleep 30' } } },
    });
    const lake = await p.lake();
    const r = startRuntime(lake, { leaseMs: 5_000, pollMs: 20 });
    const run = await r.orchestrator.trigger('nap');
    while ((await r.orchestrator.store.listTasks(run.id))[0]?.status !== 'running')
      await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 200));
    await r.stop(100);
    const [attempt] = await lake.catalog.orchestration.listAttempts(run.id, 't');
    assert.equal(attempt?.status, 'interrupted');
    assert.equal(attempt?.attempt, 1);
    assert.ok(attempt?.endedAt);
    assert.match(attempt?.error ?? '', /^interrupted: the process stopped and its grace period ran out/);
    const [task] = await lake.catalog.orchestration.listTasks(run.id);
    assert.equal(task?.status, 'queued');
    // With one attempt allowed, the task still runs again: the interrupted attempt does not count.
    await p.write(
      'dip.yaml',
      JSON.stringify({
        ...projectConfig({}),
        pipelines: { nap: { sources: {}, retries: { attempts: 1 }, tasks: { t: { shell: 'true' } } } },
      }),
    );
    const other = startRuntime(await p.reopen(), { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(other);
    const [done] = await waitForRuns(other.orchestrator.store, [run.id], { pollMs: 20 });
    assert.equal(done?.status, 'succeeded');
    assert.deepEqual(
      (await other.orchestrator.store.listAttempts(run.id, 't')).map((a) => [a.attempt, a.status]),
      [
        [1, 'interrupted'],
        [2, 'succeeded'],
      ],
    );
  });

  it('a schedule without start runs no interval that ended before it was first seen', async () => {
    const p = await project({ d: { schedule: { every: '1d' }, sources: {}, tasks: { t: { shell: 'true' } } } });
    let now = new Date('2026-05-10T15:00:00Z');
    const o = Orchestrator.create(await p.lake(), { clock: () => now });
    assert.equal((await o.tick()).scheduled, 0, 'the day that ended at midnight is not run');
    now = new Date('2026-05-10T23:59:00Z');
    assert.equal((await o.tick()).scheduled, 0);
    now = new Date('2026-05-11T00:00:30Z');
    assert.equal((await o.tick()).scheduled, 1, 'the day in progress when first seen runs at its end');
    now = new Date('2026-05-13T01:00:00Z');
    assert.equal((await o.tick()).scheduled, 2, 'then every interval, with catch-up');
    const runs = await o.store.listRuns({ pipeline: 'd' });
    assert.deepEqual(runs.map((r) => r.interval?.start.toISOString().slice(0, 10)).sort(), [
      '2026-05-10',
      '2026-05-11',
      '2026-05-12',
    ]);
  });
});
