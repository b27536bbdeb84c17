/**
 * Alerts from the orchestrator to a local webhook receiver and a local SMTP receiver: a failed
 * run and exhausted retries alert once per incident, a success ends the incident, SLA breaches
 * and quality failures alert, and data triggers (new files, an upstream pipeline) start runs.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { Orchestrator } from '../src/orchestrate/orchestrator.js';
import { startRuntime, waitForRuns, type Runtime } from '../src/orchestrate/runtime.js';
import { projectConfig, TestProject } from './support/project.js';

interface Hook {
  text: string;
  body: Record<string, unknown>;
}
const hooks: Hook[] = [];
const mails: { to: string[]; raw: string }[] = [];
let http: Server;
let smtp: SMTPServer;
let hookUrl = '';
let smtpPort = 0;
const projects: TestProject[] = [];
const runtimes: Runtime[] = [];

before(async () => {
  http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      hooks.push({ text: String(body['text']), body });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/hook`;
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});

after(async () => {
  for (const r of runtimes) await r.stop();
  for (const p of projects) await p.dispose();
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
  await new Promise<void>((resolve) => smtp.close(() => resolve()));
});

beforeEach(() => {
  hooks.length = 0;
  mails.length = 0;
});

async function project(pipelines: Record<string, unknown>): Promise<TestProject> {
  const p = await TestProject.create({});
  const alerts = {
    dedup: '1h',
    webhooks: [{ url: hookUrl }],
    email: { host: '127.0.0.1', port: smtpPort, from: 'dip@example.com', to: ['oncall@example.com'] },
  };
  await p.write('dip.yaml', JSON.stringify({ ...projectConfig({}), pipelines, alerts }, null, 2));
  projects.push(p);
  return p;
}

/** Alerts go out just after the outcome is recorded: wait for them (bounded). */
async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

const subjects = () => mails.map((m) => /^Subject: (.*)$/m.exec(m.raw)?.[1]).sort();

describe('orchestrator alerts', () => {
  it('one incident, one alert: a failing pipeline alerts once until it succeeds again', async () => {
    const p = await project({
      p: {
        sources: {},
        retries: { attempts: 2, delay: '10ms', jitter: false },
        tasks: { gate: { shell: 'test -f ok.flag' } },
      },
    });
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    const run1 = await r.orchestrator.trigger('p');
    assert.equal((await waitForRuns(r.orchestrator.store, [run1.id], { pollMs: 20 }))[0]?.status, 'failed');
    await until(() => hooks.length >= 1 && mails.length >= 1);
    await new Promise((res) => setTimeout(res, 300));
    // Issue 21: one incident, one alert (not one for the task and one for the run).
    assert.deepEqual(
      hooks.map((h) => h.text.split('\n')[0]),
      ['Run of p failed: gate failed after 2 attempts'],
    );
    assert.equal(mails.length, 1);
    assert.deepEqual(subjects(), ['[dip] Run of p failed: gate failed after 2 attempts']);
    assert.deepEqual(mails[0]?.to, ['oncall@example.com']);
    const failure = hooks[0];
    assert.match(JSON.stringify(failure?.body['blocks']), new RegExp(run1.id));
    assert.match(failure?.text ?? '', /gate: shell task gate exited with code 1/);

    const run2 = await r.orchestrator.trigger('p');
    await waitForRuns(r.orchestrator.store, [run2.id], { pollMs: 20 });
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(hooks.length, 1, 'the same incident does not alert again within the dedup window');
    assert.equal(mails.length, 1);

    await p.write('ok.flag', '');
    const run3 = await r.orchestrator.trigger('p');
    assert.equal((await waitForRuns(r.orchestrator.store, [run3.id], { pollMs: 20 }))[0]?.status, 'succeeded');
    await p.write('ok.flag', ''); // still there
    const { rm } = await import('node:fs/promises');
    await rm(p.path('ok.flag'));
    const run4 = await r.orchestrator.trigger('p');
    await waitForRuns(r.orchestrator.store, [run4.id], { pollMs: 20 });
    await until(() => hooks.filter((h) => h.text.startsWith('Run of p failed')).length >= 2);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(
      hooks.filter((h) => h.text.startsWith('Run of p failed')).length,
      2,
      'after a success, a new failure is a new incident',
    );
    assert.equal(hooks.length, 2);
  });

  it('an SLA breach alerts once; a quality failure alerts and is not retried', async () => {
    const p = await project({
      p: {
        sources: { shop: { type: 'files', streams: { orders: { path: 'data/*.csv' } } } },
        sla: { 'bronze.orders': '1h' },
        retries: { attempts: 3, delay: '10ms' },
        silver: { orders: { from: 'orders', checks: [{ type: 'not_null', columns: ['amount'] }] } },
      },
    });
    const clock = { t: new Date() };
    const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20, clock: () => clock.t });
    runtimes.push(r);
    await r.orchestrator.tick();
    await r.orchestrator.tick();
    assert.deepEqual(
      hooks.map((h) => h.text.split('\n')[0]),
      ['bronze.orders is stale: no commit for ever (SLA 1h)'],
    );
    await p.write('data/a.csv', 'id,amount\n1,5\n2,\n');
    const run = await r.orchestrator.trigger('p');
    const [done] = await waitForRuns(r.orchestrator.store, [run.id], { pollMs: 20 });
    assert.equal(done?.status, 'failed');
    const tasks = await r.orchestrator.store.listTasks(run.id);
    assert.deepEqual(
      tasks.map((t) => [t.task, t.status, t.attempt]),
      [
        ['ingest.shop', 'succeeded', 1],
        ['silver.orders', 'failed', 1],
      ],
    );
    await until(() => hooks.some((h) => h.text.startsWith('Quality')));
    assert.ok(hooks.some((h) => h.text.startsWith('Quality checks failed in p · silver.orders')));
    // Fresh again: the SLA incident ends quietly (recovery is not in `on`), and later breaches alert anew.
    hooks.length = 0;
    await r.orchestrator.tick();
    assert.deepEqual(hooks, []);
    clock.t = new Date(Date.now() + 2 * 3_600_000);
    await r.orchestrator.tick();
    assert.match(
      (hooks[0] as Hook | undefined)?.text ?? '',
      /^bronze\.orders is stale: no commit for 2\.0 h \(SLA 1h\)/,
    );
  });
});

describe('data triggers', () => {
  it('new or changed files start a run; an upstream success starts the downstream pipeline with its interval', async () => {
    const p = await project({
      up: {
        sources: { shop: { type: 'files', streams: { orders: { path: 'in/*.csv' } } } },
        triggers: [{ files: 'in/*.csv' }],
      },
      down: {
        sources: {},
        triggers: [{ pipeline: 'up' }],
        tasks: { t: { shell: 'echo "$DIP_INTERVAL_START" > down.txt' } },
      },
    });
    const lake = await p.lake();
    const o = Orchestrator.create(lake);
    assert.equal((await o.tick()).triggered, 0, 'no files yet; the upstream has not run');
    await p.write('in/a.csv', 'id\n1\n');
    assert.equal((await o.tick()).triggered, 1);
    assert.equal((await o.tick()).triggered, 0, 'unchanged files do not trigger again');
    await p.write('in/b.csv', 'id\n2\n');
    assert.equal((await o.tick()).triggered, 1);
    const ups = await o.store.listRuns({ pipeline: 'up' });
    assert.deepEqual(
      ups.map((x) => x.trigger),
      ['files', 'files'],
    );
    assert.ok(
      ups.every((x) => x.interval && x.interval.start < x.interval.end),
      'a file run covers the time since the previous trigger',
    );
    assert.equal(ups[1]?.interval?.end.getTime(), ups[0]?.interval?.start.getTime());
    const r = startRuntime(lake, { leaseMs: 5_000, pollMs: 20 });
    runtimes.push(r);
    await waitForRuns(
      o.store,
      ups.map((x) => x.id),
      { pollMs: 20 },
    );
    assert.equal(await p.count('bronze.orders'), 2);
    assert.equal((await o.tick()).triggered, 1, 'the upstream succeeded: the downstream runs once');
    assert.equal((await o.tick()).triggered, 0);
    const [down] = await o.store.listRuns({ pipeline: 'down' });
    assert.equal(down?.trigger, 'pipeline');
    assert.deepEqual(down?.interval, ups[0]?.interval);
  });
});
