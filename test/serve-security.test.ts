/**
 * Issue 14 item 13: the security model of `dip serve`, with real HTTP requests against started
 * servers (127.0.0.1 or 0.0.0.0, port 0). With a token, every data route needs it and only
 * /health and /ready (and serve.public) are open; the Host header must name the server (DNS
 * rebinding); POSTs must be JSON (cross-site forms, no-cors fetches); backfills are capped;
 * names from URLs are own properties only; the real listen address is printed; without a
 * token the server stays on loopback unless explicitly allowed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { DipError } from '../src/core/errors.js';
import { pipelineDag } from '../src/config/task-graph.js';
import { pipelineNamed } from '../src/pipeline/pipelines.js';
import { serve, type RunningServer, type ServeOptions } from '../src/serve/server.js';
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
    concurrency: 2,
    executor: 'in-process',
    leaseMs: 900,
    pollMs: 50,
    defaultMetrics: false,
    ...options,
  });
  servers.push(server);
  return server;
}

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies of many shapes, asserted field by field
  json: any;
}

/** A raw HTTP request (node:http, so the Host header is ours to set) to 127.0.0.1:port. */
function call(
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; token?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = {
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const JSON_TYPE = { 'content-type': 'application/json' };
const portOf = (s: RunningServer): number => Number(new URL(s.address).port);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const UNAUTHORIZED = {
  error: { kind: 'unauthorized', message: 'this endpoint needs Authorization: Bearer <serve.token>' },
};

describe('dip serve security: a token protects every data route', () => {
  const token = 'tok-3f9a-secret';
  let p: TestProject;
  let port: number;
  let runId: string;

  before(async () => {
    p = await project({
      p: {
        sources: { shop: { type: 'files', streams: { orders: { path: 'data/*.csv' } } } },
        tasks: { report: { shell: 'echo "report of the orders"', depends_on: ['ingest.shop'] } },
      },
    });
    await p.write('data/a.csv', 'id,amount\n1,10\n2,20\n');
    port = portOf(await start(p, { token }));
    const run = await call(port, 'POST', '/pipelines/p/trigger', { token, headers: JSON_TYPE, body: '{}' });
    assert.equal(run.status, 201, run.text);
    runId = run.json.id;
    await until('the run to succeed', async () =>
      (await call(port, 'GET', `/runs/${runId}`, { token })).json.status === 'succeeded' ? true : undefined,
    );
  });

  it('GET /pipelines, runs, tasks, task logs, tables, metrics, openapi and unknown paths: 401 without the token, 403 with a wrong one, 200 with it', async () => {
    const paths = [
      '/pipelines',
      '/pipelines/p',
      '/runs',
      `/runs/${runId}`,
      `/runs/${runId}/tasks`,
      `/runs/${runId}/tasks/report/log`,
      '/tables',
      '/tables/bronze.orders',
      '/metrics',
      '/openapi.json',
    ];
    for (const path of paths) {
      const none = await call(port, 'GET', path);
      assert.equal(none.status, 401, path);
      assert.deepEqual(none.json, UNAUTHORIZED, path);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="dip"');
      assert.doesNotMatch(none.text, /report of the orders|bronze\.orders|"p"/, `${path} leaks nothing`);
      const wrong = await call(port, 'GET', path, { token: `${token}x` });
      assert.equal(wrong.status, 403, path);
      assert.deepEqual(wrong.json, {
        error: { kind: 'forbidden', message: 'the bearer token is not the one configured (serve.token)' },
      });
      assert.equal(
        (await call(port, 'GET', path, { token: 'short' })).status,
        403,
        `${path}: a guess of another length`,
      );
      assert.equal(
        (
          await call(port, 'GET', path, {
            headers: { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
          })
        ).status,
        401,
        path,
      );
      assert.equal((await call(port, 'GET', path, { token })).status, 200, path);
    }
    const log = await call(port, 'GET', `/runs/${runId}/tasks/report/log`, { token });
    assert.match(log.text, /report of the orders/);
    // Unknown paths too: the API cannot be mapped without the token.
    assert.deepEqual((await call(port, 'GET', '/nope')).json, UNAUTHORIZED);
    assert.equal((await call(port, 'GET', '/nope', { token })).status, 404);
  });

  it('/health and /ready answer without a token', async () => {
    assert.deepEqual((await call(port, 'GET', '/health')).json, { status: 'ok' });
    const ready = await until('ready', async () => {
      const r = await call(port, 'GET', '/ready');
      return r.status === 200 ? r : undefined;
    });
    assert.equal(ready.json.status, 'ready');
  });

  it('the OpenAPI document declares the bearer scheme on every route but /health and /ready', async () => {
    const doc = (await call(port, 'GET', '/openapi.json', { token })).json;
    for (const [path, ops] of Object.entries(
      doc.paths as Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>,
    )) {
      for (const [method, op] of Object.entries(ops)) {
        if (path === '/health' || path === '/ready') assert.equal(op.security, undefined, `${method} ${path}`);
        else {
          assert.deepEqual(op.security, [{ bearer: [] }], `${method} ${path}`);
          assert.ok(op.responses['401'] && op.responses['403'], `${method} ${path}`);
        }
      }
    }
    assert.ok(doc.paths['/pipelines/{name}/trigger'].post.responses['415']);
  });
});

describe('dip serve security: serve.public opens /metrics and /openapi.json only', () => {
  it('with public [metrics, openapi], those two answer without the token, the data routes do not', async () => {
    const token = 'pub-token';
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const port = portOf(await start(p, { token, publicRoutes: ['metrics', 'openapi'] }));
    const metrics = await call(port, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /# TYPE dip_runs_total counter/);
    const doc = await call(port, 'GET', '/openapi.json');
    assert.equal(doc.status, 200);
    assert.equal(doc.json.paths['/metrics'].get.security, undefined);
    assert.deepEqual(doc.json.paths['/runs'].get.security, [{ bearer: [] }]);
    for (const path of ['/pipelines', '/pipelines/q', '/runs', '/tables'])
      assert.equal((await call(port, 'GET', path)).status, 401, path);
    assert.equal((await call(port, 'POST', '/pipelines/q/trigger', { headers: JSON_TYPE })).status, 401);
  });

  it('serve.public takes only metrics and openapi (config error naming the value)', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } }, { serve: { public: ['runs'] } });
    await assert.rejects(
      p.lake(),
      (err: unknown) =>
        err instanceof DipError &&
        err.kind === 'config' &&
        /serve\.public\[0\]: got "runs", expected one of metrics, openapi/.test(err.message),
    );
  });
});

describe('dip serve security: the Host header must name this server (DNS rebinding)', () => {
  it('on 127.0.0.1: a foreign name is 421 with a JSON error, on reads and writes, and changes nothing; loopback names pass', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const port = portOf(await start(p));
    const bad = await call(port, 'GET', '/pipelines', { headers: { host: `rebind.attacker.example:${port}` } });
    assert.equal(bad.status, 421);
    assert.deepEqual(bad.json, {
      error: {
        kind: 'misdirected',
        message: `Host "rebind.attacker.example:${port}" is not a name of this server (accepted: 127.0.0.1, localhost, ::1); add it to serve.allowed_hosts if clients reach dip serve by that name`,
      },
    });
    const post = await call(port, 'POST', '/pipelines/q/trigger', {
      headers: { host: 'rebind.attacker.example', ...JSON_TYPE },
    });
    assert.equal(post.status, 421);
    assert.equal((await call(port, 'GET', '/health', { headers: { host: 'evil.example' } })).status, 421);
    // A private address is no name of a loopback server either.
    assert.equal((await call(port, 'GET', '/runs', { headers: { host: '192.168.1.20' } })).status, 421);
    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, 'LOCALHOST.', `[::1]:${port}`]) {
      assert.equal((await call(port, 'GET', '/runs', { headers: { host } })).status, 200, host);
    }
    assert.deepEqual((await call(port, 'GET', '/runs')).json, { runs: [] }, 'the refused trigger queued nothing');
  });

  it('serve.allowed_hosts adds names (case and trailing dot ignored); "*" accepts any host', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const port = portOf(await start(p, { allowedHosts: ['dip.internal.example'] }));
    for (const host of ['dip.internal.example', `DIP.Internal.Example.:${port}`, `localhost:${port}`])
      assert.equal((await call(port, 'GET', '/pipelines', { headers: { host } })).status, 200, host);
    const other = await call(port, 'GET', '/pipelines', { headers: { host: 'internal.example' } });
    assert.equal(other.status, 421);
    assert.match(other.json.error.message, /\(accepted: 127\.0\.0\.1, localhost, ::1, dip\.internal\.example\)/);
    const anyPort = portOf(await start(p, { allowedHosts: ['*'] }));
    assert.equal((await call(anyPort, 'GET', '/pipelines', { headers: { host: 'whatever.example' } })).status, 200);
  });

  it('on 0.0.0.0: any IP address and loopback pass, names only when allowed', async () => {
    const token = 'wild-token';
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const port = portOf(await start(p, { host: '0.0.0.0', token, allowedHosts: ['dip.example.com'] }));
    for (const host of [`10.1.2.3:${port}`, '192.168.7.7', `[fd00::1]:${port}`, 'localhost', 'dip.example.com'])
      assert.equal((await call(port, 'GET', '/runs', { token, headers: { host } })).status, 200, host);
    const bad = await call(port, 'GET', '/runs', { token, headers: { host: 'rebind.example.net' } });
    assert.equal(bad.status, 421);
    assert.match(
      bad.json.error.message,
      /\(accepted: any IP address, localhost, 127\.0\.0\.1, ::1, dip\.example\.com\)/,
    );
  });
});

describe('dip serve security: POSTs must be JSON (cross-site forms, no-cors fetches)', () => {
  let p: TestProject;
  let port: number;

  before(async () => {
    p = await project({
      q: { schedule: { every: '1h', start: '2999-01-01' }, sources: {}, tasks: { t: { shell: 'sleep 5' } } },
    });
    port = portOf(await start(p));
  });

  it('no content type, text/plain, a form or multipart: 415 naming what came, and nothing is queued', async () => {
    const cases: [Record<string, string>, string | undefined, string][] = [
      [{}, undefined, 'none'],
      [{ 'content-type': 'text/plain;charset=UTF-8' }, '{}', 'text/plain'],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 'a=1', 'application/x-www-form-urlencoded'],
      [{ 'content-type': 'multipart/form-data; boundary=x' }, '--x--\r\n', 'multipart/form-data'],
    ];
    for (const [headers, body, got] of cases) {
      const res = await call(port, 'POST', '/pipelines/q/trigger', {
        headers,
        ...(body === undefined ? {} : { body }),
      });
      assert.equal(res.status, 415, got);
      assert.deepEqual(res.json, {
        error: {
          kind: 'unsupported_media_type',
          message: `POST /pipelines/:name/trigger needs Content-Type: application/json (got ${got}); send {} when there is nothing to say`,
        },
      });
    }
    assert.equal(
      (
        await call(port, 'POST', '/pipelines/q/backfill', {
          headers: { 'content-type': 'text/plain' },
          body: '{"from":"2026-03-01","to":"2026-03-02"}',
        })
      ).status,
      415,
    );
    assert.deepEqual((await call(port, 'GET', '/runs')).json, { runs: [] });
  });

  it('application/json works, with an empty body too; cancel by text/plain is refused', async () => {
    const empty = await call(port, 'POST', '/pipelines/q/trigger', {
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assert.equal(empty.status, 201, empty.text);
    const cancel = await call(port, 'POST', `/runs/${empty.json.id}/cancel`, {
      headers: { 'content-type': 'text/plain' },
      body: 'x',
    });
    assert.equal(cancel.status, 415);
    assert.notEqual((await call(port, 'GET', `/runs/${empty.json.id}`)).json.status, 'cancelled');
    const ok = await call(port, 'POST', `/runs/${empty.json.id}/cancel`, { headers: JSON_TYPE, body: '{}' });
    assert.equal(ok.status, 200);
    // A JSON body that is not JSON is still a 400.
    assert.equal((await call(port, 'POST', '/pipelines/q/trigger', { headers: JSON_TYPE, body: '{nope' })).status, 400);
  });
});

describe('dip serve security: backfill size cap', () => {
  it('more intervals than serve.max_backfill_intervals is a 400 naming the limit and the count; nothing is queued', async () => {
    const p = await project({
      h: { schedule: { every: '1h', start: '2999-01-01' }, sources: {}, tasks: { t: { shell: 'true' } } },
    });
    const port = portOf(await start(p, { maxBackfillIntervals: 5 }));
    const message = (n: number) =>
      `backfill of h from 2026-03-01T00:00:00.000Z to 2026-03-02T00:00:00.000Z would queue ${n} intervals; at most 5 per request (serve.max_backfill_intervals). Split the range, merge intervals with batch, or raise serve.max_backfill_intervals`;
    for (const dry_run of [false, true]) {
      const res = await call(port, 'POST', '/pipelines/h/backfill', {
        headers: JSON_TYPE,
        body: JSON.stringify({ from: '2026-03-01', to: '2026-03-02', dry_run }),
      });
      assert.equal(res.status, 400);
      assert.deepEqual(res.json, { error: { kind: 'input', message: message(24) } });
    }
    assert.deepEqual((await call(port, 'GET', '/runs')).json, { runs: [] });
    // Merged into runs of 6 hours: 4 intervals, within the cap.
    const batched = await call(port, 'POST', '/pipelines/h/backfill', {
      headers: JSON_TYPE,
      body: JSON.stringify({ from: '2026-03-01', to: '2026-03-02', batch: 6 }),
    });
    assert.equal(batched.status, 201, batched.text);
    assert.equal(batched.json.run_ids.length, 4);
  });

  it('the default cap is 1000', async () => {
    const p = await project({ m: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const port = portOf(await start(p));
    const res = await call(port, 'POST', '/pipelines/m/backfill', {
      headers: JSON_TYPE,
      body: JSON.stringify({ from: '2026-03-01', to: '2026-03-02', every: '1m', dry_run: true }),
    });
    assert.equal(res.status, 400);
    assert.match(
      res.json.error.message,
      /would queue 1440 intervals; at most 1000 per request \(serve\.max_backfill_intervals\)/,
    );
    const fine = await call(port, 'POST', '/pipelines/m/backfill', {
      headers: JSON_TYPE,
      body: JSON.stringify({ from: '2026-03-01', to: '2026-03-01T16:40:00Z', every: '1m', dry_run: true }),
    });
    assert.equal(fine.status, 200);
    assert.equal(fine.json.intervals.length, 1000);
  });
});

describe('dip serve security: names from URLs are own properties only', () => {
  it('/pipelines/__proto__, constructor, toString …: 404 on every pipeline route; runs and tables too', async () => {
    const p = await project({
      q: { schedule: { every: '1d', start: '2999-01-01' }, sources: {}, tasks: { t: { shell: 'true' } } },
    });
    const port = portOf(await start(p));
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const one = await call(port, 'GET', `/pipelines/${name}`);
      assert.equal(one.status, 404, name);
      assert.deepEqual(one.json, {
        error: { kind: 'not_found', message: `no pipeline named "${name}" (pipelines: q)` },
      });
      for (const [path, body] of [
        [`/pipelines/${name}/trigger`, '{}'],
        [`/pipelines/${name}/backfill`, '{"from":"2026-03-01","to":"2026-03-03","every":"1d"}'],
      ] as const) {
        const res = await call(port, 'POST', path, { headers: JSON_TYPE, body });
        assert.equal(res.status, 404, path);
        assert.equal(res.json.error.message, `no pipeline named "${name}" (pipelines: q)`);
      }
      const state = await call(port, 'GET', `/pipelines/${name}/state`);
      assert.equal(state.status, 404, 'state');
      assert.equal(state.json.error.message, `no pipeline named "${name}" (pipelines: q)`); // no project file path
      assert.equal((await call(port, 'GET', `/runs/${name}`)).status, 404);
      assert.equal((await call(port, 'GET', `/runs/${name}/tasks`)).status, 404);
      assert.equal((await call(port, 'POST', `/runs/${name}/cancel`, { headers: JSON_TYPE })).status, 404);
      assert.equal((await call(port, 'GET', `/tables/${name}`)).status, 404);
      assert.deepEqual((await call(port, 'GET', `/runs?pipeline=${name}`)).json, { runs: [] });
    }
    assert.deepEqual((await call(port, 'GET', '/runs')).json, { runs: [] });
    // The operations the routes call, and `dip run`'s lookup, agree.
    const loaded = (await p.lake()).project;
    assert.throws(() => pipelineDag(loaded.config, '__proto__'), /no pipeline named "__proto__" \(pipelines: q\)/);
    assert.throws(() => pipelineNamed(loaded, 'constructor'), /no pipeline named "constructor" in .*\(pipelines: q\)/);
  });
});

describe('dip serve security: no token', () => {
  it('beyond loopback is refused unless allow_unauthenticated, which starts with a warning', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const lake = await p.lake();
    await assert.rejects(
      serve(lake, {
        host: '0.0.0.0',
        port: 0,
        tickMs: 100,
        concurrency: 1,
        executor: 'in-process',
        defaultMetrics: false,
      }),
      (err: unknown) =>
        err instanceof DipError &&
        err.kind === 'config' &&
        /refusing to listen on 0\.0\.0\.0 without a token: .*serve\.allow_unauthenticated: true/.test(err.message),
    );
    const logged: string[] = [];
    const open = await start(p, {
      host: '0.0.0.0',
      allowUnauthenticated: true,
      log: (level, message) => logged.push(`${level}: ${message}`),
    });
    const port = portOf(open);
    assert.ok(
      logged.includes(
        'warn: dip serve: listening on 0.0.0.0 without a token (serve.allow_unauthenticated): anyone who reaches this address can read runs, logs and tables and trigger runs',
      ),
      logged.join('\n'),
    );
    assert.equal((await call(port, 'GET', '/pipelines')).status, 200);
    assert.equal((await call(port, 'POST', '/pipelines/q/trigger', { headers: JSON_TYPE })).status, 201);
    // Still JSON-only and Host-checked.
    assert.equal((await call(port, 'POST', '/pipelines/q/trigger')).status, 415);
    assert.equal((await call(port, 'GET', '/pipelines', { headers: { host: 'rebind.example' } })).status, 421);
  });
});

describe('dip serve security: the real listen address', () => {
  it('on 0.0.0.0 with port 0 the server and its log name 0.0.0.0 and the port it got', async () => {
    const p = await project({ q: { sources: {}, tasks: { t: { shell: 'true' } } } });
    const logged: string[] = [];
    const server = await start(p, { host: '0.0.0.0', token: 't', log: (_level, message) => logged.push(message) });
    const port = portOf(server);
    assert.ok(port > 0);
    assert.deepEqual(server.listen, [`0.0.0.0:${port}`]);
    assert.ok(logged.includes(`dip serve listening on 0.0.0.0:${port} (http://127.0.0.1:${port})`), logged.join('\n'));
  });

  it('the CLI prints the socket address it listens on (text output), serve: settings from dip.yaml apply', async () => {
    const p = await project(
      { q: { sources: {}, tasks: { t: { shell: 'echo hi' } } } },
      {
        serve: {
          host: '0.0.0.0',
          port: 0,
          token: '${env:DIP_TEST_SERVE_TOKEN}',
          tick: '1s',
          concurrency: 1,
          public: ['metrics'],
          max_backfill_intervals: 2,
        },
      },
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
        DIP_TEST_ARGS: JSON.stringify(['-p', p.dir, 'serve']),
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
      const m =
        /^dip serve: listening on 0\.0\.0\.0:(\d+) \(scheduler every 1s, executor runs 1 task\(s\) at once, every route but \/health and \/ready needs the token\); API: http:\/\/127\.0\.0\.1:(\d+)\/openapi\.json$/.exec(
          line as string,
        );
      assert.ok(m, line);
      const port = Number(m[1]);
      assert.ok(port > 0);
      assert.equal(m[2], m[1]);
      assert.equal((await call(port, 'GET', '/metrics')).status, 200, 'serve.public: [metrics]');
      assert.equal((await call(port, 'GET', '/runs')).status, 401);
      const big = await call(port, 'POST', '/pipelines/q/backfill', {
        token: 'cli-token',
        headers: JSON_TYPE,
        body: JSON.stringify({ from: '2026-03-01', to: '2026-03-04', every: '1d', dry_run: true }),
      });
      assert.equal(big.status, 400);
      assert.match(big.json.error.message, /would queue 3 intervals; at most 2 per request/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
