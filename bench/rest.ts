/**
 * REST benchmark (issue: declarative REST source): a local API of `--pages` × `--page-size`
 * records with `--latency-ms` added per request, served by bench/rest-server.mjs in its own
 * process, read in the same run by
 *
 *   (a) hand-written loops — undici `request` (keep-alive Agent) and global `fetch`: cursor
 *       pagination (sequential by nature) and offset pagination at each `--concurrency`
 *       (1 = the sequential offset loop). Each parses the page JSON and appends every record
 *       as a JSON line to a local file, the work dip does before DuckDB reads the batch;
 *   (b) dip — a temp project whose pipeline `p` has one `type: rest` source, run in process:
 *       `Lake.open(await loadProject(dir))` → `runPipeline(lake, 'p')`, cursor and offset
 *       (with total, parallel pages) paginators, raw zone on (and off with --raw-off).
 *
 * Every run is a fresh child process (`node --import tsx bench/rest.ts --worker <job>`), so
 * peak RSS (getrusage maxrss) and CPU are per variant and no run inherits another's JIT or
 * sockets; the time is measured inside the child around the work itself (loops: first
 * request → output file closed; dip: Lake.open → runPipeline resolved). Variants are
 * interleaved, `--reps` rounds, the median reported. After each dip run bronze must hold
 * pages × page-size rows with distinct ids (and raw one envelope per page); otherwise exit 1.
 *
 *   npm run bench -- rest [--reps 3] [--pages 200] [--latency-ms 20] [--raw-off] …  (--help)
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RunEvent } from '../src/pipeline/events.js';
import { count, fmtInt, machineInfo, median, parseOrExit, renderTable } from './common.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'rest');
const SELF = fileURLToPath(import.meta.url);
const SERVER = join(BENCH_DIR, 'rest-server.mjs');

const TARGETS = { cursorRatio: 0.9, offsetSpeedup: 5 } as const;

const HELP = `npm run bench -- rest [options]

  --pages N           pages the API serves (default 200)
  --page-size N       records per page (default 500)
  --latency-ms N      latency the server adds to every request (default 20)
  --reps N            timed runs per variant, median reported (default 3)
  --warmup N          untimed rounds of every variant first (default 0; the server is always
                      warmed with one untimed parallel loop)
  --concurrency LIST  concurrency levels of the hand-written offset loop (default 1,4,8,16,32)
  --clients LIST      hand-written loop clients: undici,fetch (default both)
  --dip-concurrency L dip offset runs: http.concurrency max = initial = N, a variant per value
                      of the comma list (default 32)
  --batch-records L   dip: batch_records of the resource, a variant per value of the comma list;
                      "default" leaves it unset (dip's default, 20000) (default: default)
  --raw-off           also run dip with the raw zone off
  --dip-only          skip the hand-written loops (no ratios)
  --no-profile        skip the profiled dip runs (where the time goes; CPU profile of the main thread)
  --diagnose          also time dip's DuckDB statements for one unit (--diagnose-records records)
                      alone, beside cheaper variants of each (skipped sampling, raw lines as is)
  --diagnose-records N  records in the diagnosed unit (default 20000, dip's default batch)
  --quick             --pages 40 --reps 1 --concurrency 1,16 (a smoke run)
  --check             exit 2 when a target is missed (correctness failures always exit 1)
  --json              print one JSON document on stdout instead of tables
  --markdown          print tables as Markdown (for bench/README.md)
`;

type Pagination = 'cursor' | 'offset';
type Client = 'undici' | 'fetch';

interface Options {
  pages: number;
  pageSize: number;
  latencyMs: number;
  reps: number;
  warmup: number;
  concurrency: number[];
  clients: Client[];
  /** dip offset runs: http.concurrency max = initial, one variant each. */
  dipConcurrency: number[];
  /** dip runs: batch_records per variant (undefined = not set, dip's default). */
  batchRecords: (number | undefined)[];
  rawOff: boolean;
  dipOnly: boolean;
  profile: boolean;
  diagnose: boolean;
  diagnoseRecords: number;
  check: boolean;
  json: boolean;
  markdown: boolean;
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      pages: { type: 'string' },
      'page-size': { type: 'string', default: '500' },
      'latency-ms': { type: 'string', default: '20' },
      reps: { type: 'string' },
      warmup: { type: 'string', default: '0' },
      concurrency: { type: 'string' },
      clients: { type: 'string', default: 'undici,fetch' },
      'dip-concurrency': { type: 'string', default: '32' },
      'batch-records': { type: 'string' },
      'raw-off': { type: 'boolean', default: false },
      'dip-only': { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      diagnose: { type: 'boolean', default: false },
      'diagnose-records': { type: 'string', default: '20000' },
      quick: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  const quick = values.quick;
  const list = (text: string, name: string) => text.split(',').map((x) => Math.max(1, count(x.trim(), name)));
  const clients = values.clients.split(',').map((c) => c.trim()) as Client[];
  for (const c of clients)
    if (c !== 'undici' && c !== 'fetch') throw new Error(`--clients: unknown client "${c}" (expected undici, fetch)`);
  const opts: Options = {
    pages: Math.max(1, count(values.pages ?? (quick ? '40' : '200'), 'pages')),
    pageSize: Math.max(1, count(values['page-size'], 'page-size')),
    latencyMs: count(values['latency-ms'], 'latency-ms'),
    reps: Math.max(1, count(values.reps ?? (quick ? '1' : '3'), 'reps')),
    warmup: count(values.warmup, 'warmup'),
    concurrency: [...new Set(list(values.concurrency ?? (quick ? '1,16' : '1,4,8,16,32'), 'concurrency'))].sort(
      (a, b) => a - b,
    ),
    clients: [...new Set(clients)],
    dipConcurrency: [...new Set(list(values['dip-concurrency'], 'dip-concurrency'))],
    batchRecords: [
      ...new Set(
        (values['batch-records'] ?? 'default')
          .split(',')
          .map((b) => (b.trim() === 'default' ? undefined : Math.max(1, count(b.trim(), 'batch-records')))),
      ),
    ],
    rawOff: values['raw-off'],
    dipOnly: values['dip-only'],
    profile: !values['no-profile'],
    diagnose: values.diagnose,
    diagnoseRecords: Math.max(1, count(values['diagnose-records'], 'diagnose-records')),
    check: values.check,
    json: values.json,
    markdown: values.markdown,
  };
  if (!opts.concurrency.includes(1) && !opts.dipOnly) opts.concurrency.unshift(1); // the sequential offset loop is a target's baseline
  return opts;
}

const log = (msg: string) => process.stderr.write(`[bench rest] ${msg}\n`);
const epochMs = () => performance.timeOrigin + performance.now();

// ─── jobs (run in a worker process) ──────────────────────────────────────────────────────

interface LoopJob {
  kind: 'loop';
  base: string;
  pagination: Pagination;
  client: Client;
  concurrency: number;
  pageSize: number;
  out: string;
}

interface DipJob {
  kind: 'dip';
  base: string;
  pagination: Pagination;
  raw: boolean;
  concurrency: number;
  pageSize: number;
  batchRecords: number | undefined;
  dir: string;
  expectRecords: number;
  expectPages: number;
  /** Time every engine statement, storage publish and catalog call (profiled run only). */
  profile: boolean;
  /** Write a V8 CPU profile of the timed section (main thread) here (profiled run only). */
  cpuProfile?: string | undefined;
}

/** dip's DuckDB statements for one unit, alone, beside cheaper variants (--diagnose). */
interface DiagnoseJob {
  kind: 'diagnose';
  base: string;
  pagination: 'offset';
  pageSize: number;
  records: number;
  reps: number;
  dir: string;
}

type Job = LoopJob | DipJob | DiagnoseJob;

interface JobResult {
  /** The timed section: loops first request → file closed; dip Lake.open → runPipeline resolved. */
  ms: number;
  startEpochMs: number;
  endEpochMs: number;
  records: number;
  pages: number;
  /** CPU (user + system, all threads) of the timed section. */
  cpuMs: number;
  /** Peak RSS of the worker process (getrusage maxrss). */
  maxRssKiB: number;
  /** Event-loop delay during the timed section: max and mean, ms. */
  loopDelayMaxMs: number;
  loopDelayMeanMs: number;
  bytesWritten: number;
  dip?: DipDetails;
}

interface DipDetails {
  openMs: number;
  runDurationMs: number;
  closeMs: number;
  /** Profiled run only: loading @duckdb/node-api, done before the timer (inside Lake.open otherwise). */
  duckdbImportMs?: number | undefined;
  units: number;
  requests: number;
  bronzeRows: number;
  rawRows: number | null;
  unitTimesMs: number[];
  /** Records of each committed unit, in commit order. */
  unitRows: number[];
  phases?: { phase: string; ms: number; calls: number }[];
}

function finishResult(
  partial: Omit<JobResult, 'cpuMs' | 'maxRssKiB' | 'loopDelayMaxMs' | 'loopDelayMeanMs'>,
  cpu0: NodeJS.CpuUsage,
  h: ReturnType<typeof monitorEventLoopDelay>,
): JobResult {
  const cpu = process.cpuUsage(cpu0);
  h.disable();
  return {
    ...partial,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxRssKiB: process.resourceUsage().maxRSS,
    loopDelayMaxMs: h.max / 1e6,
    loopDelayMeanMs: Number.isFinite(h.mean) ? h.mean / 1e6 : 0,
  };
}

/**
 * The hand-written loop: GET pages, JSON.parse each body, append every record as one JSON
 * line to `out` (one write per page, awaited, in arrival order). Cursor: one page after the
 * other. Offset: the first page tells the total, then `concurrency` workers take the next
 * offset each until all are requested (concurrency 1 = the plain sequential loop).
 */
async function runLoop(job: LoopJob): Promise<JobResult> {
  const { Agent, request } = await import('undici');
  const h = monitorEventLoopDelay({ resolution: 10 });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const startEpochMs = epochMs();
  h.enable();
  const agent =
    job.client === 'undici'
      ? new Agent({ connections: job.concurrency, keepAliveTimeout: 60_000, pipelining: 1 })
      : undefined;
  const get = async (url: string): Promise<string> => {
    if (agent) {
      const res = await request(url, { dispatcher: agent });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      return text;
    }
    const res = await fetch(url);
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${text.slice(0, 200)}`);
    return text;
  };
  const fh = await open(job.out, 'w');
  let records = 0;
  let pages = 0;
  let bytes = 0;
  let writes = Promise.resolve();
  const write = (data: unknown[]): Promise<void> => {
    let text = '';
    for (const r of data) text += `${JSON.stringify(r)}\n`;
    records += data.length;
    pages += 1;
    bytes += text.length;
    writes = writes.then(async () => void (await fh.write(text)));
    return writes;
  };
  try {
    if (job.pagination === 'cursor') {
      let cursor: string | null = null;
      do {
        const url: string = `${job.base}/cursor?limit=${job.pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const body = JSON.parse(await get(url)) as { data: unknown[]; next_cursor: string | null };
        await write(body.data);
        cursor = body.next_cursor;
      } while (cursor);
    } else {
      const first = JSON.parse(await get(`${job.base}/offset?offset=0&limit=${job.pageSize}`)) as {
        data: unknown[];
        total: number;
      };
      await write(first.data);
      let next = job.pageSize;
      await Promise.all(
        Array.from({ length: job.concurrency }, async () => {
          while (next < first.total) {
            const offset = next;
            next += job.pageSize;
            const body = JSON.parse(await get(`${job.base}/offset?offset=${offset}&limit=${job.pageSize}`)) as {
              data: unknown[];
            };
            await write(body.data);
          }
        }),
      );
    }
    await writes;
  } finally {
    await fh.close();
  }
  const ms = performance.now() - started;
  const endEpochMs = epochMs();
  await agent?.close();
  return finishResult({ ms, startEpochMs, endEpochMs, records, pages, bytesWritten: bytes }, cpu0, h);
}

/** The dip.yaml of a dip job: one REST source `api`, one resource `items`. */
export function dipYaml(
  job: Pick<DipJob, 'base' | 'pagination' | 'raw' | 'concurrency' | 'pageSize' | 'batchRecords'>,
): string {
  const resource =
    job.pagination === 'cursor'
      ? [
          '          path: /cursor',
          `          params: { limit: ${job.pageSize} }`,
          "          records: '$.data'",
          "          paginator: { type: cursor, cursor_path: '$.next_cursor', param: cursor }",
        ]
      : [
          '          path: /offset',
          "          records: '$.data'",
          `          paginator: { type: offset, limit: ${job.pageSize}, total_path: '$.total' }`,
        ];
  if (job.batchRecords !== undefined) resource.push(`          batch_records: ${job.batchRecords}`);
  const http =
    job.pagination === 'offset'
      ? [`        http: { concurrency: { max: ${job.concurrency}, initial: ${job.concurrency} } }`]
      : [];
  return [
    '# generated by bench/rest.ts',
    'version: 1',
    'project: bench',
    'storage: { kind: local, path: .dip/lake }',
    'catalog: { kind: sqlite, path: .dip/catalog.db }',
    'engine: { threads: 2, memory_limit: 1GB }',
    'pipelines:',
    '  p:',
    `    raw: { enabled: ${job.raw} }`,
    '    sources:',
    '      api:',
    '        type: rest',
    `        base_url: ${job.base}`,
    ...http,
    '        resources:',
    '          items:',
    ...resource.map((l) => `  ${l}`),
    '',
  ].join('\n');
}

type AnyMethod = (...args: unknown[]) => Promise<unknown>;

/** What an engine statement of a REST unit is for, from its SQL. */
function classify(sql: string): string {
  const s = sql.trim();
  if (/^DESCRIBE/i.test(s)) return 'engine: DESCRIBE read_json (schema of the batch)';
  if (/^COPY/i.test(s) && /row_number\(\) OVER/i.test(s)) return 'engine: raw zone COPY (page envelopes → ndjson.zst)';
  if (/^COPY/i.test(s) && /_dip_run_id/.test(s)) return 'engine: bronze COPY (read_json → parquet)';
  if (/^COPY/i.test(s)) return 'engine: other COPY';
  return 'engine: other statements';
}

async function runDip(job: DipJob): Promise<JobResult> {
  const { loadProject } = await import('../src/config/load.js');
  const { Lake } = await import('../src/lake/lake.js');
  const { runPipeline } = await import('../src/pipeline/run.js');
  const { query } = await import('../src/lake/query.js');
  await rm(job.dir, { recursive: true, force: true });
  await mkdir(job.dir, { recursive: true });
  await writeFile(join(job.dir, 'dip.yaml'), dipYaml(job));
  const project = await loadProject(job.dir);
  const phases = new Map<string, { phase: string; ms: number; calls: number }>();
  const record = (phase: string, ms: number) => {
    const p = phases.get(phase) ?? { phase, ms: 0, calls: 0 };
    p.ms += ms;
    p.calls += 1;
    phases.set(phase, p);
  };
  const unitTimes: number[] = [];
  const unitRows: number[] = [];
  const onEvent = (e: RunEvent) => {
    if (e.type !== 'unit_committed') return;
    unitTimes.push(performance.now());
    unitRows.push(e.rows);
  };
  let duckdbImportMs: number | undefined;
  if (job.profile) {
    const t = performance.now();
    await import('@duckdb/node-api');
    duckdbImportMs = performance.now() - t;
  }
  const { Session } = await import('node:inspector/promises');
  const session = job.cpuProfile ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }

  const h = monitorEventLoopDelay({ resolution: 10 });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const startEpochMs = epochMs();
  h.enable();
  const lake = await Lake.open(project);
  const opened = performance.now();
  if (job.profile) {
    // Outermost calls only: copy() calls all() inside, a catalog method may call another.
    let depth = 0;
    const wrap = (obj: object, names: string[], phaseOf: (name: string, args: unknown[]) => string) => {
      const target = obj as Record<string, AnyMethod>;
      for (const name of names) {
        const original = target[name];
        if (typeof original !== 'function') continue;
        target[name] = async (...args: unknown[]) => {
          if (depth > 0) return original.apply(obj, args);
          depth++;
          const t = performance.now();
          try {
            return await original.apply(obj, args);
          } finally {
            depth--;
            record(phaseOf(name, args), performance.now() - t);
          }
        };
      }
    };
    wrap(lake.engine, ['run', 'all', 'table', 'copy', 'describe'], (name, args) =>
      classify(name === 'describe' ? `DESCRIBE ${String(args[0])}` : String(args[0])),
    );
    wrap(lake.storage, ['publish'], () => 'storage: publish (fsync, rename, fsync dir)');
    const methods = new Set<string>();
    for (
      let p: object | null = Object.getPrototypeOf(lake.catalog);
      p && p !== Object.prototype;
      p = Object.getPrototypeOf(p)
    ) {
      for (const n of Object.getOwnPropertyNames(p)) if (n !== 'constructor' && n !== 'close') methods.add(n);
    }
    wrap(lake.catalog, [...methods], (name) =>
      name === 'commit' ? 'catalog: commit (SQLite)' : 'catalog: other calls (SQLite)',
    );
  }
  let result: Awaited<ReturnType<typeof runPipeline>>;
  try {
    result = await runPipeline(lake, 'p', { onEvent });
  } catch (err) {
    await lake.close().catch(() => undefined);
    throw err;
  }
  const ms = performance.now() - started;
  const endEpochMs = epochMs();
  const partialCpu = process.cpuUsage(cpu0);
  h.disable();
  if (session && job.cpuProfile) {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(job.cpuProfile, JSON.stringify(profile));
    session.disconnect();
  }
  try {
    if (result.status !== 'succeeded') throw new Error(`dip run failed: ${JSON.stringify(result.errors, null, 2)}`);
    const stream = result.stats.streams['api.items'];
    if (!stream || stream.rows !== job.expectRecords || stream.quarantined !== 0) {
      throw new Error(
        `dip run reported ${stream?.rows} rows / ${stream?.quarantined} quarantined, expected ${job.expectRecords} / 0`,
      );
    }
    const [counts] = (await query(lake, 'select count(*) AS n, count(distinct id) AS d from bronze.items')).rows;
    const bronzeRows = Number(counts?.['n']);
    if (bronzeRows !== job.expectRecords || Number(counts?.['d']) !== job.expectRecords) {
      throw new Error(
        `bronze.items holds ${bronzeRows} rows (${String(counts?.['d'])} distinct ids), expected ${job.expectRecords}`,
      );
    }
    let rawRows: number | null = null;
    if (job.raw) {
      const [raw] = (await query(lake, 'select count(*) AS n from raw.items')).rows;
      rawRows = Number(raw?.['n']);
      if (rawRows !== job.expectPages)
        throw new Error(`raw.items holds ${rawRows} page envelopes, expected ${job.expectPages}`);
    }
    const closing = performance.now();
    await lake.close();
    const closeMs = performance.now() - closing;
    const metrics = stream.source ?? {};
    return {
      ms,
      startEpochMs,
      endEpochMs,
      records: stream.rows,
      pages: metrics['pages'] ?? 0,
      cpuMs: (partialCpu.user + partialCpu.system) / 1000,
      maxRssKiB: process.resourceUsage().maxRSS,
      loopDelayMaxMs: h.max / 1e6,
      loopDelayMeanMs: Number.isFinite(h.mean) ? h.mean / 1e6 : 0,
      bytesWritten: stream.bytes,
      dip: {
        openMs: opened - started,
        runDurationMs: result.durationMs,
        closeMs,
        duckdbImportMs,
        units: stream.files,
        requests: metrics['requests'] ?? 0,
        bronzeRows,
        rawRows,
        unitTimesMs: unitTimes.map((t) => t - started),
        unitRows,
        phases: job.profile ? [...phases.values()].sort((a, b) => b.ms - a.ms) : undefined,
      },
    };
  } finally {
    await lake.close().catch(() => undefined);
    await rm(job.dir, { recursive: true, force: true });
  }
}

interface DiagnoseRow {
  name: string;
  ms: number;
  minMs: number;
}

/**
 * One unit as dip's REST source writes it (records NDJSON: JSON.stringify per record; page
 * envelopes: received_at, position, payload = the body on one line), then dip's DuckDB
 * statements for it, each alone and repeated, beside cheaper variants. The statements mirror
 * src/lake/readers.ts (prepareJson) and src/lake/ingest.ts (stageUnit, stageRawPages) as of
 * this benchmark's commit; the profiled runs time the real ones.
 */
async function runDiagnose(job: DiagnoseJob): Promise<{ rows: DiagnoseRow[]; recordBytes: number; pageBytes: number }> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  await rm(job.dir, { recursive: true, force: true });
  await mkdir(job.dir, { recursive: true });
  const recordsPath = join(job.dir, 'unit.records.ndjson');
  const pagesPath = join(job.dir, 'unit.pages.ndjson');
  const bodies: { url: string; text: string }[] = [];
  for (let offset = 0; offset < job.records; offset += job.pageSize) {
    const url = `${job.base}/offset?offset=${offset}&limit=${Math.min(job.pageSize, job.records - offset)}`;
    bodies.push({ url, text: await (await fetch(url)).text() });
  }
  const rows: DiagnoseRow[] = [];
  const timeNode = (name: string, fn: () => void) => {
    const ts: number[] = [];
    for (let i = 0; i < job.reps; i++) {
      const t = performance.now();
      fn();
      ts.push(performance.now() - t);
    }
    rows.push({ name, ms: median(ts), minMs: Math.min(...ts) });
  };
  let records = '';
  let pages = '';
  timeNode('node: JSON.parse pages + JSON.stringify each record (batch.ts add)', () => {
    records = '';
    for (const b of bodies)
      for (const r of (JSON.parse(b.text) as { data: unknown[] }).data) records += `${JSON.stringify(r)}\n`;
  });
  timeNode('node: page envelopes (body with newlines replaced)', () => {
    pages = '';
    bodies.forEach((b, i) => {
      const position = {
        url: b.url,
        status: 200,
        headers: { 'content-type': 'application/json' },
        page: i + 1,
        records: '$.data',
        attempts: 1,
      };
      pages += `{"received_at":${JSON.stringify(new Date().toISOString())},"position":${JSON.stringify(position)},"payload":${b.text.replace(/[\r\n]+/g, ' ')}}\n`;
    });
  });
  await writeFile(recordsPath, records);
  await writeFile(pagesPath, pages);
  const db = await DuckDBInstance.create(':memory:', { threads: '2', memory_limit: '1GB' });
  const c = await db.connect();
  const lit = (x: string) => `'${x.replaceAll("'", "''")}'`;
  const time = async (name: string, sql: string) => {
    const ts: number[] = [];
    for (let i = 0; i < job.reps; i++) {
      const t = performance.now();
      await c.run(sql);
      ts.push(performance.now() - t);
    }
    rows.push({ name, ms: median(ts), minMs: Math.min(...ts) });
  };
  try {
    const rel = (sample: number) =>
      `read_json(${lit(recordsPath)}, format='newline_delimited', sample_size=${sample}, hive_partitioning=false)`;
    const described = (await (await c.runAndReadAll(`DESCRIBE SELECT * FROM ${rel(20480)}`)).getRowObjectsJson()) as {
      column_name: string;
      column_type: string;
    }[];
    const select = described.map((d) => `"${d.column_name}"`).join(', ');
    const columns = `{${described.map((d) => `${lit(d.column_name)}: ${lit(d.column_type)}`).join(', ')}}`;
    const enumOf = (v: string) => `${lit(v)}::ENUM(${lit(v)})`;
    const audit = `${enumOf('run_bench')} AS _dip_run_id, '2026-01-01T00:00:00Z'::TIMESTAMPTZ AS _dip_ingested_at, ${enumOf('p.api.items')} AS _dip_source, ${enumOf('GET /offset')} AS _dip_source_file`;
    const parquet = `TO ${lit(join(job.dir, 'bronze.parquet'))} (FORMAT parquet, COMPRESSION zstd)`;
    const maxObject = Math.max(1 << 20, Buffer.byteLength(pages) + 1024);
    await time('dip: DESCRIBE read_json (sample_size=20480)', `DESCRIBE SELECT * FROM ${rel(20480)}`);
    await time('  variant: DESCRIBE read_json (sample_size=2048)', `DESCRIBE SELECT * FROM ${rel(2048)}`);
    await time(
      'dip: bronze COPY read_json (sample_size=20480) → parquet',
      `COPY (SELECT ${select}, ${audit} FROM ${rel(20480)}) ${parquet}`,
    );
    await time(
      '  variant: bronze COPY read_json(columns = the DESCRIBE result) → parquet',
      `COPY (SELECT ${select}, ${audit} FROM read_json(${lit(recordsPath)}, format='newline_delimited', columns=${columns}, hive_partitioning=false)) ${parquet}`,
    );
    await time(
      'dip: raw COPY page envelopes (payload JSON, row_number) → ndjson.zst',
      `COPY (SELECT row_number() OVER () AS seq, payload, 'p' AS pipeline, 'api' AS source, 'items' AS stream, 'run_bench' AS run_id, received_at, position
        FROM read_json(${lit(pagesPath)}, format='newline_delimited', maximum_object_size=${maxObject}, columns={received_at: 'VARCHAR', position: 'JSON', payload: 'JSON'})
      ) TO ${lit(join(job.dir, 'raw.ndjson.zst'))} (FORMAT json, COMPRESSION zstd)`,
    );
    await time(
      '  variant: raw envelope lines compressed as written (read_text → zstd)',
      `COPY (SELECT content FROM read_text(${lit(pagesPath)})) TO ${lit(join(job.dir, 'raw.txt.zst'))} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\u0001', COMPRESSION zstd)`,
    );
  } finally {
    c.closeSync();
    db.closeSync();
    await rm(job.dir, { recursive: true, force: true });
  }
  return { rows, recordBytes: Buffer.byteLength(records), pageBytes: Buffer.byteLength(pages) };
}

async function worker(jobText: string): Promise<void> {
  const job = JSON.parse(jobText) as Job;
  const result =
    job.kind === 'loop' ? await runLoop(job) : job.kind === 'dip' ? await runDip(job) : await runDiagnose(job);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ─── the server ──────────────────────────────────────────────────────────────────────────

interface Server {
  base: string;
  child: ChildProcess;
  records: number;
  bytes: number;
}

interface ServerStats {
  requests: number;
  maxInFlight: number;
  firstAt: number | null;
  lastAt: number | null;
  bytes: number;
  cpuMs: number;
}

async function startServer(opts: Options): Promise<Server> {
  const child = fork(
    SERVER,
    ['--pages', String(opts.pages), '--page-size', String(opts.pageSize), '--latency-ms', String(opts.latencyMs)],
    {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: [],
    },
  );
  const ready = await new Promise<{ port: number; records: number; bytes: number }>((resolvePromise, reject) => {
    child.once('message', (m) => resolvePromise(m as { port: number; records: number; bytes: number }));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench/rest-server.mjs exited with ${code} before listening`)));
  });
  child.removeAllListeners('exit');
  return { base: `http://127.0.0.1:${ready.port}`, child, records: ready.records, bytes: ready.bytes };
}

async function serverCall(server: Server, path: '/stats' | '/reset'): Promise<ServerStats> {
  const res = await fetch(`${server.base}${path}`, { method: path === '/reset' ? 'POST' : 'GET' });
  return (await res.json()) as ServerStats;
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise<void>((r) => server.child.once('exit', () => r()));
  server.child.kill('SIGTERM');
  await exited;
}

// ─── variants ────────────────────────────────────────────────────────────────────────────

interface Variant {
  id: string;
  label: string;
  group: 'loop-cursor' | 'loop-offset' | 'dip-cursor' | 'dip-offset';
  job: (server: Server, tag: string) => LoopJob | DipJob;
  /** Loops: workers; dip offset: http.concurrency max = initial; cursor: 1. */
  concurrency: number;
  client?: Client;
  raw?: boolean;
  batchRecords?: number | undefined;
}

function variants(opts: Options): Variant[] {
  const out: Variant[] = [];
  const loopOut = (id: string) => join(WORK, `${id}.ndjson`);
  if (!opts.dipOnly) {
    for (const client of opts.clients) {
      out.push({
        id: `loop-cursor-${client}`,
        label: `a) loop ${client}, cursor (sequential)`,
        group: 'loop-cursor',
        concurrency: 1,
        client,
        job: (s) => ({
          kind: 'loop',
          base: s.base,
          pagination: 'cursor',
          client,
          concurrency: 1,
          pageSize: opts.pageSize,
          out: loopOut(`loop-cursor-${client}`),
        }),
      });
    }
    for (const c of opts.concurrency) {
      for (const client of opts.clients) {
        const id = `loop-offset-${client}-c${c}`;
        out.push({
          id,
          label: `a) loop ${client}, offset, concurrency ${c}`,
          group: 'loop-offset',
          concurrency: c,
          client,
          job: (s) => ({
            kind: 'loop',
            base: s.base,
            pagination: 'offset',
            client,
            concurrency: c,
            pageSize: opts.pageSize,
            out: loopOut(id),
          }),
        });
      }
    }
  }
  const raws = opts.rawOff ? [true, false] : [true];
  for (const raw of raws) {
    for (const batchRecords of opts.batchRecords) {
      const batch = batchRecords === undefined ? 'default' : String(batchRecords);
      const configs = [
        { pagination: 'cursor' as const, concurrency: 1 },
        ...opts.dipConcurrency.map((c) => ({ pagination: 'offset' as const, concurrency: c })),
      ];
      for (const { pagination, concurrency } of configs) {
        const id = `dip-${pagination}${pagination === 'offset' ? `-c${concurrency}` : ''}-b${batch}-raw-${raw ? 'on' : 'off'}`;
        out.push({
          id,
          label: `b) dip, ${pagination}${pagination === 'offset' ? ` (total, concurrency ${concurrency})` : ''}, batch_records ${batch}, raw ${raw ? 'on' : 'off'}`,
          group: pagination === 'cursor' ? 'dip-cursor' : 'dip-offset',
          concurrency,
          raw,
          batchRecords,
          job: (s, tag) => ({
            kind: 'dip',
            base: s.base,
            pagination,
            raw,
            concurrency,
            pageSize: opts.pageSize,
            batchRecords,
            dir: join(WORK, `project-${id}-${tag}`),
            expectRecords: opts.pages * opts.pageSize,
            expectPages: opts.pages,
            profile: tag === 'profile',
          }),
        });
      }
    }
  }
  return out;
}

interface Sample {
  variant: string;
  result: JobResult;
  server: ServerStats;
  /** Whole child process, spawn → exit (node + tsx start-up and imports included). */
  processMs: number;
}

class BenchFailure extends Error {}

/** Runs a job in a fresh worker process; resolves with the JSON it prints last. */
async function spawnWorker(job: Job): Promise<unknown> {
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolvePromise, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', SELF, '--worker', JSON.stringify(job)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1' },
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.once('error', reject);
      child.once('close', (c) =>
        resolvePromise({
          code: c,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    },
  );
  if (code !== 0)
    throw new BenchFailure(
      `worker (${job.kind} ${job.pagination}) exited with ${code}\n--- stderr ---\n${stderr.slice(-4000)}\n--- stdout ---\n${stdout.slice(-2000)}`,
    );
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as unknown;
}

/** Runs one timed job in a fresh worker process and returns its result with the server's view of it. */
async function runJob(server: Server, job: LoopJob | DipJob): Promise<Omit<Sample, 'variant'>> {
  await serverCall(server, '/reset');
  const started = performance.now();
  const result = (await spawnWorker(job)) as JobResult;
  const processMs = performance.now() - started;
  const stats = await serverCall(server, '/stats');
  return { result, server: stats, processMs };
}

function checkLoop(v: Variant, s: Omit<Sample, 'variant'>, opts: Options): void {
  const expect = opts.pages * opts.pageSize;
  if (s.result.records !== expect || s.result.pages !== opts.pages) {
    throw new BenchFailure(
      `${v.label} read ${s.result.records} records / ${s.result.pages} pages, expected ${expect} / ${opts.pages}`,
    );
  }
  if (s.server.requests !== opts.pages)
    throw new BenchFailure(`${v.label}: the server saw ${s.server.requests} requests, expected ${opts.pages}`);
}

// ─── profile ─────────────────────────────────────────────────────────────────────────────

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Self time of the main thread per function (top `n`), from a V8 .cpuprofile. */
async function cpuProfileTop(path: string, n: number): Promise<{ fn: string; ms: number; share: number }[]> {
  const prof = JSON.parse(await readFile(path, 'utf8')) as {
    nodes: CpuProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const node = byId.get(prof.samples[i] as number);
    if (!node) continue;
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const f = node.callFrame;
    const file = f.url
      .replace(/^file:\/\//, '')
      .replace(`${ROOT}/`, '')
      .replace(/.*node_modules\//, '');
    const where = f.url ? (f.lineNumber > 0 ? `${file}:${f.lineNumber + 1}` : file) : '';
    const key = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const total = (prof.endTime - prof.startTime) / 1000;
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, ms]) => ({ fn, ms, share: ms / total }));
}

interface ProfileReport {
  variant: string;
  label: string;
  totalMs: number;
  openMs: number;
  /** Lake.open start → the server received the first request. */
  firstRequestMs: number | null;
  /** First request received → last response sent, as the server saw it. */
  fetchMs: number | null;
  /** Last response sent → runPipeline resolved: last page, last unit staged and committed. */
  tailMs: number | null;
  units: number;
  unitTimesMs: number[];
  maxInFlight: number;
  phases: { phase: string; ms: number; calls: number }[];
  /** Loading @duckdb/node-api, before the timer in the profiled run (inside Lake.open in the timed runs). */
  duckdbImportMs: number | null;
  /** The main thread's CPU profile: self time per function (a separate run under the V8 profiler). */
  cpuTop: { fn: string; ms: number; share: number }[];
  cpuProfileMs: number;
}

async function runProfile(server: Server, v: Variant): Promise<ProfileReport> {
  const job = v.job(server, 'profile') as DipJob;
  const s = await runJob(server, job);
  const r = s.result;
  const d = r.dip as DipDetails;
  // A second run under the V8 sampling profiler (timed section only), for where the main thread's CPU goes.
  const cpuFile = join(WORK, `${v.id}.cpuprofile`);
  const p = await runJob(server, { ...job, profile: false, cpuProfile: cpuFile });
  const cpuTop = await cpuProfileTop(cpuFile, 14);
  await rm(cpuFile, { force: true });
  const first = s.server.firstAt;
  const last = s.server.lastAt;
  return {
    variant: v.id,
    label: v.label,
    totalMs: r.ms,
    openMs: d.openMs,
    duckdbImportMs: d.duckdbImportMs ?? null,
    firstRequestMs: first === null ? null : first - r.startEpochMs,
    fetchMs: first === null || last === null ? null : last - first,
    tailMs: last === null ? null : r.endEpochMs - last,
    units: d.units,
    unitTimesMs: d.unitTimesMs,
    maxInFlight: s.server.maxInFlight,
    phases: d.phases ?? [],
    cpuTop,
    cpuProfileMs: p.result.ms,
  };
}

// ─── summary ─────────────────────────────────────────────────────────────────────────────

interface Summary {
  variant: string;
  label: string;
  group: Variant['group'];
  concurrency: number;
  client: Client | undefined;
  raw: boolean | undefined;
  runs: number;
  seconds: number;
  pagesPerSec: number;
  recordsPerSec: number;
  cpuSeconds: number;
  peakRssMiB: number;
  maxInFlight: number;
  serverCpuSeconds: number;
  loopDelayMaxMs: number;
  samples: number[];
  dip?:
    | {
        openMs: number;
        units: number;
        requests: number;
        firstRequestMs: number | null;
        fetchMs: number | null;
        tailMs: number | null;
        /** Records of each unit with records (median run), in commit order. */
        unitRows: number[];
        /** Units with records committed before the last response left the server (median run): staging off the fetch path. */
        unitsBeforeLastResponse: number;
      }
    | undefined;
}

function summarize(opts: Options, vs: Variant[], samples: Sample[]): Summary[] {
  const out: Summary[] = [];
  for (const v of vs) {
    const runs = samples.filter((s) => s.variant === v.id);
    if (!runs.length) continue;
    const seconds = median(runs.map((s) => s.result.ms)) / 1000;
    const mid = [...runs].sort((a, b) => a.result.ms - b.result.ms)[Math.floor((runs.length - 1) / 2)] as Sample;
    out.push({
      variant: v.id,
      label: v.label,
      group: v.group,
      concurrency: v.concurrency,
      client: v.client,
      raw: v.raw,
      runs: runs.length,
      seconds,
      pagesPerSec: opts.pages / seconds,
      recordsPerSec: (opts.pages * opts.pageSize) / seconds,
      cpuSeconds: median(runs.map((s) => s.result.cpuMs)) / 1000,
      peakRssMiB: Math.max(...runs.map((s) => s.result.maxRssKiB)) / 1024,
      maxInFlight: Math.max(...runs.map((s) => s.server.maxInFlight)),
      serverCpuSeconds: median(runs.map((s) => s.server.cpuMs)) / 1000,
      loopDelayMaxMs: median(runs.map((s) => s.result.loopDelayMaxMs)),
      samples: runs.map((s) => s.result.ms / 1000),
      dip: mid.result.dip
        ? {
            openMs: median(runs.map((s) => s.result.dip?.openMs ?? 0)),
            units: mid.result.dip.units,
            requests: mid.result.dip.requests,
            firstRequestMs: mid.server.firstAt === null ? null : mid.server.firstAt - mid.result.startEpochMs,
            fetchMs:
              mid.server.firstAt === null || mid.server.lastAt === null ? null : mid.server.lastAt - mid.server.firstAt,
            tailMs: mid.server.lastAt === null ? null : mid.result.endEpochMs - mid.server.lastAt,
            unitRows: mid.result.dip.unitRows.filter((n) => n > 0),
            unitsBeforeLastResponse: mid.result.dip.unitTimesMs.filter(
              (t, i) =>
                (mid.result.dip?.unitRows[i] ?? 0) > 0 &&
                mid.server.lastAt !== null &&
                mid.result.startEpochMs + t < mid.server.lastAt,
            ).length,
          }
        : undefined,
    });
  }
  return out;
}

interface TargetRow {
  name: string;
  dip: string;
  baseline: string;
  ratio: number | null;
  target: string;
  pass: boolean | null;
  /** dip's throughput over the fastest hand-written loop of the same pagination (for information). */
  vsBestLoop: string;
}

function targets(summary: Summary[]): { rows: TargetRow[]; best: Record<string, Summary | undefined> } {
  const fastest = (xs: Summary[]) => (xs.length ? xs.reduce((a, b) => (b.seconds < a.seconds ? b : a)) : undefined);
  const bestCursor = fastest(summary.filter((s) => s.group === 'loop-cursor'));
  const seqOffset = fastest(summary.filter((s) => s.group === 'loop-offset' && s.concurrency === 1));
  const bestOffset = fastest(summary.filter((s) => s.group === 'loop-offset'));
  const rows: TargetRow[] = [];
  for (const dip of summary.filter((x) => x.group === 'dip-cursor' || x.group === 'dip-offset')) {
    const name = dip.label.replace(/^b\) /, '');
    const cursor = dip.group === 'dip-cursor';
    const base = cursor ? bestCursor : seqOffset;
    const best = cursor ? bestCursor : bestOffset;
    const ratio = base ? base.seconds / dip.seconds : null;
    const limit = cursor ? TARGETS.cursorRatio : TARGETS.offsetSpeedup;
    rows.push({
      name: cursor ? `${name} / best cursor loop` : `${name} / sequential offset loop`,
      dip: `${dip.seconds.toFixed(3)} s`,
      baseline: base ? `${base.seconds.toFixed(3)} s (${base.client}${cursor ? '' : ', concurrency 1'})` : 'n/a',
      ratio,
      target: cursor ? `≥ ${limit.toFixed(2)}` : `≥ ${limit.toFixed(1)}×`,
      pass: ratio === null ? null : ratio >= limit,
      vsBestLoop: best
        ? `${(best.seconds / dip.seconds).toFixed(2)} (${best.seconds.toFixed(3)} s, ${best.client}, c ${best.concurrency})`
        : 'n/a',
    });
  }
  return { rows, best: { cursor: bestCursor, sequentialOffset: seqOffset, offset: bestOffset } };
}

function resultsTable(summary: Summary[], best: Record<string, Summary | undefined>, markdown: boolean): string {
  const head = [
    'variant',
    'runs',
    'seconds',
    'pages/s',
    'records/s',
    'CPU s',
    'peak RSS MiB',
    'max in flight',
    'server CPU s',
    'loop delay max ms',
    'note',
  ];
  const rows = summary.map((s) => {
    const notes: string[] = [];
    if (s === best['cursor']) notes.push('best cursor loop');
    if (s === best['sequentialOffset']) notes.push('sequential offset baseline');
    if (s === best['offset']) notes.push('best offset loop');
    if (s.dip) {
      const ms = (x: number | null) => (x === null ? 'n/a' : `${fmtInt(x)} ms`);
      notes.push(
        `${s.dip.units} units; median run: open ${ms(s.dip.openMs)}, 1st request ${ms(s.dip.firstRequestMs)}, fetch ${ms(s.dip.fetchMs)}, tail ${ms(s.dip.tailMs)}; records per unit ${s.dip.unitRows.map(fmtInt).join(' / ')}, ${s.dip.unitsBeforeLastResponse} committed before the last response`,
      );
    }
    return [
      s.label,
      String(s.runs),
      s.seconds.toFixed(3),
      s.pagesPerSec.toFixed(1),
      fmtInt(s.recordsPerSec),
      s.cpuSeconds.toFixed(2),
      fmtInt(s.peakRssMiB),
      String(s.maxInFlight),
      s.serverCpuSeconds.toFixed(2),
      s.loopDelayMaxMs.toFixed(0),
      notes.join('; '),
    ];
  });
  return renderTable(head, rows, markdown, [false, true, true, true, true, true, true, true, true, true, false]);
}

function targetsTable(rows: TargetRow[], markdown: boolean): string {
  return renderTable(
    [
      'comparison (throughput ratio = baseline s / dip s)',
      'dip',
      'baseline',
      'ratio',
      'target',
      'result',
      'vs fastest loop of that pagination',
    ],
    rows.map((r) => [
      r.name,
      r.dip,
      r.baseline,
      r.ratio === null ? 'n/a' : r.ratio.toFixed(2),
      r.target,
      r.pass === null ? '—' : r.pass ? 'PASS' : 'MISS',
      r.vsBestLoop,
    ]),
    markdown,
    [false, true, false, true, false, false, false],
  );
}

function profileTables(p: ProfileReport, markdown: boolean): string {
  const ms = (x: number | null) => (x === null ? 'n/a' : `${fmtInt(x)} ms`);
  const timeline = renderTable(
    ['step', 'time'],
    [
      ['load @duckdb/node-api (done before the timer here; inside Lake.open in the timed runs)', ms(p.duckdbImportMs)],
      ['Lake.open (catalog, DuckDB instance)', ms(p.openMs)],
      ['Lake.open start → first request at the server', ms(p.firstRequestMs)],
      ['first request → last response (server side)', ms(p.fetchMs)],
      ['last response → run end (last unit staged + committed)', ms(p.tailMs)],
      ['total (Lake.open → runPipeline resolved, without the module load)', ms(p.totalMs)],
      [`units committed at (ms after Lake.open start)`, p.unitTimesMs.map((t) => fmtInt(t)).join(', ')],
      ['server max in flight', String(p.maxInFlight)],
    ],
    markdown,
    [false, true],
  );
  const phases = renderTable(
    ['phase (main connection / catalog / storage; overlaps fetching)', 'calls', 'ms'],
    p.phases.filter((ph) => ph.ms >= 1).map((ph) => [ph.phase, String(ph.calls), fmtInt(ph.ms)]),
    markdown,
    [false, true, true],
  );
  const cpu = renderTable(
    [
      `main thread self time, top functions (V8 profiler, timed section of another run: ${fmtInt(p.cpuProfileMs)} ms)`,
      'ms',
      'share',
    ],
    p.cpuTop.map((c) => [c.fn, fmtInt(c.ms), `${(c.share * 100).toFixed(1)} %`]),
    markdown,
    [false, true, true],
  );
  return `${timeline}\n\n${phases}\n\n${cpu}`;
}

type Diagnosis = Awaited<ReturnType<typeof runDiagnose>>;

function diagnoseTable(d: Diagnosis, markdown: boolean): string {
  const dip = d.rows.filter((r) => r.name.startsWith('dip: '));
  const sumDip = dip.reduce((n, r) => n + r.ms, 0);
  const sumVariant = d.rows.filter((r) => r.name.startsWith('  variant')).reduce((n, r) => n + r.ms, 0);
  const rows = d.rows.map((r) => [r.name, r.ms.toFixed(1), r.minMs.toFixed(1)]);
  rows.push(['dip statements, total', sumDip.toFixed(1), ''], ['variants, total', sumVariant.toFixed(1), '']);
  return renderTable(['step (alone, DuckDB threads=2)', 'ms', 'min ms'], rows, markdown, [false, true, true]);
}

/** The checked-out commit (read-only; the working tree may hold uncommitted changes). */

// ─── main ────────────────────────────────────────────────────────────────────────────────

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parseOptions(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing`);
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  const machine = { ...machineInfo(ROOT) };
  const server = await startServer(opts);
  log(
    `server ${server.base}: ${opts.pages} pages × ${opts.pageSize} records (${fmtInt(server.records)}), ${(server.bytes / 1e6).toFixed(1)} MB of offset pages, ${opts.latencyMs} ms latency`,
  );
  const vs = variants(opts);
  const samples: Sample[] = [];
  const profiles: ProfileReport[] = [];
  let diagnose: Diagnosis | undefined;
  try {
    // Warms the server (its JIT, the socket path) so the first timed run does not pay for it.
    const warm = vs.find((v) => v.group === 'loop-offset' && v.concurrency > 1) ?? vs[0];
    if (warm) {
      log(`warming the server: ${warm.label}`);
      await runJob(server, warm.job(server, 'warm'));
    }
    for (let w = 0; w < opts.warmup; w++) {
      for (const v of vs) {
        log(`warm-up ${w + 1}/${opts.warmup}: ${v.label}`);
        await runJob(server, v.job(server, 'warm'));
      }
    }
    for (let r = 0; r < opts.reps; r++) {
      for (const v of vs) {
        const s = await runJob(server, v.job(server, `r${r}`));
        if (v.group.startsWith('loop')) checkLoop(v, s, opts);
        log(
          `run ${r + 1}/${opts.reps} ${v.label}: ${(s.result.ms / 1000).toFixed(3)} s, ${fmtInt((opts.pages * opts.pageSize) / (s.result.ms / 1000))} records/s, max in flight ${s.server.maxInFlight}, RSS ${fmtInt(s.result.maxRssKiB / 1024)} MiB`,
        );
        samples.push({ variant: v.id, ...s });
      }
    }
    if (opts.profile) {
      // The first batch_records and concurrency given, raw zone on: one cursor and one offset run.
      const primary = vs.filter(
        (x) =>
          x.group.startsWith('dip') &&
          x.raw === true &&
          x.batchRecords === opts.batchRecords[0] &&
          (x.group === 'dip-cursor' || x.concurrency === opts.dipConcurrency[0]),
      );
      for (const v of primary) {
        log(`profiled run: ${v.label}`);
        profiles.push(await runProfile(server, v));
      }
    }
    if (opts.diagnose) {
      log(`diagnose: dip's DuckDB statements for one ${opts.diagnoseRecords}-record unit`);
      diagnose = (await spawnWorker({
        kind: 'diagnose',
        base: server.base,
        pagination: 'offset',
        pageSize: opts.pageSize,
        records: opts.diagnoseRecords,
        reps: 5,
        dir: join(WORK, 'diagnose'),
      })) as Diagnosis;
    }
  } catch (err) {
    if (err instanceof BenchFailure) {
      process.stderr.write(`\nFAILED: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    await stopServer(server);
    await rm(WORK, { recursive: true, force: true }).catch(() => undefined);
  }
  machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const summary = summarize(opts, vs, samples);
  const { rows, best } = targets(summary);
  const missed = rows
    .filter((r) => r.pass === false)
    .map((r) => `${r.name}: ${r.ratio?.toFixed(2)} (target ${r.target})`);
  const dipYamls = {
    cursor: dipYaml({
      base: server.base,
      pagination: 'cursor',
      raw: true,
      concurrency: 1,
      pageSize: opts.pageSize,
      batchRecords: opts.batchRecords[0],
    }),
    offset: dipYaml({
      base: server.base,
      pagination: 'offset',
      raw: true,
      concurrency: opts.dipConcurrency[0] ?? 32,
      pageSize: opts.pageSize,
      batchRecords: opts.batchRecords[0],
    }),
  };
  const doc = {
    benchmark: 'rest',
    machine,
    config: {
      pages: opts.pages,
      pageSize: opts.pageSize,
      records: opts.pages * opts.pageSize,
      latencyMs: opts.latencyMs,
      responseBytes: server.bytes,
      reps: opts.reps,
      loopConcurrency: opts.concurrency,
      clients: opts.clients,
      dipConcurrency: opts.dipConcurrency,
      batchRecords: opts.batchRecords.map((b) => b ?? 'default (20000)'),
      dipYaml: dipYamls,
    },
    targets: TARGETS,
    results: summary,
    comparisons: rows,
    profiles,
    diagnose,
    missed,
  };
  await mkdir(dirname(WORK), { recursive: true });
  await writeFile(join(dirname(WORK), 'last-rest.json'), `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const md = opts.markdown;
    const p = (s: string) => process.stdout.write(`${s}\n`);
    p(
      `\nrest benchmark · ${machine.date} · commit ${machine.commit} · ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB · node ${machine.node}`,
    );
    p(
      `load average (1/5/15 min) at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}`,
    );
    if (Math.max(machine.loadAverageAtStart[0] ?? 0, machine.loadAverageAtEnd[0] ?? 0) > machine.cpus) {
      p(
        `WARNING: the load average exceeded the ${machine.cpus} CPUs: dip (CPU-bound) slows far more than the latency-bound sequential loop, so the ratios understate dip; rerun on an idle machine`,
      );
    }
    p(
      `API: ${opts.pages} pages × ${opts.pageSize} records = ${fmtInt(opts.pages * opts.pageSize)} records, ${(server.bytes / 1e6).toFixed(1)} MB of JSON, +${opts.latencyMs} ms per request (separate process); median of ${opts.reps}; dip batch_records ${opts.batchRecords.map((b) => b ?? 'default (20000)').join(', ')}; dip offset http.concurrency max = initial = ${opts.dipConcurrency.join(', ')}`,
    );
    p(
      `seconds: loops = first request → output file closed; dip = Lake.open → runPipeline resolved (bronze and raw verified after)\n`,
    );
    p(resultsTable(summary, best, md));
    p('');
    p(targetsTable(rows, md));
    for (const prof of profiles) {
      p(`\nwhere the time goes — ${prof.label} (one profiled run, timers on every engine/catalog/storage call):\n`);
      p(profileTables(prof, md));
    }
    if (diagnose) {
      p(
        `\ndip's DuckDB statements for one unit of ${fmtInt(opts.diagnoseRecords)} records (${(diagnose.recordBytes / 1e6).toFixed(1)} MB records NDJSON, ${(diagnose.pageBytes / 1e6).toFixed(1)} MB page envelopes), each alone, median of 5:\n`,
      );
      p(diagnoseTable(diagnose, md));
    }
    const checked = rows.filter((r) => r.pass !== null).length;
    p(
      missed.length
        ? `\ntargets missed:\n  ${missed.join('\n  ')}`
        : checked
          ? '\nall targets met'
          : '\nno target checked (the hand-written loops did not run)',
    );
  }
  return opts.check && missed.length ? 2 : 0;
}

// `node --import tsx bench/rest.ts --worker <job>`: one timed job in this process.
if (process.argv[1] && resolve(process.argv[1]) === SELF && process.argv[2] === '--worker') {
  worker(process.argv[3] ?? '{}').catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
