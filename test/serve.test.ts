/**
 * `dip serve` end to end: a real server on 127.0.0.1 (port 0) over a real project with the
 * SQLite catalog. Every route: pipelines, trigger → run → tasks → log, backfill (dry run and
 * real), cancel of a queued and a running run, resume of a failed run, tables, 404/400s, the
 * OpenAPI document, Prometheus metrics; bearer auth on writes; the loopback rule; graceful
 * shutdown (tasks finish within the grace period, or are handed back); the CLI command.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { DipError } from '../src/core/errors.js';
import { startRuntime } from '../src/orchestrate/runtime.js';
import { createServer, isLoopback, serve, type RunningServer, type ServeOptions } from '../src/serve/server.js';
import { SchedulerLoop, type SchedulerStatus } from '../src/serve/scheduler.js';
import { projectConfig, REPO_ROOT, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const servers: RunningServer[] = [];
after(async () => {
  for (const s of servers) await s.close({ graceMs: 0 });
  for (const p of projects) await p.dispose();
});

async function project(pipelines: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestProject> {
  const p = await TestProject.create({});
  await p.write('dip.yaml', JSON.stringify({ ...projectConfig({}), pipelines, ...extra }, null, 2));
  projects.push(p);
  return p;
}

async function start(p: TestProject, options: Partial<ServeOptions> = {}): Promise<RunningServer> {
  const server = await serve(await p.lake(), {
    host: '127.0.0.1',
    port: 0,
    tickMs: 100,
    concurrency: 4,
    executor: 'in-process',
    leaseMs: 900,
    pollMs: 50,
    ...options,
  });
  servers.push(server);
  return server;
}

interface Res {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, asserted field by field
  json: any;
}

async function call(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; token?: string; authorization?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = {};
  // Every POST says JSON (issue 14: a POST without Content-Type: application/json is 415).
  if (options.body !== undefined || options.raw !== undefined || method === 'POST')
    headers['content-type'] = 'application/json';
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  if (options.authorization) headers['authorization'] = options.authorization;
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(options.raw !== undefined
      ? { body: options.raw }
      : options.body !== undefined
        ? { body: JSON.stringify(options.body) }
        : {}),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'crashed'];

async function finished(base: string, id: string): Promise<Res['json']> {
  return until(`run ${id} to end`, async () => {
    const r = await call(base, 'GET', `/runs/${id}`);
    return TERMINAL.includes(r.json.status) ? r.json : undefined;
  });
}

async function taskRunning(base: string, id: string, task: string): Promise<void> {
  await until(`${task} of ${id} to run`, async () => {
    const r = await call(base, 'GET', `/runs/${id}`);
    return r.json.tasks.find((t: { task: string; status: string }) => t.task === task)?.status === 'running'
      ? true
      : undefined;
  });
}

/** Exposition text → series (labels sorted) → value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}=${l[2]}`).sort();
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

const series = (name: string, labels: Record<string, string> = {}) =>
  `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(',')}}`;

/** Log lines without their timestamps. */
const logLines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^\S+ /, ''));

const dayMs = 86_400_000;

describe('dip serve', () => {
  let p: TestProject;
  let server: RunningServer;
  let base: string;
  let firstRun: string;
  const started = Date.now();

  before(async () => {
    p = await project({
      p: {
        schedule: { every: '1d', start: '2999-01-01' },
        sources: { shop: { type: 'files', streams: { orders: { path: 'data/{interval.start_date}.csv' } } } },
        silver: { orders: { from: 'orders', primary_key: ['id'] } },
        tasks: { report: { shell: 'echo "rows for $DIP_INTERVAL_START"; echo done', depends_on: ['silver.orders'] } },
      },
      slow: { max_active_runs: 1, sources: {}, tasks: { nap: { shell: 'sleep 5' } } },
      flaky: {
        sources: {},
        tasks: {
          a: { shell: 'echo step a' },
          b: { shell: 'test -f ready.flag && echo b is ready', depends_on: ['a'], retries: { attempts: 1 } },
        },
      },
      // Issue 21: without a start nothing that ended before the first tick runs; starting yesterday, the last full day does.
      sched: {
        schedule: { every: '1d', start: new Date(Math.floor(started / dayMs) * dayMs - dayMs).toISOString() },
        sources: {},
        tasks: { hello: { shell: 'echo scheduled' } },
      },
    });
    for (const [i, d] of ['2026-03-01', '2026-03-02', '2026-03-03'].entries())
      await p.write(`data/${d}.csv`, `id,day\n${i * 2 + 1},${d}\n${i * 2 + 2},${d}\n`);
    server = await start(p);
    base = server.address;
  });

  it('listens on the loopback address it was given', () => {
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('GET /health always answers; GET /ready once the scheduler has ticked and the catalog answers', async () => {
    const health = await call(base, 'GET', '/health');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    const ready = await until('ready', async () => {
      const r = await call(base, 'GET', '/ready');
      return r.status === 200 ? r : undefined;
    });
    assert.equal(ready.json.status, 'ready');
    assert.equal(ready.json.catalog, 'ok');
    assert.equal(ready.json.scheduler.enabled, true);
    assert.ok(ready.json.scheduler.ticks >= 1);
    assert.equal(ready.json.scheduler.last_error, null);
  });

  it('the scheduler loop schedules: the first tick queues the latest complete interval of a scheduled pipeline', async () => {
    const run = await until('a scheduled run', async () => {
      const r = await call(base, 'GET', '/runs?pipeline=sched');
      return r.json.runs[0];
    });
    const today = Math.floor(started / dayMs) * dayMs;
    assert.equal(run.trigger, 'schedule');
    assert.deepEqual(run.interval, {
      start: new Date(today - dayMs).toISOString(),
      end: new Date(today).toISOString(),
    });
    assert.equal((await finished(base, run.id)).status, 'succeeded');
    // The pipeline with a start in the future has nothing due.
    assert.deepEqual((await call(base, 'GET', '/runs?pipeline=p')).json.runs, []);
  });

  it('GET /pipelines and /pipelines/:name: schedule, tasks with their dependencies, max_active_runs, last run', async () => {
    const all = await call(base, 'GET', '/pipelines');
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.json.pipelines.map((x: { name: string }) => x.name),
      ['p', 'slow', 'flaky', 'sched'],
    );
    const one = await call(base, 'GET', '/pipelines/p');
    assert.equal(one.status, 200);
    assert.deepEqual(one.json, {
      name: 'p',
      description: null,
      schedule: { every: '1d', start: '2999-01-01', catchup: 'all' },
      triggers: [],
      max_active_runs: 1,
      max_parallel_tasks: 4,
      tasks: [
        { name: 'ingest.shop', kind: 'ingest', deps: [], pool: null, max_attempts: 3 },
        { name: 'silver.orders', kind: 'silver', deps: ['ingest.shop'], pool: null, max_attempts: 3 },
        { name: 'report', kind: 'shell', deps: ['silver.orders'], pool: null, max_attempts: 3 },
      ],
      last_run: null,
    });
    assert.equal((await call(base, 'GET', '/pipelines/slow')).json.max_active_runs, 1);
    const missing = await call(base, 'GET', '/pipelines/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.error.kind, 'not_found');
    assert.match(missing.json.error.message, /no pipeline named "nope" \(pipelines: p, slow, flaky, sched\)/);
  });

  it('POST /pipelines/:name/trigger queues a run for the interval; it runs to success with its tasks and rows', async () => {
    const res = await call(base, 'POST', '/pipelines/p/trigger', {
      body: { interval_start: '2026-03-01', interval_end: '2026-03-02T00:00:00Z' },
    });
    assert.equal(res.status, 201);
    assert.equal(res.json.pipeline, 'p');
    assert.equal(res.json.trigger, 'api');
    assert.equal(res.json.orchestrated, true);
    assert.deepEqual(res.json.interval, { start: '2026-03-01T00:00:00.000Z', end: '2026-03-02T00:00:00.000Z' });
    assert.ok(['queued', 'running'].includes(res.json.status));
    firstRun = res.json.id;
    const run = await finished(base, firstRun);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.error, null);
    assert.deepEqual(
      run.tasks.map((t: { task: string; status: string; attempt: number; rows: number; deps: string[] }) => [
        t.task,
        t.status,
        t.attempt,
        t.rows,
        t.deps,
      ]),
      [
        ['ingest.shop', 'succeeded', 1, 2, []],
        ['silver.orders', 'succeeded', 1, 2, ['ingest.shop']],
        ['report', 'succeeded', 1, 0, ['silver.orders']],
      ],
    );
    assert.equal(run.stats.streams['shop.orders'].rows, 2);
    assert.equal(run.stats.streams['silver.orders'].rows, 2);
    assert.equal(run.stats.rows, 4);
    assert.equal(await p.count('bronze.orders'), 2);
    assert.equal((await call(base, 'GET', '/pipelines/p')).json.last_run.id, firstRun);
  });

  it('GET /runs/:id/tasks lists every attempt; GET …/log returns the attempt log as text', async () => {
    const tasks = await call(base, 'GET', `/runs/${firstRun}/tasks`);
    assert.equal(tasks.status, 200);
    assert.equal(tasks.json.run_id, firstRun);
    assert.deepEqual(
      tasks.json.tasks.map((t: { task: string; attempts: { attempt: number; status: string }[] }) => [
        t.task,
        t.attempts.map((a) => [a.attempt, a.status]),
      ]),
      [
        ['ingest.shop', [[1, 'succeeded']]],
        ['silver.orders', [[1, 'succeeded']]],
        ['report', [[1, 'succeeded']]],
      ],
    );
    const log = await call(base, 'GET', `/runs/${firstRun}/tasks/report/log`);
    assert.equal(log.status, 200);
    assert.match(log.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(log.headers.get('x-dip-attempt'), '1');
    assert.deepEqual(logLines(log.text), ['rows for 2026-03-01T00:00:00Z', 'done']);
    assert.match(log.text, /^\d{4}-\d{2}-\d{2}T\S+Z rows for/);
    assert.equal((await call(base, 'GET', `/runs/${firstRun}/tasks/report/log?attempt=1`)).text, log.text);
    const ingestLog = await call(base, 'GET', `/runs/${firstRun}/tasks/ingest.shop/log`);
    assert.equal(ingestLog.status, 200);
    assert.ok(ingestLog.text.length > 0);

    const noAttempt = await call(base, 'GET', `/runs/${firstRun}/tasks/report/log?attempt=2`);
    assert.equal(noAttempt.status, 404);
    assert.equal(noAttempt.json.error.message, `no attempt 2 of task report in run ${firstRun} (attempts: 1)`);
    assert.equal((await call(base, 'GET', `/runs/${firstRun}/tasks/report/log?attempt=0`)).status, 400);
    const noTask = await call(base, 'GET', `/runs/${firstRun}/tasks/nope/log`);
    assert.equal(noTask.status, 404);
    assert.match(noTask.json.error.message, /has no task nope \(tasks: ingest\.shop, silver\.orders, report\)/);
    assert.equal((await call(base, 'GET', '/runs/run_nope/tasks/report/log')).status, 404);
    assert.equal((await call(base, 'GET', '/runs/run_nope/tasks')).status, 404);
    const noRun = await call(base, 'GET', '/runs/run_nope');
    assert.equal(noRun.status, 404);
    assert.deepEqual(noRun.json, { error: { kind: 'not_found', message: 'no run run_nope' } });
  });

  it('POST /pipelines/:name/backfill: a dry run lists the exact intervals (covered ones skipped), a real one creates a run per interval', async () => {
    const dry = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: '2026-03-01', to: '2026-03-04', dry_run: true },
    });
    assert.equal(dry.status, 200);
    assert.deepEqual(dry.json, {
      backfill_id: null,
      pipeline: 'p',
      dry_run: true,
      intervals: [
        { start: '2026-03-02T00:00:00.000Z', end: '2026-03-03T00:00:00.000Z' },
        { start: '2026-03-03T00:00:00.000Z', end: '2026-03-04T00:00:00.000Z' },
      ],
      skipped: [
        { interval: { start: '2026-03-01T00:00:00.000Z', end: '2026-03-02T00:00:00.000Z' }, status: 'succeeded' },
      ],
      run_ids: [],
    });
    const hourly = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: '2026-03-05T00:00:00Z', to: '2026-03-05T03:00:00Z', dry_run: true, every: '1h' },
    });
    assert.deepEqual(
      hourly.json.intervals.map((i: { start: string }) => i.start),
      ['2026-03-05T00:00:00.000Z', '2026-03-05T01:00:00.000Z', '2026-03-05T02:00:00.000Z'],
    );
    assert.equal((await call(base, 'GET', '/runs?pipeline=p')).json.runs.length, 1, 'a dry run creates nothing');

    const real = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: '2026-03-01', to: '2026-03-04', parallel: 2 },
    });
    assert.equal(real.status, 201);
    assert.equal(real.json.dry_run, false);
    assert.equal(real.json.run_ids.length, 2);
    assert.match(real.json.backfill_id, /^bf_/);
    const runs = [];
    for (const id of real.json.run_ids as string[]) runs.push(await finished(base, id));
    assert.deepEqual(
      runs.map((r) => [r.status, r.trigger, r.backfill_id, r.interval.start]),
      [
        ['succeeded', 'backfill', real.json.backfill_id, '2026-03-02T00:00:00.000Z'],
        ['succeeded', 'backfill', real.json.backfill_id, '2026-03-03T00:00:00.000Z'],
      ],
    );
    const listed = await call(base, 'GET', `/runs?backfill_id=${real.json.backfill_id}`);
    assert.deepEqual(listed.json.runs.map((r: { id: string }) => r.id).sort(), [...real.json.run_ids].sort());
    assert.equal(await p.count('bronze.orders'), 6);
    assert.equal(await p.count('silver.orders'), 6);
  });

  it('GET /runs filters by pipeline and status, newest first, with a limit', async () => {
    const all = await call(base, 'GET', '/runs?pipeline=p');
    assert.equal(all.status, 200);
    assert.equal(all.json.runs.length, 3);
    assert.equal(all.json.runs.at(-1).id, firstRun);
    assert.equal((await call(base, 'GET', '/runs?pipeline=p&status=succeeded&limit=2')).json.runs.length, 2);
    assert.deepEqual((await call(base, 'GET', '/runs?pipeline=p&status=failed')).json.runs, []);
    const bad = await call(base, 'GET', '/runs?status=bogus');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.kind, 'input');
    assert.match(bad.json.error.message, /querystring\.status must be equal to one of the allowed values/);
    assert.equal((await call(base, 'GET', '/runs?limit=0')).status, 400);
    assert.equal((await call(base, 'GET', '/runs?unknown=1')).status, 400);
  });

  it('400 on bad bodies (missing, unknown or malformed fields, bad JSON), 404 on unknown pipelines and routes', async () => {
    const missing = await call(base, 'POST', '/pipelines/p/backfill', { body: { from: '2026-03-01' } });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.json, { error: { kind: 'input', message: "body must have required property 'to'" } });
    const unknown = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: '2026-03-01', to: '2026-03-02', dryrun: true },
    });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.json.error.message, 'body: unknown property "dryrun"');
    const noBody = await call(base, 'POST', '/pipelines/p/backfill');
    assert.equal(noBody.status, 400);
    assert.equal(
      (await call(base, 'POST', '/pipelines/p/backfill', { body: { from: 'soon', to: '2026-03-02' } })).status,
      400,
    );
    const notDate = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: 'yesterday-ish', to: '2026-03-02' },
    });
    assert.equal(notDate.status, 400);
    assert.match(notDate.json.error.message, /^from "yesterday-ish": expected an ISO date or date-time/);
    const reversed = await call(base, 'POST', '/pipelines/p/backfill', {
      body: { from: '2026-03-05', to: '2026-03-01' },
    });
    assert.equal(reversed.status, 400);
    assert.equal(reversed.json.error.kind, 'config');
    assert.equal(
      (
        await call(base, 'POST', '/pipelines/p/backfill', {
          body: { from: '2026-03-01', to: '2026-03-02', parallel: 0 },
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await call(base, 'POST', '/pipelines/p/backfill', {
          body: { from: '2026-03-01', to: '2026-03-02', every: 'often' },
        })
      ).status,
      400,
    );
    const halfInterval = await call(base, 'POST', '/pipelines/p/trigger', { body: { interval_start: '2026-03-01' } });
    assert.equal(halfInterval.status, 400);
    assert.equal(halfInterval.json.error.message, 'interval_start and interval_end go together');
    const badJson = await call(base, 'POST', '/pipelines/p/trigger', { raw: '{"interval_start": ' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.error.kind, 'input');
    assert.equal((await call(base, 'POST', '/runs/x/rerun', { body: { all: 'maybe' } })).status, 400);
    const nope = await call(base, 'POST', '/pipelines/nope/trigger', { body: {} });
    assert.equal(nope.status, 404);
    assert.equal(nope.json.error.kind, 'not_found');
    assert.equal(
      (await call(base, 'POST', '/pipelines/nope/backfill', { body: { from: '2026-03-01', to: '2026-03-02' } })).status,
      404,
    );
    assert.equal((await call(base, 'POST', '/runs/run_nope/cancel')).status, 404);
    assert.equal((await call(base, 'POST', '/runs/run_nope/rerun')).status, 404);
    const route = await call(base, 'GET', '/nope');
    assert.equal(route.status, 404);
    assert.deepEqual(route.json, { error: { kind: 'not_found', message: 'no route GET /nope; see /openapi.json' } });
  });

  it('POST /runs/:id/cancel: a queued run is cancelled at once, a running one at its next heartbeat; 409 once ended', async () => {
    const first = await call(base, 'POST', '/pipelines/slow/trigger');
    assert.equal(first.status, 201);
    assert.equal(first.json.status, 'running');
    const second = await call(base, 'POST', '/pipelines/slow/trigger', { body: {} });
    assert.equal(second.json.status, 'queued', 'max_active_runs 1: the second run waits');
    const cancelled = await call(base, 'POST', `/runs/${second.json.id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.json.status, 'cancelled');
    assert.deepEqual(
      (await call(base, 'GET', `/runs/${second.json.id}`)).json.tasks.map(
        (t: { task: string; status: string; attempt: number }) => [t.task, t.status, t.attempt],
      ),
      [['nap', 'cancelled', 0]],
    );
    const again = await call(base, 'POST', `/runs/${second.json.id}/cancel`);
    assert.equal(again.status, 409);
    assert.equal(again.json.error.kind, 'conflict');

    await taskRunning(base, first.json.id, 'nap');
    const busy = await call(base, 'POST', `/runs/${first.json.id}/rerun`);
    assert.equal(busy.status, 409, 'a running run cannot be re-run');
    const stopping = await call(base, 'POST', `/runs/${first.json.id}/cancel`);
    assert.equal(stopping.status, 200);
    assert.equal(stopping.json.status, 'running');
    assert.equal(stopping.json.cancel_requested, true);
    const ended = await finished(base, first.json.id);
    assert.equal(ended.status, 'cancelled');
    assert.deepEqual(
      ended.tasks.map((t: { task: string; status: string; attempt: number }) => [t.task, t.status, t.attempt]),
      [['nap', 'cancelled', 1]],
    );
  });

  it('POST /runs/:id/rerun resumes a failed run from its failed task; the succeeded task is not run again', async () => {
    const res = await call(base, 'POST', '/pipelines/flaky/trigger');
    const failed = await finished(base, res.json.id);
    assert.equal(failed.status, 'failed');
    assert.deepEqual(
      failed.tasks.map((t: { task: string; status: string; attempt: number }) => [t.task, t.status, t.attempt]),
      [
        ['a', 'succeeded', 1],
        ['b', 'failed', 1],
      ],
    );
    await p.write('ready.flag', 'yes');
    const rerun = await call(base, 'POST', `/runs/${res.json.id}/rerun`, { body: {} });
    assert.equal(rerun.status, 200);
    assert.equal(rerun.json.id, res.json.id);
    assert.ok(['queued', 'running'].includes(rerun.json.status));
    const done = await finished(base, res.json.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.error, null);
    assert.deepEqual(
      done.tasks.map((t: { task: string; status: string; attempt: number }) => [t.task, t.status, t.attempt]),
      [
        ['a', 'succeeded', 1],
        ['b', 'succeeded', 2],
      ],
    );
    const attempts = (await call(base, 'GET', `/runs/${res.json.id}/tasks`)).json.tasks;
    assert.deepEqual(
      attempts.map((t: { task: string; attempts: { attempt: number; status: string }[] }) => [
        t.task,
        t.attempts.map((a) => `${a.attempt}:${a.status}`),
      ]),
      [
        ['a', ['1:succeeded']],
        ['b', ['1:failed', '2:succeeded']],
      ],
    );
    assert.deepEqual(logLines((await call(base, 'GET', `/runs/${res.json.id}/tasks/b/log`)).text), ['b is ready']);
    assert.deepEqual(logLines((await call(base, 'GET', `/runs/${res.json.id}/tasks/b/log?attempt=1`)).text), [
      'failed: shell task b exited with code 1',
    ]);
  });

  it('GET /tables and /tables/:name: rows, files, last commit time and freshness', async () => {
    const list = await call(base, 'GET', '/tables');
    assert.equal(list.status, 200);
    const names = list.json.tables.map((t: { name: string }) => t.name).sort();
    assert.ok(names.includes('bronze.orders') && names.includes('silver.orders'), names.join(', '));
    const bronze = await call(base, 'GET', '/tables/bronze.orders');
    assert.equal(bronze.status, 200);
    assert.equal(bronze.json.name, 'bronze.orders');
    assert.equal(bronze.json.zone, 'bronze');
    assert.equal(bronze.json.rows, 6);
    assert.equal(bronze.json.files, 3);
    assert.ok(bronze.json.bytes > 0);
    assert.ok(Date.parse(bronze.json.last_commit_at) >= started);
    assert.ok(
      bronze.json.freshness_seconds >= 0 && bronze.json.freshness_seconds < 120,
      String(bronze.json.freshness_seconds),
    );
    assert.deepEqual(
      bronze.json.columns.map((c: { name: string }) => c.name).filter((n: string) => n === 'id' || n === 'day'),
      ['id', 'day'],
    );
    const silver = list.json.tables.find((t: { name: string }) => t.name === 'silver.orders');
    assert.equal(silver.rows, 6);
    assert.deepEqual(silver.primary_key, ['id']);
    const missing = await call(base, 'GET', '/tables/bronze.nope');
    assert.equal(missing.status, 404);
    assert.match(missing.json.error.message, /^no table bronze\.nope \(tables: .*bronze\.orders/);
  });

  it('GET /openapi.json documents every route with its method, parameters, body schema and bearer security on writes', async () => {
    const res = await call(base, 'GET', '/openapi.json');
    assert.equal(res.status, 200);
    const doc = res.json;
    assert.equal(doc.openapi, '3.1.0');
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    assert.deepEqual(ops.sort(), [
      'GET /health',
      'GET /lineage',
      'GET /metrics',
      'GET /openapi.json',
      'GET /pipelines',
      'GET /pipelines/{name}',
      'GET /pipelines/{name}/reconcile',
      'GET /pipelines/{name}/state',
      'GET /quarantine',
      'GET /ready',
      'GET /runs',
      'GET /runs/{id}',
      'GET /runs/{id}/tasks',
      'GET /runs/{id}/tasks/{task}/log',
      'GET /tables',
      'GET /tables/sla',
      'GET /tables/{name}',
      'GET /tables/{name}/quality',
      'GET /tables/{name}/rows',
      'GET /tables/{name}/versions',
      'POST /pipelines/{name}/backfill',
      'POST /pipelines/{name}/reconcile',
      'POST /pipelines/{name}/trigger',
      'POST /runs/{id}/cancel',
      'POST /runs/{id}/rerun',
      'POST /tables/{name}/compact',
      'POST /tables/{name}/quarantine/replay',
    ]);
    const backfill = doc.paths['/pipelines/{name}/backfill'].post;
    assert.deepEqual(
      backfill.parameters.map((x: { name: string; in: string; required: boolean }) => [x.name, x.in, x.required]),
      [['name', 'path', true]],
    );
    assert.equal(backfill.requestBody.required, true);
    assert.deepEqual(backfill.requestBody.content['application/json'].schema.required, ['from', 'to']);
    assert.deepEqual(Object.keys(backfill.requestBody.content['application/json'].schema.properties).sort(), [
      'batch',
      'dry_run',
      'every',
      'from',
      'parallel',
      'rerun',
      'to',
    ]);
    assert.deepEqual(Object.keys(backfill.responses).sort(), [
      '200',
      '201',
      '400',
      '401',
      '403',
      '404',
      '409',
      '415',
      '421',
      '500',
    ]);
    assert.equal(doc.paths['/pipelines/{name}/trigger'].post.requestBody.required, false);
    const log = doc.paths['/runs/{id}/tasks/{task}/log'].get;
    assert.deepEqual(
      log.parameters.map((x: { name: string; in: string; required: boolean }) => [x.name, x.in, x.required]),
      [
        ['id', 'path', true],
        ['task', 'path', true],
        ['attempt', 'query', false],
      ],
    );
    assert.ok(log.responses['200'].content['text/plain']);
    assert.deepEqual(
      doc.paths['/runs'].get.parameters.map((x: { name: string }) => x.name),
      ['pipeline', 'status', 'backfill_id', 'limit'],
    );
    assert.deepEqual(doc.components.securitySchemes.bearer, {
      type: 'http',
      scheme: 'bearer',
      description: doc.components.securitySchemes.bearer.description,
    });
    // No token configured: the bearer scheme is optional on writes; reads declare none.
    for (const path of [
      '/pipelines/{name}/trigger',
      '/pipelines/{name}/backfill',
      '/runs/{id}/cancel',
      '/runs/{id}/rerun',
    ])
      assert.deepEqual(doc.paths[path].post.security, [{ bearer: [] }, {}]);
    assert.equal(doc.paths['/runs'].get.security, undefined);
  });

  it('GET /metrics: runs, durations, attempts, rows, bytes and errors of finished runs, queue depth, table freshness, process metrics', async () => {
    // Everything has ended; the sched run too.
    await until('no open runs', async () => {
      const open = [
        ...(await call(base, 'GET', '/runs?status=running')).json.runs,
        ...(await call(base, 'GET', '/runs?status=queued')).json.runs,
      ];
      return open.length === 0 ? true : undefined;
    });
    const res = await call(base, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(res.text);
    const v = (name: string, labels: Record<string, string> = {}) => m.get(series(name, labels));
    assert.equal(v('dip_runs_total', { pipeline: 'p', status: 'succeeded' }), 3);
    assert.equal(v('dip_runs_total', { pipeline: 'slow', status: 'cancelled' }), 2);
    assert.equal(v('dip_runs_total', { pipeline: 'flaky', status: 'failed' }), 1);
    assert.equal(v('dip_runs_total', { pipeline: 'flaky', status: 'succeeded' }), 1);
    assert.equal(v('dip_runs_total', { pipeline: 'sched', status: 'succeeded' }), 1);
    assert.equal(v('dip_run_duration_seconds_count', { pipeline: 'p', status: 'succeeded' }), 3);
    assert.ok((v('dip_run_duration_seconds_sum', { pipeline: 'p', status: 'succeeded' }) ?? -1) > 0);
    assert.equal(v('dip_task_attempts_total', { pipeline: 'p', task: 'ingest.shop', outcome: 'succeeded' }), 3);
    assert.equal(v('dip_task_attempts_total', { pipeline: 'p', task: 'report', outcome: 'succeeded' }), 3);
    assert.equal(v('dip_task_attempts_total', { pipeline: 'flaky', task: 'b', outcome: 'failed' }), 1);
    assert.equal(v('dip_task_attempts_total', { pipeline: 'flaky', task: 'b', outcome: 'succeeded' }), 1);
    assert.equal(
      v('dip_task_attempts_total', { pipeline: 'flaky', task: 'a', outcome: 'succeeded' }),
      1,
      'the resumed run did not run a again',
    );
    assert.equal(v('dip_task_attempts_total', { pipeline: 'slow', task: 'nap', outcome: 'cancelled' }), 1);
    assert.equal(v('dip_errors_total', { pipeline: 'flaky', kind: 'transient' }), 1);
    assert.equal(v('dip_rows_total', { pipeline: 'p', source: 'shop' }), 6);
    assert.ok((v('dip_bytes_total', { pipeline: 'p', source: 'shop' }) ?? 0) > 0);
    assert.equal(
      v('dip_rows_total', { pipeline: 'p', source: 'silver' }),
      undefined,
      'silver rows are derived, not ingested',
    );
    assert.equal(v('dip_queue_depth', { state: 'pending' }), 0);
    assert.equal(v('dip_queue_depth', { state: 'queued' }), 0);
    assert.equal(v('dip_queue_depth', { state: 'running' }), 0);
    const fresh = v('dip_table_freshness_seconds', { table: 'bronze.orders' });
    assert.ok(fresh !== undefined && fresh >= 0 && fresh < 120, String(fresh));
    assert.ok(v('dip_table_freshness_seconds', { table: 'silver.orders' }) !== undefined);
    assert.ok(m.has(series('process_cpu_user_seconds_total')));
    // A second scrape counts nothing twice.
    const again = parseMetrics((await call(base, 'GET', '/metrics')).text);
    assert.equal(again.get(series('dip_runs_total', { pipeline: 'p', status: 'succeeded' })), 3);
    assert.equal(again.get(series('dip_rows_total', { pipeline: 'p', source: 'shop' })), 6);
  });

  it('counts runs and attempts finished by other processes (from the catalog), each once', async () => {
    const lake = await p.lake();
    // Another process (here: a runtime of its own) runs the flaky pipeline.
    const other = startRuntime(lake, { leaseMs: 900, pollMs: 50, concurrency: 1 });
    try {
      const run = await other.orchestrator.trigger('flaky');
      await finished(base, run.id);
    } finally {
      await other.stop();
    }
    const m = parseMetrics((await call(base, 'GET', '/metrics')).text);
    assert.equal(m.get(series('dip_runs_total', { pipeline: 'flaky', status: 'succeeded' })), 2);
    assert.equal(m.get(series('dip_task_attempts_total', { pipeline: 'flaky', task: 'a', outcome: 'succeeded' })), 2);
    assert.equal(m.get(series('dip_task_attempts_total', { pipeline: 'flaky', task: 'b', outcome: 'succeeded' })), 2);
    assert.equal(m.get(series('dip_errors_total', { pipeline: 'flaky', kind: 'transient' })), 1);
    const again = parseMetrics((await call(base, 'GET', '/metrics')).text);
    assert.equal(
      again.get(series('dip_task_attempts_total', { pipeline: 'flaky', task: 'a', outcome: 'succeeded' })),
      2,
      'a second scrape counts nothing twice',
    );
  });
});

describe('dip serve: readiness before the first tick', () => {
  it('GET /ready is 503 until the scheduler has ticked, then 200', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const lake = await p.lake();
    const runtime = startRuntime(lake, { concurrency: 0 });
    const status: { enabled: boolean; ticks: number; lastTickAt: Date | null; lastError: string | null } = {
      enabled: true,
      ticks: 0,
      lastTickAt: null,
      lastError: 'catalog locked',
    };
    const app = await createServer(lake, runtime, { scheduler: status satisfies SchedulerStatus });
    try {
      const before = await app.inject({ method: 'GET', url: '/ready' });
      assert.equal(before.statusCode, 503);
      assert.deepEqual(before.json(), {
        status: 'not_ready',
        catalog: 'ok',
        scheduler: { enabled: true, ticks: 0, last_tick_at: null, last_error: 'catalog locked' },
      });
      status.ticks = 1;
      status.lastError = null;
      status.lastTickAt = new Date('2026-03-01T00:00:00Z');
      const ready = await app.inject({ method: 'GET', url: '/ready' });
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json(), {
        status: 'ready',
        catalog: 'ok',
        scheduler: { enabled: true, ticks: 1, last_tick_at: '2026-03-01T00:00:00.000Z', last_error: null },
      });
      await lake.catalog.close();
      const down = await app.inject({ method: 'GET', url: '/ready' });
      assert.equal(down.statusCode, 503);
      assert.match(down.json().catalog, /^unavailable: /);
    } finally {
      await app.close();
      await runtime.stop();
    }
  });
});

describe('dip serve: scheduler loop and metrics baseline', () => {
  it('a failing tick is logged and the loop goes on; only good ticks count', async () => {
    const logged: string[] = [];
    let calls = 0;
    const loop = new SchedulerLoop(
      async () => {
        calls++;
        if (calls === 1) throw new Error('catalog is locked');
      },
      20,
      (level, message) => logged.push(`${level}: ${message}`),
    );
    loop.start();
    await until('a good tick', async () => (loop.ticks >= 1 ? true : undefined), 5_000);
    await loop.stop();
    assert.deepEqual(logged, ['error: scheduler tick failed: catalog is locked']);
    assert.equal(loop.lastError, null);
    const ticks = loop.ticks;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(loop.ticks, ticks, 'stopped: no more ticks');
  });

  it("runs that ended before the server started are counted (the catalog's history, issue 21); --no-scheduler is ready without ticks", async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'echo hi' } } } });
    const lake = await p.lake();
    const early = startRuntime(lake, { leaseMs: 900, pollMs: 50, concurrency: 1 });
    const before = await early.orchestrator.trigger('q');
    await until('the early run', async () =>
      (await lake.catalog.orchestration.getRun(before.id))?.status === 'succeeded' ? true : undefined,
    );
    await early.stop();

    const server = await start(p, { scheduler: false, defaultMetrics: false });
    const ready = await call(server.address, 'GET', '/ready');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json.scheduler, { enabled: false, ticks: 0, last_tick_at: null, last_error: null });
    const m0 = parseMetrics((await call(server.address, 'GET', '/metrics')).text);
    assert.equal(m0.get(series('dip_runs_total', { pipeline: 'q', status: 'succeeded' })), 1);
    assert.equal(m0.has(series('process_cpu_user_seconds_total')), false, 'default metrics off');
    const run = await call(server.address, 'POST', '/pipelines/q/trigger');
    await finished(server.address, run.json.id);
    const m1 = parseMetrics((await call(server.address, 'GET', '/metrics')).text);
    assert.equal(m1.get(series('dip_runs_total', { pipeline: 'q', status: 'succeeded' })), 2);
    assert.equal(m1.get(series('dip_task_attempts_total', { pipeline: 'q', task: 't', outcome: 'succeeded' })), 2);
    await server.close();
  });
});

describe('dip serve: bearer token on writes', () => {
  const token = 's3cret-token';
  let p: TestProject;
  let base: string;

  before(async () => {
    p = await project({
      slow: {
        max_active_runs: 1,
        schedule: { every: '1d', start: '2999-01-01' },
        sources: {},
        tasks: { nap: { shell: 'sleep 5' } },
      },
    });
    base = (await start(p, { token })).address;
  });

  it('GET /health stays open; every other GET route needs the token (issue 14)', async () => {
    assert.equal((await call(base, 'GET', '/health')).status, 200);
    for (const path of ['/pipelines', '/pipelines/slow', '/runs', '/tables', '/openapi.json', '/metrics']) {
      assert.equal((await call(base, 'GET', path)).status, 401, path);
      assert.equal((await call(base, 'GET', path, { token })).status, 200, path);
    }
  });

  it('every POST route is 401 without a token, 403 with a wrong one, and works with the right one', async () => {
    const first = await call(base, 'POST', '/pipelines/slow/trigger', { token });
    assert.equal(first.status, 201);
    const routes: [string, unknown][] = [
      ['/pipelines/slow/trigger', {}],
      ['/pipelines/slow/backfill', { from: '2026-03-01', to: '2026-03-03', dry_run: true }],
      [`/runs/${first.json.id}/cancel`, undefined],
      [`/runs/${first.json.id}/rerun`, {}],
    ];
    for (const [path, body] of routes) {
      const none = await call(base, 'POST', path, { body });
      assert.equal(none.status, 401, path);
      assert.deepEqual(none.json, {
        error: { kind: 'unauthorized', message: 'this endpoint needs Authorization: Bearer <serve.token>' },
      });
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="dip"');
      assert.equal(
        (
          await call(base, 'POST', path, {
            body,
            authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}`,
          })
        ).status,
        401,
        path,
      );
      const wrong = await call(base, 'POST', path, { body, token: `${token}x` });
      assert.equal(wrong.status, 403, path);
      assert.equal(wrong.json.error.kind, 'forbidden');
      assert.equal((await call(base, 'POST', path, { body, token: token.slice(0, -1) })).status, 403, path);
    }
    // Rejected requests changed nothing: one run so far.
    assert.equal((await call(base, 'GET', '/runs', { token })).json.runs.length, 1);
    // And with the token every write goes through.
    const second = await call(base, 'POST', '/pipelines/slow/trigger', { body: {}, token });
    assert.equal(second.status, 201);
    assert.equal(second.json.status, 'queued');
    const plan = await call(base, 'POST', '/pipelines/slow/backfill', {
      body: { from: '2026-03-01', to: '2026-03-03', dry_run: true },
      token,
    });
    assert.equal(plan.status, 200);
    assert.equal(plan.json.intervals.length, 2);
    const cancelled = await call(base, 'POST', `/runs/${second.json.id}/cancel`, { token });
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.json.status, 'cancelled');
    const rerun = await call(base, 'POST', `/runs/${second.json.id}/rerun`, {
      body: { all: true },
      token: ` ${token}`.trim(),
    });
    assert.equal(rerun.status, 200);
    assert.equal(rerun.json.status, 'queued');
    for (const id of [second.json.id, first.json.id])
      assert.equal((await call(base, 'POST', `/runs/${id}/cancel`, { token })).status, 200);
  });

  it('the OpenAPI document requires the bearer scheme on every POST route', async () => {
    const doc = (await call(base, 'GET', '/openapi.json', { token })).json;
    for (const path of [
      '/pipelines/{name}/trigger',
      '/pipelines/{name}/backfill',
      '/runs/{id}/cancel',
      '/runs/{id}/rerun',
    ])
      assert.deepEqual(doc.paths[path].post.security, [{ bearer: [] }], path);
  });
});

describe('dip serve: listening beyond loopback', () => {
  it('refuses to start on 0.0.0.0 without a token, and starts with one', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const lake = await p.lake();
    await assert.rejects(
      serve(lake, { host: '0.0.0.0', port: 0, tickMs: 100, concurrency: 1, executor: 'in-process' }),
      (err: unknown) =>
        err instanceof DipError &&
        err.kind === 'config' &&
        /refusing to listen on 0\.0\.0\.0 without a token/.test(err.message),
    );
    await assert.rejects(
      serve(lake, { host: '0.0.0.0', port: 0, tickMs: 100, concurrency: 1, executor: 'in-process', token: ' ' }),
      /serve\.token is empty/,
    );
    const open = await serve(lake, {
      host: '0.0.0.0',
      port: 0,
      tickMs: 100,
      concurrency: 1,
      executor: 'in-process',
      token: 'tok',
      defaultMetrics: false,
    });
    try {
      const port = new URL(open.address).port;
      assert.equal((await call(`http://127.0.0.1:${port}`, 'GET', '/health')).status, 200);
      assert.equal((await call(`http://127.0.0.1:${port}`, 'POST', '/pipelines/q/trigger')).status, 401);
    } finally {
      await open.close();
    }
  });

  it('knows the loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST'])
      assert.equal(isLoopback(host), true, host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', 'localhost.example.com'])
      assert.equal(isLoopback(host), false, host);
  });
});

describe('dip serve: graceful shutdown', () => {
  const pipelines = { nap: { sources: {}, tasks: { nap: { shell: 'sleep 2; echo woke' } } } };

  it('close() waits for running tasks within the grace period: the task finishes and succeeds', async () => {
    const p = await project(pipelines);
    const server = await start(p, { graceMs: 20_000 });
    const res = await call(server.address, 'POST', '/pipelines/nap/trigger');
    await taskRunning(server.address, res.json.id, 'nap');
    const t0 = Date.now();
    await server.close();
    assert.ok(Date.now() - t0 >= 500, `close waited ${Date.now() - t0} ms`);
    await assert.rejects(fetch(`${server.address}/health`), 'no longer accepting requests');
    const store = (await p.lake()).catalog.orchestration;
    assert.equal((await store.getRun(res.json.id))?.status, 'succeeded');
    const [task] = await store.listTasks(res.json.id);
    assert.deepEqual([task?.status, task?.attempt], ['succeeded', 1]);
    assert.deepEqual(
      (await store.listAttempts(res.json.id, 'nap')).map((a) => [a.attempt, a.status, logLines(a.log)]),
      [[1, 'succeeded', ['woke']]],
    );
  });

  it('with grace 0 a running task is handed back: queued again, its attempt recorded as interrupted and not counted', async () => {
    const p = await project(pipelines);
    const server = await start(p, { graceMs: 0 });
    const res = await call(server.address, 'POST', '/pipelines/nap/trigger');
    await taskRunning(server.address, res.json.id, 'nap');
    const t0 = Date.now();
    await server.close();
    assert.ok(
      Date.now() - t0 < 1_900,
      `close took ${Date.now() - t0} ms; the task should have been handed back, not awaited`,
    );
    const store = (await p.lake()).catalog.orchestration;
    const [task] = await store.listTasks(res.json.id);
    // Issue 21: the interrupted attempt stays in the history; it does not count (the floor moved with it).
    assert.deepEqual([task?.status, task?.attempt, task?.leaseOwner], ['queued', 1, null]);
    assert.deepEqual(
      (await store.listAttempts(res.json.id, 'nap')).map((a) => [a.attempt, a.status]),
      [[1, 'interrupted']],
    );
    assert.equal(
      (await store.getRun(res.json.id))?.status,
      'running',
      'the run waits for another process to take the task',
    );
  });
});

describe('dip serve (the CLI command)', () => {
  it('reads serve: from the project (token from ${env:…}), prints {address} with --json, and exits 0 on SIGTERM', async () => {
    const p = await project(
      { q: { sources: {}, tasks: { t: { shell: 'echo hi' } } } },
      { serve: { host: '127.0.0.1', port: 0, token: '${env:DIP_TEST_SERVE_TOKEN}', tick: '1s', concurrency: 1 } },
    );
    const code = `
      const { Command } = await import('commander');
      const { registerServe } = await import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src/cli/commands/serve.ts')).href)});
      const program = new Command('dip').option('-p, --project <path>').option('--json').exitOverride();
      registerServe(program);
      await program.parseAsync(JSON.parse(process.env.DIP_TEST_ARGS), { from: 'user' });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        DIP_TEST_SERVE_TOKEN: 'cli-token',
        DIP_TEST_ARGS: JSON.stringify(['-p', p.dir, '--json', 'serve']),
        DIP_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    try {
      const line = await until(
        'the address on stdout',
        async () => (stdout.includes('\n') ? stdout.split('\n')[0] : undefined),
        60_000,
      );
      const { address } = JSON.parse(line as string) as { address: string };
      assert.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal((await call(address, 'GET', '/health')).status, 200);
      assert.equal((await call(address, 'POST', '/pipelines/q/trigger')).status, 401);
      assert.equal((await call(address, 'POST', '/pipelines/q/trigger', { token: 'cli-token' })).status, 201);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.equal(stdout, `${line}\n`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
