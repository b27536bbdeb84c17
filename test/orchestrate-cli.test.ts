/**
 * The orchestration commands as a user runs them: dip backfill (dry run, real, nothing left),
 * dip trigger (a TypeScript module task under plain node), dip runs list/show/logs/rerun/cancel,
 * and dip run --interval-start for a templated source; errors name what was wrong.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { projectConfig, runCli, TestProject } from './support/project.js';

let p: TestProject;
before(async () => {
  p = await TestProject.create({});
  const config = projectConfig({});
  config['pipelines'] = {
    daily: {
      schedule: { every: '1d' },
      sources: { shop: { type: 'files', streams: { orders: { path: 'data/{interval.start_date}.csv' } } } },
      retries: { attempts: 1 },
      tasks: {
        score: { module: 'tasks/score.ts', depends_on: ['ingest.shop'] },
        gate: { shell: 'echo "checking $DIP_INTERVAL_START"; test -f ok.flag', depends_on: ['score'] },
      },
    },
  };
  await p.write('dip.yaml', JSON.stringify(config, null, 2));
  await p.write(
    'tasks/score.ts',
    `export default async ({ interval, log }: { interval: { start: Date } | null; log: (l: string) => void }): Promise<void> => { const n: number = 2; log('scored ' + interval?.start.toISOString() + ' x' + n); };\n`,
  );
  for (const d of ['2026-02-01', '2026-02-02', '2026-02-03'])
    await p.write(`data/${d}.csv`, `id,day\n${d.slice(-1)}1,${d}\n${d.slice(-1)}2,${d}\n`);
  await p.write('ok.flag', '');
});
after(async () => p.dispose());

const json = <T>(text: string): T => JSON.parse(text) as T;

describe('dip backfill / trigger / runs', () => {
  it('backfill --dry-run lists the intervals; a backfill runs them; a second one has nothing to do', async () => {
    const dry = await runCli(
      ['backfill', 'daily', '--from', '2026-02-01', '--to', '2026-02-04', '--dry-run', '--json'],
      p.dir,
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      json<{ intervals: { start: string }[] }>(dry.stdout).intervals.map((i) => i.start),
      ['2026-02-01T00:00:00.000Z', '2026-02-02T00:00:00.000Z', '2026-02-03T00:00:00.000Z'],
    );
    const real = await runCli(
      ['backfill', 'daily', '--from', '2026-02-01', '--to', '2026-02-04', '--parallel', '2', '--json'],
      p.dir,
    );
    assert.equal(real.code, 0, real.stderr);
    const out = json<{
      backfillId: string;
      runs: { status: string; tasks: { task: string; status: string; rows: number }[] }[];
    }>(real.stdout);
    assert.deepEqual(
      out.runs.map((r) => r.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.deepEqual(
      out.runs[0]?.tasks.map((t) => [t.task, t.status, t.rows]),
      [
        ['ingest.shop', 'succeeded', 2],
        ['score', 'succeeded', 0],
        ['gate', 'succeeded', 0],
      ],
    );
    assert.equal(await p.count('bronze.orders'), 6);
    const again = await runCli(['backfill', 'daily', '--from', '2026-02-01', '--to', '2026-02-04'], p.dir);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /nothing to run \(3 interval\(s\) already covered/);
    const list = await runCli(['runs', 'list', '--backfill', out.backfillId, '--json'], p.dir);
    assert.equal(json<unknown[]>(list.stdout).length, 3);
  });

  it('a failed trigger exits 1; logs show the attempt; rerun resumes from the failed task', async () => {
    const { rm } = await import('node:fs/promises');
    await rm(p.path('ok.flag'));
    await p.write('data/2026-02-10.csv', 'id,day\n101,2026-02-10\n');
    const failed = await runCli(
      ['trigger', 'daily', '--interval-start', '2026-02-10', '--interval-end', '2026-02-11', '--json'],
      p.dir,
    );
    assert.equal(failed.code, 1, failed.stderr);
    const run = json<{ id: string; status: string; tasks: { task: string; status: string }[] }>(failed.stdout);
    assert.deepEqual(
      run.tasks.map((t) => [t.task, t.status]),
      [
        ['ingest.shop', 'succeeded'],
        ['score', 'succeeded'],
        ['gate', 'failed'],
      ],
    );
    const scoreLog = await runCli(['runs', 'logs', run.id, 'score'], p.dir);
    assert.match(scoreLog.stdout, /scored 2026-02-10T00:00:00\.000Z x2/, 'the TypeScript task ran under plain node');
    const gateLog = await runCli(['runs', 'logs', run.id, 'gate'], p.dir);
    assert.match(gateLog.stdout, /checking 2026-02-10T00:00:00Z/);
    const show = await runCli(['runs', 'show', run.id], p.dir);
    assert.match(show.stdout, /gate\s+failed\s+1\/1/);
    await p.write('ok.flag', '');
    const rerun = await runCli(['runs', 'rerun', run.id, '--json'], p.dir);
    assert.equal(rerun.code, 0, rerun.stderr);
    const resumed = json<{ status: string; attempt: number; tasks: { task: string; attempt: number }[] }>(rerun.stdout);
    assert.deepEqual([resumed.status, resumed.attempt], ['succeeded', 2]);
    assert.deepEqual(
      resumed.tasks.map((t) => [t.task, t.attempt]),
      [
        ['ingest.shop', 1],
        ['score', 1],
        ['gate', 2],
      ],
    );
    assert.equal(await p.count('bronze.orders'), 7);
  });

  it('cancel refuses finished runs; bad input names the flag and value', async () => {
    const runs = json<{ id: string }[]>((await runCli(['runs', 'list', '--json', '--limit', '1'], p.dir)).stdout);
    const cancel = await runCli(['runs', 'cancel', runs[0]?.id as string], p.dir);
    assert.equal(cancel.code, 5);
    assert.match(cancel.stderr, /is already succeeded; only queued or running runs can be cancelled/);
    const bad = await runCli(['backfill', 'daily', '--from', 'yesterday', '--to', '2026-02-04'], p.dir);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /--from "yesterday": expected an ISO date or time/);
    const status = await runCli(['runs', 'list', '--status', 'done'], p.dir);
    assert.equal(status.code, 3);
    assert.match(
      status.stderr,
      /--status "done": expected one of queued, running, succeeded, failed, cancelled, crashed/,
    );
    const unknown = await runCli(['trigger', 'nope'], p.dir);
    assert.equal(unknown.code, 6);
    assert.match(unknown.stderr, /no pipeline named "nope"/);
  });

  it('dip run takes --interval-start/--interval-end for templated sources, and says so when they are missing', async () => {
    await p.write('data/2026-02-20.csv', 'id,day\n201,2026-02-20\n');
    const ok = await runCli(
      ['run', 'daily', '--interval-start', '2026-02-20', '--interval-end', '2026-02-21', '--no-silver', '--quiet'],
      p.dir,
    );
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await p.count('bronze.orders'), 8);
    const missing = await runCli(['run', 'daily', '--quiet'], p.dir);
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /uses \{interval\.start_date\} at pipelines\.daily\.sources\.shop\.streams\.orders\.path/,
    );
  });
});
