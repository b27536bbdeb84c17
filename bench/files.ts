/**
 * File-ingest benchmark (spine issue): a generated CSV of mixed types, timed in one run as
 *
 *   (a) baseline  — DuckDB alone: COPY (SELECT * FROM read_csv(…)) TO '….parquet', in its own
 *                   node process, with the thread count and memory limit dip is configured with;
 *   (b) dip run   — `node dist/cli/main.js run` of the same file into bronze, raw zone on and off.
 *
 * Each variant runs `--warmup` untimed times, then `--reps` timed times (median reported),
 * interleaved so drift hits every variant alike. Wall time is spawn → exit of the child; peak
 * RSS is the child's VmHWM, polled from /proc every 50 ms (the highest of the runs is shown).
 * After each dip run the bronze row count is checked with `dip query`; a wrong count fails the
 * benchmark (exit 1).
 *
 *   npm run bench -- files [--rows N] [--big] [--json] …   (--help lists the options)
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, fmtInt, machineInfo, median, parseOrExit, renderTable, variantList } from './common.js';
import { BenchFailure, failIfBad, spawnMeasured, syncDisks } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work');
/**
 * The build is copied here at start and every dip process runs from the copy, so a rebuild
 * of dist/ by someone else during a long benchmark cannot change the code under test.
 */
const DIST = join(WORK, 'dist');
const DIP_CLI = join(DIST, 'cli', 'main.js');
const BASELINE = join(BENCH_DIR, 'baseline-copy.mjs');
const PROFILER = join(BENCH_DIR, 'profile-dip.ts');
const TABLE = 'events';
/** Bump when the generated data changes shape, so stale files are regenerated. */
const DATA_VERSION = 1;
const MIB = 1024 * 1024;
const MB = 1e6;

const TARGETS = { rawOnRatio: 1.5, rawOffRatio: 1.15, bigFileBytes: 2 * 1024 * MIB, bigPeakRssMiB: 1024 } as const;

const HELP = `npm run bench -- files [options]

  --rows N          rows of the main CSV (default 5000000; 5e6 and 5_000_000 work)
  --reps N          timed runs per variant, median reported (default 2)
  --warmup N        untimed runs per variant first (default 1)
  --threads N       DuckDB threads, dip (engine.threads) and baseline alike (default 2)
  --memory SIZE     DuckDB memory limit, both sides (default 1GB)
  --big             also generate a >2 GiB CSV of wider rows and run it (peak RSS target)
  --big-rows N      rows of the big CSV (default 25000000)
  --big-reps N      timed runs per variant on the big CSV (default 1, no warm-up)
  --big-only        run only the big CSV (implies --big)
  --no-profile      skip the profiled dip run (time per engine statement / catalog call)
  --diagnose        also time dip's bronze and raw statements step by step, alone in DuckDB
  --variants LIST   comma list of baseline,raw-off,raw-on (default all)
  --check           exit 2 when a target is missed (correctness failures always exit 1)
  --json            print one JSON document on stdout instead of tables
  --markdown        print tables as Markdown (for bench/README.md)
`;

interface Options {
  rows: number;
  reps: number;
  warmup: number;
  threads: number;
  memory: string;
  big: boolean;
  bigRows: number;
  bigReps: number;
  bigOnly: boolean;
  profile: boolean;
  diagnose: boolean;
  variants: Variant[];
  check: boolean;
  json: boolean;
  markdown: boolean;
}

type Variant = 'baseline' | 'raw-off' | 'raw-on';
const VARIANTS: readonly Variant[] = ['baseline', 'raw-off', 'raw-on'];
const LABEL: Record<Variant, string> = {
  baseline: 'a) DuckDB COPY read_csv → parquet',
  'raw-off': 'b) dip run, raw zone off',
  'raw-on': 'b) dip run, raw zone on',
};

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      rows: { type: 'string', default: '5000000' },
      reps: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '1' },
      threads: { type: 'string', default: '2' },
      memory: { type: 'string', default: '1GB' },
      big: { type: 'boolean', default: false },
      'big-rows': { type: 'string', default: '25000000' },
      'big-reps': { type: 'string', default: '1' },
      'big-only': { type: 'boolean', default: false },
      'no-profile': { type: 'boolean', default: false },
      diagnose: { type: 'boolean', default: false },
      variants: { type: 'string', default: VARIANTS.join(',') },
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
  const variants = variantList(values.variants, VARIANTS);
  const opts: Options = {
    rows: count(values.rows, 'rows'),
    reps: Math.max(1, count(values.reps, 'reps')),
    warmup: count(values.warmup, 'warmup'),
    threads: Math.max(1, count(values.threads, 'threads')),
    memory: values.memory,
    big: values.big || values['big-only'],
    bigOnly: values['big-only'],
    bigRows: count(values['big-rows'], 'big-rows'),
    bigReps: Math.max(1, count(values['big-reps'], 'big-reps')),
    profile: !values['no-profile'],
    diagnose: values.diagnose,
    variants,
    check: values.check,
    json: values.json,
    markdown: values.markdown,
  };
  if (opts.rows < 1) throw new Error('--rows must be at least 1');
  return opts;
}

const log = (msg: string) => process.stderr.write(`[bench files] ${msg}\n`);

// ─── data ────────────────────────────────────────────────────────────────────────────────

/**
 * Mixed-type columns: BIGINT id, VARCHAR name, DOUBLE amount, DATE, TIMESTAMP, BOOLEAN, a
 * low-cardinality VARCHAR, a VARCHAR that is sometimes quoted (commas, doubled quotes) and a
 * nullable INTEGER. `wide` adds an e-mail and another DOUBLE (used for the >2 GiB file).
 * Deterministic: DuckDB's hash() of the row number.
 */
function generatorSql(rows: number, wide: boolean, out: string): string {
  return `COPY (SELECT ${mixedColumnsSql(wide)} FROM range(${rows}) t(i)) TO ${sqlLit(out)} (FORMAT csv, HEADER true)`;
}

/** The generated columns as a SELECT list over `range(N) t(i)` (bench/landing.ts writes them as Parquet and JSON too). */
export function mixedColumnsSql(wide: boolean): string {
  const cols = [
    'i AS id',
    `'customer_' || (hash(i) % 1000000) AS name`,
    'round((hash(i, 1) % 10000000)::DOUBLE / 100.0 - 20000, 2) AS amount',
    `DATE '2020-01-01' + (i % 2500)::INTEGER AS order_date`,
    `TIMESTAMP '2020-01-01 00:00:00' + to_seconds((hash(i, 2) % 220000000)::BIGINT) AS updated_at`,
    '(hash(i, 3) % 2 = 0) AS active',
    `(['north', 'south', 'east', 'west', 'central', 'online', 'partner'])[1 + (i % 7)::INTEGER] AS category`,
    `CASE WHEN i % 10 = 0 THEN 'note, with comma #' || i WHEN i % 10 = 1 THEN 'said "hi", left' ELSE 'note ' || (i % 997) END AS note`,
    'CASE WHEN i % 6 = 0 THEN NULL ELSE (hash(i, 4) % 100000)::INTEGER END AS qty',
  ];
  if (wide) {
    cols.push(
      `'user' || (hash(i, 5) % 10000000) || '@example.com' AS email`,
      'round((hash(i, 6) % 1000000)::DOUBLE / 1000.0, 3) AS score',
    );
  }
  return cols.join(',\n  ');
}

const sqlLit = (s: string) => `'${s.replaceAll("'", "''")}'`;

interface CsvFile {
  path: string;
  rows: number;
  bytes: number;
  wide: boolean;
  reused: boolean;
  generateMs?: number;
}

/** The CSV for `rows` rows, generated with DuckDB unless a matching one is already there. */
async function ensureCsv(rows: number, wide: boolean): Promise<CsvFile> {
  const path = join(WORK, `${wide ? 'wide' : 'mixed'}-${rows}.csv`);
  const metaPath = `${path}.meta.json`;
  const expect = { version: DATA_VERSION, rows, wide };
  if (existsSync(path) && existsSync(metaPath)) {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as {
      version: number;
      rows: number;
      wide: boolean;
      bytes: number;
    };
    const s = await stat(path);
    if (meta.version === expect.version && meta.rows === rows && meta.wide === wide && meta.bytes === s.size) {
      return { path, rows, bytes: s.size, wide, reused: true };
    }
  }
  log(`generating ${path} (${rows.toLocaleString('en-US')} rows${wide ? ', wide' : ''}) with DuckDB …`);
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const tmp = `${path}.tmp`;
  const started = performance.now();
  const db = await DuckDBInstance.create(':memory:', {
    threads: String(cpus().length),
    preserve_insertion_order: 'true',
  });
  const conn = await db.connect();
  try {
    await conn.run(generatorSql(rows, wide, tmp));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  await rename(tmp, path);
  const bytes = (await stat(path)).size;
  await writeFile(metaPath, `${JSON.stringify({ ...expect, bytes })}\n`);
  const generateMs = performance.now() - started;
  log(`generated ${(bytes / MB).toFixed(0)} MB in ${(generateMs / 1000).toFixed(1)} s`);
  return { path, rows, bytes, wide, reused: false, generateMs };
}

// ─── child processes ───────────────────────────────────────────────────────────────────

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

// ─── variants ──────────────────────────────────────────────────────────────────────────

interface RunSample {
  variant: Variant;
  wallMs: number;
  /** Time inside the process: baseline's COPY statement, dip's runPipeline (JSON durationMs). */
  innerMs: number;
  peakRssKiB: number | null;
  cpuSec: number | null;
  rows: number;
  /** Bytes written: baseline's Parquet file; dip's bronze / raw zone files. */
  outBytes: { parquet?: number; bronze?: number; raw?: number };
}

async function runBaseline(csv: CsvFile, opts: Options, tag: string): Promise<RunSample> {
  const dir = join(WORK, `baseline-${tag}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const out = join(dir, 'out.parquet');
  syncDisks();
  const m = await spawnMeasured(process.execPath, [
    BASELINE,
    JSON.stringify({
      csv: csv.path,
      out,
      threads: opts.threads,
      memoryLimit: opts.memory,
      tempDirectory: join(dir, 'spill'),
      compression: 'zstd',
    }),
  ]);
  failIfBad('baseline', m);
  const result = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { rows: number; copyMs: number };
  if (result.rows !== csv.rows) throw new BenchFailure(`baseline COPY wrote ${result.rows} rows, expected ${csv.rows}`);
  const parquet = (await stat(out)).size;
  await rm(dir, { recursive: true, force: true });
  return {
    variant: 'baseline',
    wallMs: m.wallMs,
    innerMs: result.copyMs,
    peakRssKiB: m.peakRssKiB,
    cpuSec: m.cpuSec,
    rows: result.rows,
    outBytes: { parquet },
  };
}

function projectYaml(csv: CsvFile, rawOn: boolean, opts: Options): string {
  return `# generated by bench/files.ts
version: 1
project: bench
storage: { kind: local, path: .dip/lake }
catalog: { kind: sqlite, path: .dip/catalog.db }
engine: { threads: ${opts.threads}, memory_limit: ${opts.memory} }
pipelines:
  bench:
    raw: { enabled: ${rawOn} }
    sources:
      files:
        type: files
        streams:
          ${TABLE}:
            path: ${JSON.stringify(csv.path)}
            write_disposition: append
`;
}

/** A fresh project directory (empty lake and catalog) for one dip run. */
async function freshProject(csv: CsvFile, variant: 'raw-on' | 'raw-off', opts: Options, tag: string): Promise<string> {
  const dir = join(WORK, `project-${variant}-${tag}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'dip.yaml'), projectYaml(csv, variant === 'raw-on', opts));
  return dir;
}

interface DipRunJson {
  status: string;
  durationMs: number;
  stats: { streams: Record<string, { rows: number; quarantined: number; files: number; commits: number }> };
  errors: { message: string }[];
}

async function dipQueryCount(dir: string, sql: string): Promise<number> {
  const m = await spawnMeasured(process.execPath, [DIP_CLI, 'query', '--json', '-p', dir, sql]);
  failIfBad(`dip query ${sql}`, m);
  const rows = JSON.parse(m.stdout) as { n: string | number }[];
  return Number(rows[0]?.n ?? NaN);
}

async function runDip(
  csv: CsvFile,
  variant: 'raw-on' | 'raw-off',
  opts: Options,
  tag: string,
  verifyRaw: boolean,
): Promise<RunSample> {
  const dir = await freshProject(csv, variant, opts, tag);
  syncDisks();
  const m = await spawnMeasured(process.execPath, [DIP_CLI, 'run', '--quiet', '--json', '-p', dir]);
  failIfBad(`dip run (${variant})`, m);
  const results = JSON.parse(m.stdout) as DipRunJson[];
  const run = results[0];
  if (!run || run.status !== 'succeeded')
    throw new BenchFailure(`dip run (${variant}) did not succeed: ${m.stdout.slice(0, 2000)}`);
  const stream = Object.values(run.stats.streams)[0];
  if (!stream || stream.rows !== csv.rows || stream.quarantined !== 0) {
    throw new BenchFailure(
      `dip run (${variant}) reported ${stream?.rows} rows / ${stream?.quarantined} quarantined, expected ${csv.rows} / 0`,
    );
  }
  const bronzeRows = await dipQueryCount(dir, `select count(*) n from bronze.${TABLE}`);
  if (bronzeRows !== csv.rows)
    throw new BenchFailure(`bronze.${TABLE} holds ${bronzeRows} rows after dip run (${variant}), expected ${csv.rows}`);
  if (variant === 'raw-on' && verifyRaw) {
    const rawRows = await dipQueryCount(dir, `select count(*) n from raw.${TABLE}`);
    if (rawRows !== csv.rows)
      throw new BenchFailure(`raw.${TABLE} holds ${rawRows} rows after dip run, expected ${csv.rows}`);
  }
  const lake = join(dir, '.dip', 'lake');
  const outBytes: RunSample['outBytes'] = { bronze: await dirBytes(join(lake, 'bronze')) };
  if (variant === 'raw-on') outBytes.raw = await dirBytes(join(lake, 'raw'));
  await rm(dir, { recursive: true, force: true });
  return {
    variant,
    wallMs: m.wallMs,
    innerMs: run.durationMs,
    peakRssKiB: m.peakRssKiB,
    cpuSec: m.cpuSec,
    rows: bronzeRows,
    outBytes,
  };
}

function runVariant(v: Variant, csv: CsvFile, opts: Options, tag: string, verifyRaw: boolean): Promise<RunSample> {
  return v === 'baseline' ? runBaseline(csv, opts, tag) : runDip(csv, v, opts, tag, verifyRaw);
}

// ─── profile ───────────────────────────────────────────────────────────────────────────

interface Profile {
  totalMs: number;
  phases: { phase: string; ms: number; calls: number }[];
  statements: { phase: string; ms: number; sql: string }[];
  rows: number;
}

async function runProfile(csv: CsvFile, opts: Options): Promise<Profile> {
  const dir = await freshProject(csv, 'raw-on', opts, 'profile');
  syncDisks();
  const m = await spawnMeasured(process.execPath, ['--import', 'tsx', PROFILER, dir, DIST]);
  failIfBad('profiled dip run', m);
  const profile = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as Profile;
  if (profile.rows !== csv.rows)
    throw new BenchFailure(`profiled dip run wrote ${profile.rows} rows, expected ${csv.rows}`);
  await rm(dir, { recursive: true, force: true });
  return profile;
}

// ─── diagnose ──────────────────────────────────────────────────────────────────────────

/**
 * dip's engine statements, rebuilt step by step from the baseline and run alone in the
 * baseline process, to tell which part of each costs what. They mirror src/lake/ingest.ts and
 * src/lake/readers.ts as of 2026-11-22 (commit 9aeaf80); the profiled run shows the real
 * statements' times. The last row is the raw zone as it was before 9aeaf80, for comparison.
 */
function diagnoseStatements(csv: string, out: string): { name: string; sql: string | string[] }[] {
  const file = sqlLit(csv);
  const rejects = (id: string) => `store_rejects=true, rejects_table='rej_${id}', rejects_scan='rejscan_${id}'`;
  const audit = `'run_bench' AS _dip_run_id, '2026-11-22T00:00:00Z'::TIMESTAMPTZ AS _dip_ingested_at, 'bench.files.${TABLE}' AS _dip_source, ${file} AS _dip_source_file`;
  const parquet = `TO ${sqlLit(`${out}.parquet`)} (FORMAT parquet, COMPRESSION zstd)`;
  const json = `TO ${sqlLit(`${out}.ndjson.zst`)} (FORMAT json, COMPRESSION zstd)`;
  const rawRead = `read_csv(${file}, all_varchar=true, ${rejects('raw')})`;
  const stage = sqlLit(`${out}.stage.parquet`);
  const stageSql = `COPY (SELECT r AS payload FROM ${rawRead} r) TO ${stage} (FORMAT parquet, COMPRESSION lz4_raw)`;
  const envelope = (seq: string, from: string) =>
    `COPY (SELECT ${seq} AS seq, payload, 'bench' AS pipeline, 'files' AS source, '${TABLE}' AS stream, 'run_bench' AS run_id, '2026-11-22T00:00:00Z' AS received_at, {'file': ${file}, 'record': ${seq}} AS position FROM ${from}) ${json}`;
  return [
    { name: 'bronze: baseline COPY (= variant a)', sql: `COPY (SELECT * FROM read_csv(${file})) ${parquet}` },
    { name: 'bronze: + store_rejects', sql: `COPY (SELECT * FROM read_csv(${file}, ${rejects('b')})) ${parquet}` },
    {
      name: 'bronze: + 4 audit columns (= dip bronze)',
      sql: `COPY (SELECT *, ${audit} FROM read_csv(${file}, ${rejects('b')})) ${parquet}`,
    },
    {
      name: 'raw: all_varchar rows → ndjson.zst, no envelope',
      sql: `COPY (SELECT r AS payload FROM ${rawRead} r) ${json}`,
    },
    { name: 'raw: step 1, all_varchar rows → stage.parquet', sql: stageSql },
    {
      name: 'raw: steps 1 + 2, stage → envelope ndjson.zst (= dip raw)',
      sql: [
        stageSql,
        envelope('file_row_number + 1', `read_parquet(${stage}, file_row_number=true, hive_partitioning=false)`),
      ],
    },
    {
      name: 'raw before 9aeaf80: row_number() OVER () envelope',
      sql: envelope('seq', `(SELECT row_number() OVER () AS seq, r AS payload FROM ${rawRead} r)`),
    },
  ];
}

interface DiagnoseRow {
  name: string;
  seconds: number;
  cpuSeconds: number | null;
  peakRssMiB: number | null;
  ratio: number;
}

async function runDiagnose(csv: CsvFile, opts: Options): Promise<DiagnoseRow[]> {
  const dir = join(WORK, 'diagnose');
  const rows: DiagnoseRow[] = [];
  let base: number | undefined;
  for (const st of diagnoseStatements(csv.path, join(dir, 'out'))) {
    const walls: number[] = [];
    const cpus: number[] = [];
    let rss: number | null = null;
    for (let r = 0; r < opts.reps; r++) {
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      syncDisks();
      log(`diagnose: ${st.name} (${r + 1}/${opts.reps})`);
      const m = await spawnMeasured(process.execPath, [
        BASELINE,
        JSON.stringify({
          sql: st.sql,
          threads: opts.threads,
          memoryLimit: opts.memory,
          tempDirectory: join(dir, 'spill'),
        }),
      ]);
      failIfBad(`diagnose statement "${st.name}"`, m);
      const result = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { rows: number };
      if (result.rows !== csv.rows)
        throw new BenchFailure(`diagnose statement "${st.name}" wrote ${result.rows} rows, expected ${csv.rows}`);
      walls.push(m.wallMs / 1000);
      if (m.cpuSec !== null) cpus.push(m.cpuSec);
      if (m.peakRssKiB !== null) rss = Math.max(rss ?? 0, m.peakRssKiB / 1024);
    }
    const seconds = median(walls);
    base ??= seconds;
    rows.push({
      name: st.name,
      seconds,
      cpuSeconds: cpus.length ? median(cpus) : null,
      peakRssMiB: rss,
      ratio: seconds / base,
    });
  }
  await rm(dir, { recursive: true, force: true });
  return rows;
}

function diagnoseTable(rows: DiagnoseRow[], markdown: boolean): string {
  return renderTable(
    ['statement (alone, in the baseline process)', 'seconds', 'CPU s', 'peak RSS MiB', 'vs baseline'],
    rows.map((r) => [
      r.name,
      r.seconds.toFixed(2),
      r.cpuSeconds === null ? 'n/a' : r.cpuSeconds.toFixed(2),
      r.peakRssMiB === null ? 'n/a' : fmtInt(r.peakRssMiB),
      r.ratio.toFixed(2),
    ]),
    markdown,
    [false, true, true, true, true],
  );
}

// ─── summary ───────────────────────────────────────────────────────────────────────────

interface Summary {
  variant: Variant;
  label: string;
  runs: number;
  seconds: number;
  innerSeconds: number;
  rowsPerSec: number;
  mbPerSec: number;
  peakRssMiB: number | null;
  ratio: number | null;
  cpuSeconds: number | null;
  /** CPU-time ratio vs the baseline: less sensitive than wall time to other load on the host. */
  cpuRatio: number | null;
  outMB: RunSample['outBytes'];
  target: string;
  pass: boolean | null;
  /** The checks that failed, e.g. ["ratio", "RSS"]. */
  missed: string[];
  samples: { seconds: number; cpuSeconds: number | null; peakRssMiB: number | null }[];
}

function summarize(csv: CsvFile, samples: RunSample[], big: boolean): Summary[] {
  const byVariant = new Map<Variant, RunSample[]>();
  for (const s of samples) byVariant.set(s.variant, [...(byVariant.get(s.variant) ?? []), s]);
  const baseline = byVariant.get('baseline');
  const baseSec = baseline ? median(baseline.map((s) => s.wallMs)) / 1000 : null;
  const cpuOf = (runs: RunSample[]) => {
    const xs = runs.map((s) => s.cpuSec).filter((x): x is number => x !== null);
    return xs.length === runs.length ? median(xs) : null;
  };
  const baseCpu = baseline ? cpuOf(baseline) : null;
  const out: Summary[] = [];
  for (const v of VARIANTS) {
    const runs = byVariant.get(v);
    if (!runs?.length) continue;
    const seconds = median(runs.map((s) => s.wallMs)) / 1000;
    const rss = runs.map((s) => s.peakRssKiB).filter((x): x is number => x !== null);
    const peakRssMiB = rss.length ? Math.max(...rss) / 1024 : null;
    const ratio = v === 'baseline' || baseSec === null ? null : seconds / baseSec;
    const cpuSeconds = cpuOf(runs);
    const cpuRatio = v === 'baseline' || baseCpu === null || cpuSeconds === null ? null : cpuSeconds / baseCpu;
    const checks: { name: string; text: string; ok: boolean | null }[] = [];
    if (v !== 'baseline') {
      const limit = v === 'raw-on' ? TARGETS.rawOnRatio : TARGETS.rawOffRatio;
      checks.push({ name: 'ratio', text: `ratio ≤ ${limit.toFixed(2)}`, ok: ratio === null ? null : ratio <= limit });
      if (big)
        checks.push({
          name: 'RSS',
          text: `RSS < ${TARGETS.bigPeakRssMiB} MiB`,
          ok: peakRssMiB === null ? null : peakRssMiB < TARGETS.bigPeakRssMiB,
        });
    }
    const outBytes = runs[runs.length - 1]?.outBytes ?? {};
    out.push({
      variant: v,
      label: LABEL[v],
      runs: runs.length,
      seconds,
      innerSeconds: median(runs.map((s) => s.innerMs)) / 1000,
      rowsPerSec: csv.rows / seconds,
      mbPerSec: csv.bytes / MB / seconds,
      peakRssMiB,
      ratio,
      cpuSeconds,
      cpuRatio,
      outMB: Object.fromEntries(Object.entries(outBytes).map(([k, b]) => [k, Math.round((b / MB) * 10) / 10])),
      target: checks.map((c) => c.text).join(', ') || '—',
      pass: checks.length === 0 ? null : checks.some((c) => c.ok === null) ? null : checks.every((c) => c.ok),
      missed: checks.filter((c) => c.ok === false).map((c) => c.name),
      samples: runs.map((s) => ({
        seconds: s.wallMs / 1000,
        cpuSeconds: s.cpuSec,
        peakRssMiB: s.peakRssKiB === null ? null : s.peakRssKiB / 1024,
      })),
    });
  }
  return out;
}

function resultsTable(summary: Summary[], markdown: boolean): string {
  const head = [
    'variant',
    'runs',
    'seconds',
    'in-process s',
    'CPU s',
    'rows/s',
    'MB/s',
    'peak RSS MiB (max)',
    'ratio b/a',
    'CPU ratio',
    'target',
    'result',
  ];
  const rows = summary.map((s) => [
    s.label,
    String(s.runs),
    s.seconds.toFixed(2),
    s.innerSeconds.toFixed(2),
    s.cpuSeconds === null ? 'n/a' : s.cpuSeconds.toFixed(2),
    fmtInt(s.rowsPerSec),
    s.mbPerSec.toFixed(1),
    s.peakRssMiB === null ? 'n/a' : fmtInt(s.peakRssMiB),
    s.variant === 'baseline' ? '1.00' : s.ratio === null ? 'n/a' : s.ratio.toFixed(2),
    s.variant === 'baseline' ? '1.00' : s.cpuRatio === null ? 'n/a' : s.cpuRatio.toFixed(2),
    s.target,
    s.pass === null ? '—' : s.pass ? 'PASS' : `FAIL (${s.missed.join(', ')})`,
  ]);
  return renderTable(head, rows, markdown, [false, true, true, true, true, true, true, true, true, true, false, false]);
}

function profileTable(p: Profile, markdown: boolean): string {
  const rows = p.phases
    .filter((ph) => ph.ms >= 1)
    .map((ph) => [
      ph.phase,
      String(ph.calls),
      (ph.ms / 1000).toFixed(3),
      `${((ph.ms / p.totalMs) * 100).toFixed(1)} %`,
    ]);
  rows.push(['total (in process, excl. node start-up)', '', (p.totalMs / 1000).toFixed(3), '100 %']);
  return renderTable(['phase', 'calls', 'seconds', 'share'], rows, markdown, [false, true, true, true]);
}

function csvLine(csv: CsvFile): string {
  return `${csv.path}: ${csv.rows.toLocaleString('en-US')} rows, ${(csv.bytes / MB).toFixed(1)} MB (${(csv.bytes / (1024 * MIB)).toFixed(2)} GiB)${csv.reused ? ', reused' : ''}`;
}

/** The checked-out commit (read-only; the working tree may hold uncommitted changes). */

// ─── main ──────────────────────────────────────────────────────────────────────────────

interface Suite {
  name: string;
  csv: CsvFile;
  big: boolean;
  samples: RunSample[];
  summary: Summary[];
  profile?: Profile | undefined;
  diagnose?: DiagnoseRow[] | undefined;
}

/**
 * Reads the file once so every variant finds it in the page cache: without this the first
 * timed run of an un-warmed suite (the big file) pays the disk reads for all the others.
 */
async function warmPageCache(path: string): Promise<void> {
  const started = performance.now();
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(8 * MIB);
    while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
  } finally {
    await fh.close();
  }
  log(`read ${path} once to warm the page cache (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

async function runSuite(
  name: string,
  csv: CsvFile,
  opts: Options,
  reps: number,
  warmup: number,
  big: boolean,
  profile: boolean,
): Promise<Suite> {
  const samples: RunSample[] = [];
  await warmPageCache(csv.path);
  const verified = new Set<Variant>();
  for (let w = 0; w < warmup; w++) {
    for (const v of opts.variants) {
      log(`${name}: warm-up ${w + 1}/${warmup} ${v}`);
      await runVariant(v, csv, opts, `${name}-warmup`, !verified.has(v));
      verified.add(v);
    }
  }
  for (let r = 0; r < reps; r++) {
    for (const v of opts.variants) {
      log(`${name}: run ${r + 1}/${reps} ${v} …`);
      const s = await runVariant(v, csv, opts, name, !verified.has(v));
      verified.add(v);
      log(
        `${name}: run ${r + 1}/${reps} ${v}: ${(s.wallMs / 1000).toFixed(2)} s, peak RSS ${s.peakRssKiB === null ? 'n/a' : `${Math.round(s.peakRssKiB / 1024)} MiB`}`,
      );
      samples.push(s);
    }
  }
  let prof: Profile | undefined;
  if (profile) {
    log(`${name}: profiled dip run (raw zone on) …`);
    prof = await runProfile(csv, opts);
  }
  return { name, csv, big, samples, summary: summarize(csv, samples, big), profile: prof };
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parseOptions(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    process.stderr.write(`${join(ROOT, 'dist')} is missing: build first (npm run build)\n`);
    return 1;
  }
  await mkdir(WORK, { recursive: true });
  await rm(DIST, { recursive: true, force: true });
  await cp(join(ROOT, 'dist'), DIST, { recursive: true });
  const machine = { ...machineInfo(ROOT) };
  const suites: Suite[] = [];
  try {
    if (!opts.bigOnly) {
      const csv = await ensureCsv(opts.rows, false);
      log(csvLine(csv));
      const main = await runSuite('main', csv, opts, opts.reps, opts.warmup, false, opts.profile);
      if (opts.diagnose) main.diagnose = await runDiagnose(csv, opts);
      suites.push(main);
    }
    if (opts.big) {
      const bigCsv = await ensureCsv(opts.bigRows, true);
      log(csvLine(bigCsv));
      if (bigCsv.bytes <= TARGETS.bigFileBytes) {
        log(
          `warning: the big CSV is ${(bigCsv.bytes / (1024 * MIB)).toFixed(2)} GiB, not more than 2 GiB; raise --big-rows`,
        );
      }
      suites.push(await runSuite('big', bigCsv, opts, opts.bigReps, 0, true, false));
    }
  } catch (err) {
    if (err instanceof BenchFailure) {
      process.stderr.write(`\nFAILED: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const missed = suites.flatMap((s) =>
    s.summary
      .filter((r) => r.pass === false)
      .map((r) => `${s.name}: ${r.label} — missed ${r.missed.join(' and ')} (target ${r.target})`),
  );
  const doc = {
    benchmark: 'files',
    machine,
    config: {
      threads: opts.threads,
      memoryLimit: opts.memory,
      reps: opts.reps,
      warmup: opts.warmup,
      compression: 'zstd',
    },
    targets: TARGETS,
    suites: suites.map((s) => ({
      name: s.name,
      csv: { path: s.csv.path, rows: s.csv.rows, bytes: s.csv.bytes, wide: s.csv.wide },
      results: s.summary,
      profile: s.profile ? { totalMs: s.profile.totalMs, phases: s.profile.phases } : undefined,
      diagnose: s.diagnose,
    })),
    missed,
  };
  // The last run's figures, whatever the output format, for comparing runs later.
  await writeFile(join(WORK, 'last-files.json'), `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const md = opts.markdown;
    const p = (s: string) => process.stdout.write(`${s}\n`);
    p(
      `\nfiles benchmark · ${machine.date} · commit ${machine.commit} · ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB · node ${machine.node}`,
    );
    p(
      `load average (1/5/15 min) at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')} — other work on the host skews wall times; CPU s is steadier`,
    );
    p(
      `DuckDB threads=${opts.threads}, memory_limit=${opts.memory} on both sides; Parquet zstd; median of ${opts.reps} (big: ${opts.bigReps}) after ${opts.warmup} warm-up`,
    );
    for (const s of suites) {
      p(`\n${s.name === 'big' ? 'big file' : 'main file'} — ${csvLine(s.csv)}\n`);
      p(resultsTable(s.summary, md));
      const outs = s.summary.map(
        (r) =>
          `${r.variant}: ${Object.entries(r.outMB)
            .map(([k, v]) => `${k} ${v} MB`)
            .join(', ')}`,
      );
      p(`\noutput sizes — ${outs.join(' · ')}`);
      if (s.profile) {
        p(`\nwhere a dip run (raw zone on) spends its time — one profiled run, in process:\n`);
        p(profileTable(s.profile, md));
      }
      if (s.diagnose) {
        p(`\ndip's statements rebuilt step by step, each alone in the baseline process (median of ${opts.reps}):\n`);
        p(diagnoseTable(s.diagnose, md));
      }
    }
    p(missed.length ? `\ntargets missed:\n  ${missed.join('\n  ')}` : '\nall targets met');
  }
  return opts.check && missed.length ? 2 : 0;
}
