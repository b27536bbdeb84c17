/**
 * Gateway ingest benchmark (issue 16): `dip gateway` (API key auth, event-id idempotency, every
 * 2xx after fsync in the embedded event log) against a bare Fastify POST handler that does no
 * I/O (bench/gateway-baseline.mjs: it parses the body and answers), same box, same client
 * (undici Pool), interleaved. Payloads are the posting emulator's Pinterest-style events padded
 * to 1 KB, each with a unique id. Two shapes: one JSON event per request (requests/s) and NDJSON
 * batches of 100 (events/s). Per shape and server: the peak (closed loop, --connections in
 * flight) and p50/p99 latency at half of that server's peak (open loop, latency from each
 * request's scheduled time). Targets: gateway ≥ 0.6× the baseline's peak, p99 ≤ 20 ms at half
 * peak. Then (--lag-seconds > 0) the lander: `dip run --follow` while events are posted at
 * --lag-rate events/s; the run's ack-to-queryable p99 is printed (target ≤ 2 s).
 *
 *   npm run bench -- gateway [--seconds 5] [--connections 32] [--batch 100] [--lag-seconds 20] [--json]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { activityEvent } from '../src/emulate/posting.js';
import { count, machineInfo, parseOrExit, renderTable } from './common.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'gateway');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const KEY = 'bench-key';

const HELP = `npm run bench -- gateway [options]

  --seconds N        seconds per measured phase (default 5)
  --connections N    requests in flight in the closed loop (default 32)
  --event-bytes N    bytes per event (default 1024)
  --batch N          events per NDJSON request (default 100)
  --lag-seconds N    seconds of the lander lag phase (default 20; 0 skips it)
  --lag-rate N       events/s posted during the lag phase (default 5000)
  --json             one JSON document on stdout
`;

interface Options {
  seconds: number;
  connections: number;
  eventBytes: number;
  batch: number;
  lagSeconds: number;
  lagRate: number;
  json: boolean;
}

function parse(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string', default: '5' },
      connections: { type: 'string', default: '32' },
      'event-bytes': { type: 'string', default: '1024' },
      batch: { type: 'string', default: '100' },
      'lag-seconds': { type: 'string', default: '20' },
      'lag-rate': { type: 'string', default: '5000' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  return {
    seconds: count(values.seconds, 'seconds'),
    connections: count(values.connections, 'connections'),
    eventBytes: count(values['event-bytes'], 'event-bytes'),
    batch: count(values.batch, 'batch'),
    lagSeconds: count(values['lag-seconds'], 'lag-seconds'),
    lagRate: count(values['lag-rate'], 'lag-rate'),
    json: values.json,
  };
}

/** Bodies with unique ids, from one padded emulator event. */
class Bodies {
  private n = 0;
  private readonly head: string;
  private readonly tail: string;
  constructor(
    eventBytes: number,
    private readonly batch: number,
    private readonly prefix: string,
  ) {
    const text = JSON.stringify(activityEvent(1, 0, 'TEMPLATE', eventBytes));
    const at = text.indexOf('"TEMPLATE-0"');
    this.head = text.slice(0, at);
    this.tail = text.slice(at + '"TEMPLATE-0"'.length);
  }
  one(): string {
    return `${this.head}"${this.prefix}-${this.n++}"${this.tail}`;
  }
  next(): { body: string; events: number; type: string } {
    if (this.batch <= 1) return { body: this.one(), events: 1, type: 'application/json' };
    let body = '';
    for (let i = 0; i < this.batch; i++) body += `${this.one()}\n`;
    return { body, events: this.batch, type: 'application/x-ndjson' };
  }
}

interface Phase {
  requests: number;
  events: number;
  errors: number;
  seconds: number;
  rps: number;
  eps: number;
  p50: number;
  p99: number;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor(s.length * p))] as number) : Number.NaN;
};

async function request(pool: Pool, path: string, b: { body: string; type: string }): Promise<number> {
  const res = await pool.request({
    method: 'POST',
    path,
    body: b.body,
    headers: { 'content-type': b.type, 'x-api-key': KEY },
  });
  await res.body.dump();
  return res.statusCode;
}

async function closedLoop(url: string, bodies: Bodies, o: Options): Promise<Phase> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: o.connections, pipelining: 1 });
  const lat: number[] = [];
  let requests = 0;
  let events = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + o.seconds * 1000;
  await Promise.all(
    Array.from({ length: o.connections }, async () => {
      while (performance.now() < end) {
        const b = bodies.next();
        const t = performance.now();
        const status = await request(pool, u.pathname, b).catch(() => 0);
        lat.push(performance.now() - t);
        requests++;
        if (status === 200) events += b.events;
        else errors++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  return {
    requests,
    events,
    errors,
    seconds,
    rps: requests / seconds,
    eps: events / seconds,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
  };
}

async function openLoop(url: string, bodies: Bodies, rps: number, seconds: number): Promise<Phase> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 64, pipelining: 1 });
  const lat: number[] = [];
  let requests = 0;
  let events = 0;
  let errors = 0;
  const total = Math.max(1, Math.round(rps * seconds));
  const start = performance.now();
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; ) {
    const now = performance.now();
    while (i < total && start + (i * 1000) / rps <= now) {
      const due = start + (i * 1000) / rps;
      const b = bodies.next();
      inflight.push(
        request(pool, u.pathname, b)
          .catch(() => 0)
          .then((status) => {
            lat.push(performance.now() - due);
            requests++;
            if (status === 200) events += b.events;
            else errors++;
          }),
      );
      i++;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  await Promise.all(inflight);
  const secs = (performance.now() - start) / 1000;
  await pool.close();
  return {
    requests,
    events,
    errors,
    seconds: secs,
    rps: requests / secs,
    eps: events / secs,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
  };
}

function startChild(args: string[], cwd: string): { child: ChildProcess; firstLine: Promise<string> } {
  const child = spawn(process.execPath, args, {
    cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, DIP_LOG_LEVEL: 'warn' },
  });
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const firstLine = new Promise<string>((resolveLine, reject) => {
    rl.once('line', resolveLine);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
  return { child, firstLine };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await gone;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parse(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const o = parsed.opts;
  const machine = machineInfo(ROOT);
  const say = (s: string) => process.stderr.write(`${s}\n`);
  await rm(WORK, { recursive: true, force: true });
  const project = join(WORK, 'project');
  await mkdir(project, { recursive: true });
  const digest = createHash('sha256').update(KEY).digest('hex');
  await writeFile(
    join(project, 'dip.yaml'),
    `version: 1
project: bench
storage: { kind: local, path: .dip/lake }
catalog: { kind: sqlite, path: .dip/catalog.db }
pipelines:
  p:
    sources:
      app:
        type: gateway
        max_backlog: 100000000
        batch: { max_events: 20000, max_age: 500ms }
        endpoints:
          events:
            auth: { type: api_key, keys: ["sha256:${digest}"] }
            event_id: id
            max_body: 1mib
          lag:
            auth: { type: api_key, keys: ["sha256:${digest}"] }
            event_id: id
            max_body: 1mib
`,
  );
  const baseline = startChild([join(BENCH_DIR, 'gateway-baseline.mjs')], project);
  const gateway = startChild([CLI, '--json', 'gateway', '--port', '0'], project);
  const results: Record<string, Record<string, Phase>> = {};
  let lag: Record<string, number> | undefined;
  try {
    const baseUrl = (await baseline.firstLine).trim();
    const gwUrl = `${(JSON.parse(await gateway.firstLine) as { url: string }).url}/ingest/p/app/events`;
    const targets: [string, string][] = [
      ['baseline', baseUrl],
      ['gateway', gwUrl],
    ];
    for (const [shape, batch] of [
      ['single', 1],
      [`ndjson${o.batch}`, o.batch],
    ] as const) {
      // Warm up both servers (JIT, connections).
      for (const [name, url] of targets)
        await closedLoop(url, new Bodies(o.eventBytes, batch, `warm-${shape}-${name}`), { ...o, seconds: 1 });
      for (const [name, url] of targets) {
        say(`${shape} · ${name}: peak`);
        const peak = await closedLoop(url, new Bodies(o.eventBytes, batch, `peak-${shape}-${name}`), o);
        say(`${shape} · ${name}: half of ${Math.round(peak.rps)} req/s`);
        const half = await openLoop(
          url,
          new Bodies(o.eventBytes, batch, `half-${shape}-${name}`),
          peak.rps / 2,
          o.seconds,
        );
        results[`${shape} ${name}`] = { peak, half };
      }
    }
    if (o.lagSeconds > 0) {
      say(`lander: dip run --follow while posting ${o.lagRate} events/s for ${o.lagSeconds} s`);
      const lander = spawn(process.execPath, [CLI, '--json', 'run', '--follow'], {
        cwd: project,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, DIP_LOG_LEVEL: 'warn' },
      });
      let out = '';
      lander.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      // Land the backlog of the throughput phases first (stream app.events), untimed; the lag is
      // measured on its own endpoint (stream app.lag).
      await new Promise((r) => setTimeout(r, 15_000));
      const batch = 100;
      const phase = await openLoop(
        gwUrl.replace(/events$/, 'lag'),
        new Bodies(o.eventBytes, batch, 'lag'),
        o.lagRate / batch,
        o.lagSeconds,
      );
      await new Promise((r) => setTimeout(r, 3000));
      await stop(lander, 'SIGINT');
      const [run] = JSON.parse(out.slice(out.indexOf('['))) as {
        stats: { streams: Record<string, { rows: number; source?: Record<string, number> }> };
      }[];
      const s = run?.stats.streams['app.lag'];
      lag = { posted_eps: phase.eps, landed_rows: s?.rows ?? 0, ...(s?.source ?? {}) };
    }
  } finally {
    await stop(baseline.child);
    await stop(gateway.child);
  }
  machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const ratio = (shape: string, f: (p: Phase) => number) =>
    f((results[`${shape} gateway`] as Record<string, Phase>)['peak'] as Phase) /
    f((results[`${shape} baseline`] as Record<string, Phase>)['peak'] as Phase);
  const summary = {
    single_rps_ratio: ratio('single', (p) => p.rps),
    batch_eps_ratio: ratio(`ndjson${o.batch}`, (p) => p.eps),
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ machine, options: o, results, summary, lag }, null, 2)}\n`);
    return 0;
  }
  const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const rows = Object.entries(results).map(([k, v]) => {
    const peak = v['peak'] as Phase;
    const half = v['half'] as Phase;
    return [
      k,
      String(Math.round(peak.rps)),
      String(Math.round(peak.eps)),
      f1(peak.p99),
      String(Math.round(half.rps)),
      f1(half.p50),
      f1(half.p99),
      String(peak.errors + half.errors),
    ];
  });
  process.stdout.write(
    `${renderTable(['shape · server', 'peak req/s', 'peak events/s', 'peak p99 ms', 'half req/s', 'half p50 ms', 'half p99 ms', 'errors'], rows, false)}\n`,
  );
  process.stdout.write(
    `gateway / baseline: single ${summary.single_rps_ratio.toFixed(2)}× req/s, NDJSON×${o.batch} ${summary.batch_eps_ratio.toFixed(2)}× events/s (target ≥ 0.6×; p99 at half peak ≤ 20 ms)\n`,
  );
  if (lag) process.stdout.write(`lander at ${Math.round(lag['posted_eps'] ?? 0)} events/s: ${JSON.stringify(lag)}\n`);
  process.stdout.write(
    `machine: ${machine.cpus} × ${machine.cpuModel}, load ${machine.loadAverageAtStart.join(' ')} → ${machine.loadAverageAtEnd.join(' ')}\n`,
  );
  return 0;
}
