/**
 * Issue 14, items 11, 12 and 15a: secrets stay where they were put.
 *
 * - 11: a query-string API key full of characters that encoders write differently
 *   (`~ ! ' ( ) *`, space, `+`) is masked in every URL, payload, state, error, log and run
 *   record: after a failing run, a --retry-failed run and the status/state/API reads, no file
 *   of the project (zstd and Parquet decompressed), no CLI output and no API answer holds it in
 *   any encoding.
 * - 12: a shell task run by `dip serve` sees only its declared variables (not the serve token,
 *   not the rest of the server's environment), and its log (stored and served) and error hold
 *   neither the token nor its declared secret.
 * - 15a: a rotated OAuth refresh token is stored encrypted: the catalog bytes never hold it; an
 *   old clear state still reads and is re-encrypted.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { serve, type RunningServer } from '../src/serve/server.js';
import { secretRegistry } from '../src/config/secrets.js';
import { items, RestFixtures, type TestApi } from './support/api-server.js';
import { CLI, projectConfig, runCli, TestProject } from './support/project.js';

const fixtures = new RestFixtures();
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await fixtures.dispose();
});

// ---------------------------------------------------------------------------------------------
// Scanning a project for a secret in every encoding

/**
 * What a secret looks like when written somewhere, computed here independently of the code
 * under test: a distinctive fragment (covers the raw, percent-, form- and JSON-encoded forms,
 * which all keep its first letters), the whole secret, and its base64 forms.
 */
function needles(secret: string, fragment: string): Map<string, string> {
  assert.ok(secret.startsWith(fragment) && /^[a-z0-9]+$/i.test(fragment));
  const b64 = Buffer.from(secret).toString('base64');
  return new Map([
    ['fragment', fragment],
    ['raw', secret],
    ['encodeURIComponent', encodeURIComponent(secret)],
    ['form-encoded', new URLSearchParams({ v: secret }).toString().slice(2)],
    ['JSON', JSON.stringify(secret).slice(1, -1)],
    ['base64', b64],
    ['base64 unpadded', b64.replace(/=+$/, '')],
    ['base64url', Buffer.from(secret).toString('base64url')],
  ]);
}

function hits(where: string, text: string, forms: Map<string, string>): string[] {
  return [...forms].filter(([, form]) => text.includes(form)).map(([name]) => `${where}: ${name}`);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Every file of the project, decompressed (zstd) or decoded (Parquet, through DuckDB), searched for every form. */
async function scanProject(dir: string, forms: Map<string, string>): Promise<{ files: string[]; found: string[] }> {
  const files = filesUnder(dir);
  const found: string[] = [];
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    for (const file of files) {
      const bytes = readFileSync(file);
      found.push(...hits(file, bytes.toString('latin1'), forms), ...hits(file, bytes.toString('utf8'), forms));
      if (file.endsWith('.zst'))
        found.push(...hits(`${file} (zstd -d)`, execFileSync('zstd', ['-dc', file]).toString('utf8'), forms));
      if (file.endsWith('.parquet')) {
        const reader = await conn.runAndReadAll(
          `SELECT to_json(t)::VARCHAR AS j FROM read_parquet('${file.replace(/'/g, "''")}') t`,
        );
        const text = reader
          .getRows()
          .map((r) => String(r[0]))
          .join('\n');
        found.push(...hits(`${file} (parquet)`, text, forms));
      }
    }
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  return { files, found: [...new Set(found)] };
}

// ---------------------------------------------------------------------------------------------

describe('item 11: a query-string secret in every encoding never leaves the request', () => {
  const SECRET = `s3cr~t!'()* x+y`;
  const env = { DIP_QS_KEY: SECRET, DIP_LOG_LEVEL: 'debug' };

  it('raw zone, bronze, catalog state, run records, errors, CLI output, logs and API answers hold no form of it', async () => {
    let pageThreeUp = false;
    // An API that echoes the key the way many do: in next links and self links (form-encoded by
    // URLSearchParams), and in a request echo in the payload.
    const server: TestApi = await fixtures.api((req) => {
      if (req.query.get('api_key') !== SECRET || req.query.get('sig') !== SECRET)
        return { status: 401, body: { error: 'bad key' } };
      const page = Number(req.query.get('page') ?? 1);
      const link = (n: number) =>
        `${server.url}/things?${new URLSearchParams({ page: String(n), api_key: SECRET, sig: SECRET }).toString()}`;
      if (page === 3 && !pageThreeUp) return { status: 500, body: { error: 'down' } };
      const data = items(5, (page - 1) * 5 + 1).map((d) => ({ ...d, self: `${link(page)}&id=${d.id}` }));
      return {
        body: { data, next: page < 3 ? link(page + 1) : null, request: { api_key: SECRET, url: link(page) } },
        headers: { 'x-request-id': `r${page}`, 'x-api-key': SECRET },
      };
    });
    const p = await fixtures.project({
      base_url: server.url,
      params: { sig: '${env:DIP_QS_KEY}' },
      auth: { type: 'api_key', name: 'api_key', value: '${env:DIP_QS_KEY}', in: 'query' },
      raw_headers: ['x-request-id', 'x-api-key'],
      http: { retry: { attempts: 2, initial_delay: '10ms', max_delay: '20ms', jitter: false } },
      resources: {
        things: {
          path: '/things',
          records: '$.data',
          paginator: { type: 'next_url', next_path: '$.next' },
          primary_key: ['id'],
          write_disposition: 'merge',
        },
      },
    });

    const outputs: [string, string][] = [];
    const cli = async (args: string[]) => {
      const r = await runCli(['-p', p.dir, ...args], p.dir, env);
      outputs.push([`dip ${args.join(' ')} (stdout)`, r.stdout], [`dip ${args.join(' ')} (stderr)`, r.stderr]);
      return r;
    };

    const failed = await cli(['run', 'p']);
    assert.equal(failed.code, 75, `page 3 is down: transient exit\n${failed.stderr}`);
    assert.match(
      failed.stderr,
      /error in api\.things: GET http:\/\/127\.0\.0\.1:\d+\/things\?page=3&api_key=\*\*\*&sig=\*\*\* failed after 2 attempts: HTTP 500/,
      'the failed URL is shown, its secret parameters masked',
    );
    // Pages 1 and 2 were requested with the real key (the masked next link was restored).
    assert.deepEqual(
      server
        .to('/things')
        .filter((r) => r.query.get('api_key') === SECRET)
        .map((r) => r.query.get('page') ?? '1'),
      ['1', '2', '3', '3'],
    );

    pageThreeUp = true;
    const retried = await cli(['run', 'p']);
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(
      await p.count('bronze.things'),
      15,
      'every page landed: the masked next links were restored with the configured key',
    );
    const selfLinks = await p.rows('SELECT self FROM bronze.things ORDER BY id LIMIT 1');
    assert.match(String(selfLinks[0]?.['self']), /[?&]api_key=\*\*\*&sig=\*\*\*&id=1$/);
    const raw = await p.rows(
      `SELECT position->>'url' AS url, position->'headers'->>'x-api-key' AS k, payload->'request'->>'api_key' AS echoed FROM raw.things ORDER BY seq LIMIT 1`,
    );
    assert.deepEqual(raw[0], { url: `${server.url}/things?sig=***`, k: '***', echoed: '***' });

    for (const args of [
      ['status'],
      ['status', '--json'],
      ['state', 'p'],
      ['state', 'p', '--json'],
      ['runs', 'list'],
      ['tables'],
    ])
      await cli(args);

    // The API over the same catalog: runs and state as served.
    const lake = await p.lake();
    const api: RunningServer = await serve(lake, {
      host: '127.0.0.1',
      port: 0,
      tickMs: 100,
      concurrency: 1,
      executor: 'in-process',
      leaseMs: 900,
      pollMs: 50,
      scheduler: false,
    });
    cleanups.push(() => api.close({ graceMs: 0 }));
    for (const path of ['/runs', '/pipelines', '/pipelines/p', '/tables', '/metrics']) {
      const res = await fetch(`${api.address}${path}`);
      outputs.push([`GET ${path} (${res.status})`, await res.text()]);
    }
    await api.close({ graceMs: 0 });
    await lake.close();

    const forms = needles(SECRET, 's3cr');
    const scan = await scanProject(p.dir, forms);
    const found = [...scan.found, ...outputs.flatMap(([where, text]) => hits(where, text, forms))];
    const kinds = scan.files.map((f) =>
      f.endsWith('.zst') ? 'zst' : f.endsWith('.parquet') ? 'parquet' : f.includes('catalog') ? 'catalog' : 'other',
    );
    assert.ok(
      (['zst', 'parquet', 'catalog'] as const).every((k) => kinds.includes(k)),
      `raw, bronze and catalog files scanned: ${scan.files.join(', ')}`,
    );
    assert.deepEqual(found, [], `the secret leaked:\n${found.join('\n')}`);
  });

  it('redaction masks every encoding and secret parameters by structure', () => {
    const secret = `s3cr~t!'()* x+y`;
    secretRegistry.add(secret);
    secretRegistry.addName('X-Custom-Key');
    const form = new URLSearchParams({ k: secret }).toString();
    for (const text of [
      `GET http://h/x?${form}&page=2`,
      `GET http://h/x?k=${encodeURIComponent(secret)}`,
      `body "${JSON.stringify(secret).slice(1, -1)}"`,
      `basic ${Buffer.from(secret).toString('base64')}`,
      `GET http://h/x?x-custom-key=anything&page=2`,
      `GET http://h/x?other=${encodeURIComponent(secret).toLowerCase()}`,
    ]) {
      const out = secretRegistry.redact(text);
      assert.ok(
        !out.includes('s3cr') && !out.includes('anything') && !out.includes(Buffer.from(secret).toString('base64')),
        `${text} → ${out}`,
      );
    }
    assert.equal(secretRegistry.redact(`http://h/x?${form}&page=2`), 'http://h/x?k=***&page=2');
    assert.equal(secretRegistry.redact('postgres://app:hunter22@db/x failed'), 'postgres://app:***@db/x failed');
  });
});

// ---------------------------------------------------------------------------------------------

describe('item 12: shell tasks get only their declared environment, and their logs are redacted', () => {
  it('a task run by dip serve sees neither the serve token nor undeclared variables; its log and error hide its declared secret', async () => {
    const TOKEN = 'srvtok-7f3a9c21e4b8';
    const TASK_SECRET = `tsk~s3cret !'()*+`;
    const p = await TestProject.create({});
    cleanups.push(() => p.dispose());
    const tasks = {
      leak: {
        shell: [
          'echo "token=[$DIP_API_TOKEN]"',
          'echo "other=[$DIP_TEST_UNDECLARED]"',
          'echo "key=[$API_KEY]"',
          'printf %s "$API_KEY" | base64',
          'echo "path-set=$([ -n "$PATH" ] && echo yes)"',
          'echo "host=[$API_HOST]"',
        ].join('; '),
        env: { API_KEY: '${env:DIP_TEST_TASK_SECRET}', API_HOST: 'api.example.test' },
      },
      fails: {
        shell: 'echo "failing with $API_KEY" >&2; exit 3',
        env: { API_KEY: '${env:DIP_TEST_TASK_SECRET}' },
        retries: { attempts: 1 },
      },
    };
    await p.write(
      'dip.yaml',
      JSON.stringify(
        {
          ...projectConfig({}),
          pipelines: { q: { sources: {}, tasks } },
          serve: { host: '127.0.0.1', port: 0, token: '${env:DIP_API_TOKEN}', tick: '1s', concurrency: 2 },
        },
        null,
        2,
      ),
    );
    const child = spawn(process.execPath, [CLI, '-p', p.dir, '--json', 'serve'], {
      cwd: p.dir,
      env: {
        ...process.env,
        DIP_API_TOKEN: TOKEN,
        DIP_TEST_TASK_SECRET: TASK_SECRET,
        DIP_TEST_UNDECLARED: 'undeclared-value-91',
        DIP_LOG_LEVEL: 'debug',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    cleanups.push(async () => void child.kill('SIGKILL'));
    const auth = { authorization: `Bearer ${TOKEN}` };
    const served: string[] = [];
    try {
      const address = await until('the address on stdout', () =>
        stdout.includes('\n')
          ? (JSON.parse(stdout.split('\n')[0] as string) as { address: string }).address
          : undefined,
      );
      const trigger = await fetch(`${address}/pipelines/q/trigger`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(trigger.status, 201);
      const { id } = (await trigger.json()) as { id: string };
      const run = await until('the run to end', async () => {
        const r = (await (await fetch(`${address}/runs/${id}`, { headers: auth })).json()) as { status: string };
        return ['succeeded', 'failed'].includes(r.status) ? r : undefined;
      });
      served.push(JSON.stringify(run));
      assert.equal(run.status, 'failed', 'the failing task fails the run');
      const leakLog = await (await fetch(`${address}/runs/${id}/tasks/leak/log`, { headers: auth })).text();
      const failsLog = await (await fetch(`${address}/runs/${id}/tasks/fails/log`, { headers: auth })).text();
      served.push(leakLog, failsLog, await (await fetch(`${address}/runs/${id}/tasks`, { headers: auth })).text());
      const lines = leakLog.split('\n').map((l) => l.replace(/^\S+ /, ''));
      assert.ok(lines.includes('token=[]'), `the serve token is not passed:\n${leakLog}`);
      assert.ok(lines.includes('other=[]'), `undeclared variables are not passed:\n${leakLog}`);
      assert.ok(lines.includes('key=[***]'), `the declared secret is passed, and masked in the log:\n${leakLog}`);
      assert.ok(lines.includes('***'), `its base64 form is masked:\n${leakLog}`);
      assert.ok(lines.includes('path-set=yes') && lines.includes('host=[api.example.test]'), leakLog);
      assert.match(failsLog, /failing with \*\*\*/);
      assert.match(failsLog, /failed: shell task fails exited with code 3: failing with \*\*\*/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    const everything = [...served, stdout, stderr].join('\n');
    const found = [
      ...hits('served/printed', everything, needles(TASK_SECRET, 'tsk')),
      ...hits('served/printed', everything, needles(TOKEN, 'srvtok')),
      ...hits('served/printed', everything, new Map([['undeclared', 'undeclared-value-91']])),
    ];
    const scan = await scanProject(
      p.dir,
      new Map([
        ...needles(TASK_SECRET, 'tsk'),
        ...[...needles(TOKEN, 'srvtok')].map(([k, v]) => [`token ${k}`, v] as [string, string]),
      ]),
    );
    assert.deepEqual([...found, ...scan.found], [], `leaked:\n${[...found, ...scan.found].join('\n')}`);
  });
});

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------------------------------------

describe('item 15a: rotated refresh tokens are kept encrypted', () => {
  /** A token server that rotates the refresh token on every use and refuses a spent one. */
  async function rotatingTokenServer(
    initial: string,
  ): Promise<{ url: string; used: string[]; close(): Promise<void> }> {
    let valid = initial;
    let n = 0;
    const used: string[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://x');
        res.setHeader('content-type', 'application/json');
        if (url.pathname === '/token') {
          const form = new URLSearchParams(body);
          const rt = form.get('refresh_token') ?? '';
          used.push(rt);
          if (rt !== valid) return void res.writeHead(400).end(JSON.stringify({ error: 'invalid_grant' }));
          n += 1;
          valid = `rotated-rt-${n}-9c1d7e`;
          return void res.end(
            JSON.stringify({ access_token: `access-${n}-77aa`, refresh_token: valid, expires_in: 3600 }),
          );
        }
        if (req.headers.authorization !== `Bearer access-${n}-77aa`) return void res.writeHead(401).end('{}');
        res.end(JSON.stringify({ data: [{ id: 1 }, { id: 2 }] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { url, used, close: () => new Promise<void>((r) => server.close(() => r())) };
  }

  it('after two rotation runs the catalog holds no refresh token; the key file is 0600; a clear state reads and is re-encrypted', async () => {
    const tokens = await rotatingTokenServer('initial-rt-0-5b2f');
    cleanups.push(() => tokens.close());
    const source = (extra: Record<string, unknown> = {}) => ({
      base_url: tokens.url,
      auth: {
        type: 'oauth2_refresh_token',
        token_url: '/token',
        client_id: 'dip',
        refresh_token: 'initial-rt-0-5b2f',
        ...extra,
      },
      resources: { things: { path: '/things', records: '$.data' } },
    });
    const p = await fixtures.project(source());
    for (let run = 1; run <= 2; run++) {
      const r = await runCli(['-p', p.dir, 'run', 'p'], p.dir);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(
      tokens.used,
      ['initial-rt-0-5b2f', 'rotated-rt-1-9c1d7e'],
      'the second run used the stored (encrypted) rotated token',
    );
    assert.equal(statSync(p.path('.dip/state-key')).mode & 0o777, 0o600);
    const catalog = filesUnder(p.path('.dip')).filter((f) => f.includes('catalog'));
    assert.ok(catalog.length >= 1);
    const scan = await scanProject(
      p.dir,
      new Map([
        ['rotated refresh token 1', 'rotated-rt-1'],
        ['rotated refresh token 2', 'rotated-rt-2'],
        ['access token', 'access-'],
      ]),
    );
    assert.deepEqual(scan.found, []);
    const lake = await p.lake();
    const stored = (await lake.catalog.getState('p', 'api', '_source')) as Record<string, unknown>;
    assert.equal(stored['encrypted'], 'aes-256-gcm');
    assert.deepEqual(Object.keys(stored).sort(), ['data', 'encrypted', 'iv', 'key_id', 'tag']);

    // A state written in clear by an older version still reads, and is written back encrypted.
    await lake.catalog.commit({
      runId: 'test',
      operation: 'state',
      tables: [],
      state: [
        {
          pipeline: 'p',
          source: 'api',
          stream: '_source',
          value: { refresh_token: 'rotated-rt-2-9c1d7e', rotated_at: '2026-01-01T00:00:00.000Z' },
        },
      ],
      summary: {},
    });
    const third = await runCli(['-p', p.dir, 'run', 'p'], p.dir);
    assert.equal(third.code, 0, third.stderr);
    assert.equal(tokens.used.at(-1), 'rotated-rt-2-9c1d7e');
    const after = (await lake.catalog.getState('p', 'api', '_source')) as Record<string, unknown>;
    assert.equal(after['encrypted'], 'aes-256-gcm');
    assert.ok(!JSON.stringify(after).includes('rotated-rt'));

    // With state_key by reference, a different key cannot read what the project key wrote: a clear config error.
    await p.write(
      'dip.yaml',
      JSON.stringify(
        JSON.parse(
          readFileSync(p.path('dip.yaml'), 'utf8').replace(
            '"refresh_token": "initial-rt-0-5b2f"',
            '"refresh_token": "initial-rt-0-5b2f", "state_key": "${env:DIP_TEST_STATE_KEY}"',
          ),
        ),
        null,
        2,
      ),
    );
    const wrongKey = await runCli(['-p', p.dir, 'run', 'p'], p.dir, { DIP_TEST_STATE_KEY: 'another key entirely' });
    assert.equal(wrongKey.code, 2, wrongKey.stderr);
    assert.match(
      wrongKey.stderr,
      /the stored state was encrypted with state key [0-9a-f]{8}, but the key in use \(auth.state_key\) is [0-9a-f]{8} and cannot decrypt it/,
    );
  });
});
