/**
 * Alert delivery under real operations (issue 21, item 9): a failed run sends one alert (not one
 * for the task and one for the run); a delivery to a receiver that is down is kept in the
 * catalog's outbox, logged as a warning, and re-sent with backoff once the receiver is back,
 * even by another process than the one that failed to send it; it arrives exactly once.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { startRuntime, waitForRuns, type Runtime } from '../src/orchestrate/runtime.js';
import { projectConfig, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const runtimes: Runtime[] = [];
let receiver: Server | undefined;

after(async () => {
  for (const r of runtimes) await r.stop();
  for (const p of projects) await p.dispose();
  receiver?.closeAllConnections();
  await new Promise<void>((resolve) => (receiver ? receiver.close(() => resolve()) : resolve()));
});

/** A port nothing listens on yet (the receiver is down). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('alert delivery', () => {
  it('one alert per failed run, kept while the receiver is down and re-sent once it is back', {
    timeout: 60_000,
  }, async () => {
    const port = await freePort();
    const p = await TestProject.create({});
    projects.push(p);
    await p.write(
      'dip.yaml',
      JSON.stringify({
        ...projectConfig({}),
        pipelines: {
          p: {
            sources: {},
            retries: { attempts: 2, delay: '10ms', jitter: false },
            tasks: { gate: { shell: 'exit 3' } },
          },
        },
        alerts: { dedup: '1h', webhooks: [{ url: `http://127.0.0.1:${port}/hook` }] },
      }),
    );
    const logs: { level: string; message: string; fields: Record<string, unknown> | undefined }[] = [];
    const log = (message: string, fields?: Record<string, unknown>, level: 'info' | 'warn' | 'error' = 'info') =>
      logs.push({ level, message, fields });
    const lake = await p.lake();
    let outbox = lake.catalog.orchestration.alertOutbox();
    const redelivery = { baseMs: 200, maxMs: 400 };

    // The receiver is down: the alert cannot be delivered.
    const first = startRuntime(lake, { leaseMs: 5_000, pollMs: 20, log, alertRedelivery: redelivery });
    const run = await first.orchestrator.trigger('p');
    assert.equal((await waitForRuns(first.orchestrator.store, [run.id], { pollMs: 20 }))[0]?.status, 'failed');
    await until('the failed delivery to be kept', async () => (await outbox.count()) === 1);
    const failed = logs.find((l) => l.message === 'alert delivery failed; it will be re-sent');
    assert.equal(failed?.level, 'warn');
    assert.equal(failed?.fields?.['channel'], 'webhook:1');
    assert.match(String(failed?.fields?.['error']), /ECONNREFUSED/);
    assert.equal(
      logs.filter((l) => l.level === 'info' && l.message.startsWith('alert')).length,
      0,
      'a failed delivery is never logged as info',
    );
    // Re-sends while it is still down fail and stay in the outbox.
    await until(
      'a re-send to fail',
      () => logs.filter((l) => l.message.startsWith('alert delivery failed')).length >= 2,
    );
    assert.equal(await outbox.count(), 1);
    await first.stop();

    // The receiver comes back; the process that failed to send is gone: another one re-sends.
    const received: { text: string; body: Record<string, unknown> }[] = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        received.push({ text: String(body['text']), body });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver?.listen(port, '127.0.0.1', resolve));
    const reopened = await p.reopen();
    outbox = reopened.catalog.orchestration.alertOutbox();
    const second = startRuntime(reopened, { leaseMs: 5_000, pollMs: 20, log, alertRedelivery: redelivery });
    runtimes.push(second);
    await until('the re-sent alert', () => received.length >= 1);
    await until('the outbox to empty', async () => (await outbox.count()) === 0);
    await new Promise((r) => setTimeout(r, 800)); // more re-send passes: nothing is sent twice
    assert.equal(received.length, 1, 'one alert for the failed run, delivered once');
    assert.equal(received[0]?.text.split('\n')[0], 'Run of p failed: gate failed after 2 attempts');
    assert.match(received[0]?.text ?? '', /gate: shell task gate exited with code 3/);
    assert.match(JSON.stringify(received[0]?.body['blocks']), new RegExp(run.id));
    assert.ok(logs.some((l) => l.message === 'alert re-sent' && l.level === 'info'));

    // The same incident (the pipeline failing again) sends nothing within the dedup window.
    const again = await second.orchestrator.trigger('p');
    await waitForRuns(second.orchestrator.store, [again.id], { pollMs: 20 });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(received.length, 1);
  });
  it('two tasks failing in one run are one incident, even without a dedup window', { timeout: 60_000 }, async () => {
    const received: string[] = [];
    const hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(String((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { text: string }).text));
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const p = await TestProject.create({});
      projects.push(p);
      await p.write(
        'dip.yaml',
        JSON.stringify({
          ...projectConfig({}),
          pipelines: {
            p: {
              sources: {},
              retries: { attempts: 1 },
              tasks: {
                one: { shell: 'exit 1' },
                two: { shell: 'exit 2' },
                after: { shell: 'true', depends_on: ['one', 'two'] },
              },
            },
          },
          alerts: { dedup: '0s', webhooks: [{ url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` }] },
        }),
      );
      const r = startRuntime(await p.lake(), { leaseMs: 5_000, pollMs: 20 });
      runtimes.push(r);
      const run = await r.orchestrator.trigger('p');
      const [done] = await waitForRuns(r.orchestrator.store, [run.id], { pollMs: 20 });
      assert.equal(done?.status, 'failed');
      const tasks = await r.orchestrator.store.listTasks(run.id);
      assert.deepEqual(tasks.map((t) => [t.task, t.status]).sort(), [
        ['after', 'upstream_failed'],
        ['one', 'failed'],
        ['two', 'failed'],
      ]);
      await until('the alert', () => received.length >= 1);
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(received.length, 1, received.join('\n---\n'));
      assert.match(received[0] ?? '', /^Run of p failed: (one|two) failed/);
      // The next run failing is a new alert (dedup 0s): the marker of the first run is gone.
      const next = await r.orchestrator.trigger('p');
      await waitForRuns(r.orchestrator.store, [next.id], { pollMs: 20 });
      await until('the second alert', () => received.length >= 2);
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(received.length, 2);
    } finally {
      hook.closeAllConnections();
      await new Promise<void>((resolve) => hook.close(() => resolve()));
    }
  });
});
