/**
 * `dip serve` reloads the project file (issue 21, item 10): a pipeline added to dip.yaml is
 * served, triggered and scheduled without a restart, seen by a watch on the file or on SIGHUP;
 * a file that does not validate (bad YAML, a task cycle, an unknown pool, a bad cron) is refused
 * with a clear error in the log and the running configuration stays.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { type RunningServer, serve } from '../src/serve/server.js';
import { CLI, projectConfig, TestProject } from './support/project.js';

const projects: TestProject[] = [];
const servers: RunningServer[] = [];

after(async () => {
  for (const s of servers) await s.close({ graceMs: 0 });
  for (const p of projects) await p.dispose();
});

async function project(pipelines: Record<string, unknown>): Promise<TestProject> {
  const p = await TestProject.create({});
  await writePipelines(p, pipelines);
  projects.push(p);
  return p;
}

async function writePipelines(p: TestProject, pipelines: Record<string, unknown>): Promise<void> {
  await p.write('dip.yaml', JSON.stringify({ ...projectConfig({}), pipelines }, null, 2));
}

async function get(base: string, path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const a = { sources: {}, tasks: { t: { shell: 'echo a' } } };
const b = { sources: {}, tasks: { t: { shell: 'echo b' } } };

describe('dip serve reloads the project file', () => {
  it('on change: a new pipeline is served and runs; an invalid file is refused and the running configuration stays', {
    timeout: 120_000,
  }, async () => {
    const p = await project({ a });
    const logs: { level: string; message: string }[] = [];
    const server = await serve(await p.lake(), {
      host: '127.0.0.1',
      port: 0,
      tickMs: 100,
      concurrency: 2,
      executor: 'in-process',
      leaseMs: 2_000,
      pollMs: 50,
      defaultMetrics: false,
      watchProject: true,
      log: (level, message) => logs.push({ level, message }),
    });
    servers.push(server);
    const base = server.address;
    assert.equal((await get(base, '/pipelines/b')).status, 404);

    await writePipelines(p, { a, b });
    await until('pipeline b to be served', async () =>
      (await get(base, '/pipelines/b')).status === 200 ? true : undefined,
    );
    assert.ok(logs.some((l) => l.level === 'info' && /reloaded .*dip\.yaml \(file changed\)/.test(l.message)));
    const trigger = await fetch(`${base}/pipelines/b/trigger`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(trigger.status, 201);
    const run = (await trigger.json()) as { id: string };
    const done = await until('the run of b', async () => {
      const r = await get(base, `/runs/${run.id}`);
      return ['succeeded', 'failed'].includes(String(r.json['status'])) ? r.json : undefined;
    });
    assert.equal(done['status'], 'succeeded');

    // Invalid files: each is refused with a clear error; b is still served.
    const invalid: [string, string, RegExp][] = [
      ['bad YAML', 'pipelines: { a: [', /invalid YAML/],
      [
        'a task cycle',
        JSON.stringify({
          ...projectConfig({}),
          pipelines: {
            a,
            b,
            c: {
              sources: {},
              tasks: { x: { shell: 'true', depends_on: ['y'] }, y: { shell: 'true', depends_on: ['x'] } },
            },
          },
        }),
        /cycle/,
      ],
      [
        'a bad cron',
        JSON.stringify({
          ...projectConfig({}),
          pipelines: { a, b, d: { schedule: { cron: '99 99 * * *' }, sources: {}, tasks: { t: { shell: 'true' } } } },
        }),
        /pipelines\.d\.schedule: .*99 99/,
      ],
    ];
    for (const [what, text, error] of invalid) {
      const errorsBefore = logs.filter((l) => l.level === 'error').length;
      await p.write('dip.yaml', text);
      const logged = await until(`the refusal of ${what}`, async () =>
        logs.filter((l) => l.level === 'error').length > errorsBefore ? logs.at(-1) : undefined,
      );
      assert.equal(logged.level, 'error', what);
      assert.match(logged.message, /dip\.yaml was not reloaded \(file changed\): /, what);
      assert.match(logged.message, error, what);
      assert.match(logged.message, /Still running the configuration loaded before/, what);
      assert.equal((await get(base, '/pipelines/b')).status, 200, `${what}: b is still served`);
      assert.equal((await get(base, '/pipelines/c')).status, 404, what);
      assert.equal((await get(base, '/pipelines/d')).status, 404, what);
    }

    // A valid file again: removed pipelines go, added ones come.
    await writePipelines(p, { b, e: b });
    await until('pipeline e', async () => ((await get(base, '/pipelines/e')).status === 200 ? true : undefined));
    assert.equal((await get(base, '/pipelines/a')).status, 404);
    const listed = (await get(base, '/pipelines')).json['pipelines'] as { name: string }[];
    assert.deepEqual(listed.map((x) => x.name).sort(), ['b', 'e']);
  });

  it('dip serve --no-watch reloads on SIGHUP only', { timeout: 120_000 }, async () => {
    const p = await project({ a });
    const child = spawn(process.execPath, [CLI, '-p', p.dir, '--json', 'serve', '--port', '0', '--no-watch'], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const { address } = await until('the address', async () => {
        const line = out.split('\n').find((l) => l.startsWith('{"address"'));
        return line ? (JSON.parse(line) as { address: string }) : undefined;
      });
      await writePipelines(p, { a, b });
      await sleep(1_000);
      assert.equal((await get(address, '/pipelines/b')).status, 404, 'not watching');
      child.kill('SIGHUP');
      await until('pipeline b after SIGHUP', async () =>
        (await get(address, '/pipelines/b')).status === 200 ? true : undefined,
      );
      assert.match(out + err, /reloaded .*dip\.yaml \(SIGHUP\)/);
      // An invalid file on SIGHUP: refused, logged as an error, b stays.
      await p.write('dip.yaml', 'pipelines: { a: [');
      child.kill('SIGHUP');
      await until('the refusal', async () => (/was not reloaded \(SIGHUP\)/.test(out + err) ? true : undefined));
      assert.equal((await get(address, '/pipelines/b')).status, 200);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, err);
  });
});
