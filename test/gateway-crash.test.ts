/**
 * Exactly once across SIGKILL (issue 16): the posting emulator posts events (single objects and
 * NDJSON batches, 10% of acknowledged requests redelivered, failed requests retried) to `dip
 * gateway` while `dip run --follow` lands them; both processes are SIGKILLed at random moments
 * and restarted. Then a catch-up `dip run` lands the rest, and bronze must hold every event that
 * got a 2xx exactly once, and every other event at most once; the lander's committed offset is
 * the log's end. The issue asks for 100,000 events; this test posts 6,000 (2 cores shared by
 * many), which spans about twenty kills of each process; a gateway is killed 0.5–2.5 s after it
 * said it listens, the lander 3–7 s after it started. Set DIP_CRASH_EVENTS to post more.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { postActivity, type PostingStats } from '../src/emulate/posting.js';
import { EmbeddedEventLog } from '../src/eventlog/embedded.js';
import { CLI, runCli, TestProject } from './support/project.js';
import { freePort, sleep, waitUntil } from './support/service.js';

const TOTAL = Number(process.env['DIP_CRASH_EVENTS'] ?? 6000);
const KEY = 'crash-key';

describe('gateway + lander under SIGKILL: every acknowledged event in bronze exactly once', () => {
  let p: TestProject;
  const children = new Set<ChildProcess>();
  /** When a gateway said it listens: its life is counted from then. */
  const ready = new Map<ChildProcess, number>();
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await p?.dispose();
  });

  const start = (args: string[]): ChildProcess => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: p.dir,
      env: { ...process.env, NO_COLOR: '1', DIP_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('listening')) ready.set(child, Date.now());
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    (child as ChildProcess & { errTail: () => string }).errTail = () => err;
    children.add(child);
    child.on('exit', () => children.delete(child));
    return child;
  };
  const kill = async (c: ChildProcess | undefined) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };

  it(`posts ${TOTAL} events while killing both processes; bronze holds each acknowledged event once`, async () => {
    p = await TestProject.withSources({
      app: {
        type: 'gateway',
        batch: { max_events: 400, max_age: '200ms' },
        endpoints: {
          events: {
            auth: { type: 'api_key', keys: [`sha256:${createHash('sha256').update(KEY).digest('hex')}`] },
            event_id: 'id',
          },
        },
      },
    });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/ingest/p/app/events`;
    const gatewayArgs = ['gateway', '--port', String(port)];
    let gateway = start(gatewayArgs);
    let lander = start(['run', '--follow']);
    await waitUntil(
      async () => (await fetch(url, { method: 'POST', body: '{}' }).catch(() => undefined))?.status === 401,
      { what: 'dip gateway to answer', timeoutMs: 60_000 },
    );

    const posting = { done: false };
    const common = { url, headers: { 'x-api-key': KEY }, redeliver: 0.1, attempts: 6, retryDelayMs: 400 };
    const posters = Promise.all([
      postActivity({ ...common, total: TOTAL / 2, seed: 1, idPrefix: 'single', concurrency: 6 }),
      postActivity({ ...common, total: TOTAL / 2, seed: 2, idPrefix: 'batch', batch: 10, concurrency: 2 }),
    ]).finally(() => {
      posting.done = true;
    });

    let gatewayKills = 0;
    let landerKills = 0;
    let landerBorn = Date.now();
    let gatewayLife = 500 + Math.random() * 2000;
    let landerLife = 3000 + Math.random() * 4000;
    // Past the posting, the kills go on until each process died at least twice (a quiet machine
    // posts everything within one lander life).
    while (!posting.done || gatewayKills < 2 || landerKills < 2) {
      await sleep(50);
      const up = ready.get(gateway);
      if (up !== undefined && Date.now() - up > gatewayLife) {
        await kill(gateway);
        gatewayKills++;
        await sleep(Math.random() * 300);
        gateway = start(gatewayArgs);
        gatewayLife = 500 + Math.random() * 2000;
      }
      if (Date.now() - landerBorn > landerLife) {
        await kill(lander);
        landerKills++;
        lander = start(['run', '--follow']);
        landerBorn = Date.now();
        landerLife = 3000 + Math.random() * 4000;
      }
    }
    const stats: PostingStats[] = await posters;
    await kill(lander);
    await kill(gateway);
    // Catch up: land what the log holds (a plain run stops once it has read to the end).
    const caught = await runCli(['run'], p.dir);
    assert.equal(caught.code, 0, caught.stderr);

    const acked = new Set(stats.flatMap((s) => [...s.acked]));
    const failed = new Set(stats.flatMap((s) => [...s.failed]));
    const counts = new Map(
      (await p.rows('select id, count(*) as n from bronze.events group by id')).map((r) => [
        String(r['id']),
        Number(r['n']),
      ]),
    );
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], 'no event is in bronze twice');
    const missing = [...acked].filter((id) => !counts.has(id));
    assert.deepEqual(missing, [], 'every acknowledged event is in bronze');
    for (const id of counts.keys()) assert.ok(acked.has(id) || failed.has(id), `${id} was posted`);
    assert.equal(acked.size + failed.size, TOTAL);
    // The lander's committed offset is the log's end, and the log holds each landed event once.
    const log = await EmbeddedEventLog.open({ dir: p.path('.dip/eventlog/p/app/events'), mode: 'reader' });
    const { end } = await log.bounds();
    await log.close();
    assert.equal(end, counts.size);
    const state = await (await p.lake()).catalog.getState('p', 'app', 'events');
    assert.deepEqual(state, { next: end });
    const summary = {
      acked: acked.size,
      failed: failed.size,
      landed: counts.size,
      gatewayKills,
      landerKills,
      redelivered: stats.reduce((n, s) => n + s.redelivered, 0),
      state,
    };
    process.stdout.write(`# ${JSON.stringify(summary)}\n`);
    assert.ok(gatewayKills >= 2 && landerKills >= 2, JSON.stringify(summary));
  });
});
