/**
 * Landing benchmark (issue 15): one file of each format into bronze with the raw zone on and
 * off, against DuckDB alone copying the same file to Parquet, all in one run:
 *
 *   (a) baseline — COPY (SELECT * FROM read_csv|read_parquet|read_json(file)) TO '….parquet'
 *                  in its own plain node process, dip's thread count and memory limit;
 *   (b) dip run  — `node dist/cli/main.js run` of the same file, raw zone off and on.
 *
 * Data is generated with DuckDB (the mixed columns of bench/files.ts) unless `--file` names a
 * real one. Median of `--reps` timed runs after `--warmup`, variants interleaved; peak RSS is
 * the child's VmHWM (highest of the runs). Every dip run is checked: N rows in bronze, and
 * with raw on N records in raw.<table> and the raw bytes on disk reported.
 *
 *   npm run bench -- landing [--format csv|parquet|json] [--rows N] [--file PATH] …
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, fmtInt, median, parseOrExit, renderTable, variantList } from './common.js';
import { mixedColumnsSql } from './files.js';
import { BenchFailure, failIfBad, spawnMeasured, syncDisks } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work');
const DIST = join(WORK, 'dist-landing');
const DIP_CLI = join(DIST, 'cli', 'main.js');
const BASELINE = join(BENCH_DIR, 'baseline-copy.mjs');
const TABLE = 'events';

type Format = 'csv' | 'parquet' | 'json';
type Variant = 'baseline' | 'raw-off' | 'raw-on';
const VARIANTS: readonly Variant[] = ['baseline', 'raw-off', 'raw-on'];
const DEFAULT_ROWS: Record<Format, number> = { csv: 5_000_000, parquet: 3_000_000, json: 200_000 };
/** Issue 15's targets (ratio to the baseline); undefined: not a target. */
const TARGETS: Record<Format, Partial<Record<Variant, number>>> = {
  csv: { 'raw-on': 1.5, 'raw-off': 1.15 },
  parquet: { 'raw-on': 1.5, 'raw-off': 1.15 },
  json: { 'raw-on': 1.8 },
};

const HELP = `npm run bench -- landing [options]

  --format F        csv, parquet or json (a JSON array), default parquet
  --rows N          rows to generate (default: csv 5M, parquet 3M, json 200k)
  --file PATH       land this file instead (format from its extension), e.g. real public data
  --real NAME       a data file of the vega-datasets npm package (fetched once with npm pack into
                    bench/.cache/): flights-3m.parquet (3M rows), flights-200k.json (200k records)
  --reps N          timed runs per variant, median reported (default 3)
  --warmup N        untimed runs per variant first (default 1)
  --threads N       DuckDB threads, both sides (default 2)
  --memory SIZE     DuckDB memory limit, both sides (default 1GB)
  --variants LIST   comma list of baseline,raw-off,raw-on (default all)
  --markdown        print the table as Markdown
  --json            print one JSON document on stdout
`;

interface Options {
  format: Format;
  rows: number;
  file: string | undefined;
  reps: number;
  warmup: number;
  threads: number;
  memory: string;
  variants: Variant[];
  markdown: boolean;
  json: boolean;
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      format: { type: 'string', default: 'parquet' },
      rows: { type: 'string' },
      file: { type: 'string' },
      real: { type: 'string' },
      reps: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      threads: { type: 'string', default: '2' },
      memory: { type: 'string', default: '1GB' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      markdown: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  const file = values.real ? realFile(values.real) : values.file ? resolve(values.file) : undefined;
  const format = (file ? formatOf(file) : values.format) as Format;
  if (!['csv', 'parquet', 'json'].includes(format))
    throw new Error(`--format ${format}: expected csv, parquet or json`);
  return {
    format,
    rows: values.rows ? count(values.rows, 'rows') : DEFAULT_ROWS[format],
    file,
    reps: Math.max(1, count(values.reps, 'reps')),
    warmup: count(values.warmup, 'warmup'),
    threads: Math.max(1, count(values.threads, 'threads')),
    memory: values.memory,
    variants: variantList(values.variants, VARIANTS),
    markdown: values.markdown,
    json: values.json,
  };
}

/** Real public data: vega-datasets ships flights-3m.parquet and flights-200k.json (a JSON array). */
const VEGA = 'vega-datasets@3.2.1';
const CACHE = join(BENCH_DIR, '.cache', 'vega-datasets');

function realFile(name: string): string {
  const path = join(CACHE, 'package', 'data', name);
  if (!existsSync(path)) {
    mkdirSync(CACHE, { recursive: true });
    log(`fetching ${VEGA} with npm pack …`);
    const packed = execFileSync('npm', ['pack', VEGA, '--silent'], { cwd: CACHE, encoding: 'utf8' }).trim();
    execFileSync('tar', ['xzf', packed.split('\n').pop() ?? ''], { cwd: CACHE });
  }
  if (!existsSync(path)) throw new Error(`--real ${name}: ${VEGA} has no data/${name}`);
  return path;
}

function formatOf(path: string): string {
  const ext = extname(path.replace(/\.(gz|zst)$/, '')).slice(1);
  return ext === 'ndjson' ? 'json' : ext;
}

const log = (msg: string) => process.stderr.write(`[bench landing] ${msg}\n`);
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

interface Input {
  path: string;
  format: Format;
  rows: number;
  bytes: number;
  real: boolean;
}

/** The generated file for a format and row count (reused when present), or the named real file. */
async function ensureInput(opts: Options): Promise<Input> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: String(cpus().length) });
  const conn = await db.connect();
  try {
    if (opts.file) {
      const rel = reader(opts.format, opts.file);
      const rows = Number((await conn.runAndReadAll(`SELECT count(*) AS n FROM ${rel}`)).getRowObjectsJson()[0]?.['n']);
      return { path: opts.file, format: opts.format, rows, bytes: (await stat(opts.file)).size, real: true };
    }
    const path = join(WORK, `landing-${opts.rows}.${opts.format}`);
    if (!existsSync(path)) {
      log(`generating ${path} with DuckDB …`);
      await mkdir(WORK, { recursive: true });
      const to = {
        csv: 'FORMAT csv, HEADER true',
        parquet: 'FORMAT parquet, COMPRESSION snappy',
        json: 'FORMAT json, ARRAY true',
      }[opts.format];
      await conn.run(
        `COPY (SELECT ${mixedColumnsSql(false)} FROM range(${opts.rows}) t(i)) TO ${lit(`${path}.tmp`)} (${to})`,
      );
      await rename(`${path}.tmp`, path);
    }
    return { path, format: opts.format, rows: opts.rows, bytes: (await stat(path)).size, real: false };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

function reader(format: Format, path: string): string {
  if (format === 'csv') return `read_csv(${lit(path)})`;
  if (format === 'parquet') return `read_parquet(${lit(path)})`;
  return `read_json(${lit(path)}${path.endsWith('.ndjson') ? ", format='newline_delimited'" : ", format='array'"})`;
}

interface Sample {
  variant: Variant;
  wallMs: number;
  peakRssKiB: number | null;
  cpuSec: number | null;
  rawBytes?: number;
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

async function runBaseline(input: Input, opts: Options, tag: string): Promise<Sample> {
  const dir = join(WORK, `landing-baseline-${tag}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  syncDisks();
  const m = await spawnMeasured(process.execPath, [
    BASELINE,
    JSON.stringify({
      sql: `COPY (SELECT * FROM ${reader(input.format, input.path)}) TO ${lit(join(dir, 'out.parquet'))} (FORMAT parquet, COMPRESSION zstd)`,
      threads: opts.threads,
      memoryLimit: opts.memory,
      tempDirectory: join(dir, 'spill'),
    }),
  ]);
  failIfBad('baseline', m);
  const result = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { rows: number };
  if (result.rows !== input.rows) throw new BenchFailure(`baseline wrote ${result.rows} rows, expected ${input.rows}`);
  await rm(dir, { recursive: true, force: true });
  return { variant: 'baseline', wallMs: m.wallMs, peakRssKiB: m.peakRssKiB, cpuSec: m.cpuSec };
}

async function dipCount(dir: string, sql: string): Promise<number> {
  const m = await spawnMeasured(process.execPath, [DIP_CLI, 'query', '--json', '-p', dir, sql]);
  failIfBad(`dip query ${sql}`, m);
  return Number((JSON.parse(m.stdout) as { n: string }[])[0]?.n ?? Number.NaN);
}

async function runDip(input: Input, variant: 'raw-on' | 'raw-off', opts: Options, tag: string): Promise<Sample> {
  const dir = join(WORK, `landing-${variant}-${tag}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'dip.yaml'),
    `version: 1
project: bench
engine: { threads: ${opts.threads}, memory_limit: ${opts.memory} }
pipelines:
  bench:
    raw: { enabled: ${variant === 'raw-on'} }
    sources:
      files:
        type: files
        streams:
          ${TABLE}: { path: ${JSON.stringify(input.path)}, write_disposition: append }
`,
  );
  syncDisks();
  const m = await spawnMeasured(process.execPath, [DIP_CLI, 'run', '--quiet', '--json', '-p', dir]);
  failIfBad(`dip run (${variant})`, m);
  const run = (JSON.parse(m.stdout) as { status: string; stats: { streams: Record<string, { rows: number }> } }[])[0];
  if (run?.status !== 'succeeded') throw new BenchFailure(`dip run (${variant}): ${m.stdout.slice(0, 2000)}`);
  const bronze = await dipCount(dir, `select count(*) n from bronze.${TABLE}`);
  if (bronze !== input.rows) throw new BenchFailure(`bronze holds ${bronze} rows, expected ${input.rows}`);
  const sample: Sample = { variant, wallMs: m.wallMs, peakRssKiB: m.peakRssKiB, cpuSec: m.cpuSec };
  if (variant === 'raw-on') {
    if (tag.endsWith('-0')) {
      const raw = await dipCount(dir, `select count(*) n from raw.${TABLE}`);
      if (raw !== input.rows) throw new BenchFailure(`raw holds ${raw} records, expected ${input.rows}`);
    }
    sample.rawBytes = await dirBytes(join(dir, '.dip', 'lake', 'raw'));
  }
  await rm(dir, { recursive: true, force: true });
  return sample;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parseOptions(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  await rm(DIST, { recursive: true, force: true });
  await cp(join(ROOT, 'dist'), DIST, { recursive: true });
  const input = await ensureInput(opts);
  log(
    `${basename(input.path)}: ${fmtInt(input.rows)} rows, ${(input.bytes / 1e6).toFixed(1)} MB, load ${loadavg()[0]?.toFixed(2)}`,
  );
  const samples: Sample[] = [];
  try {
    for (let rep = -opts.warmup; rep < opts.reps; rep++) {
      for (const v of opts.variants) {
        const tag = rep < 0 ? `w${-rep}` : `r-${rep}`;
        const s =
          v === 'baseline'
            ? await runBaseline(input, opts, tag)
            : await runDip(input, v, opts, rep < 0 ? tag : `r-${rep}`);
        log(
          `${v} ${rep < 0 ? '(warm-up)' : `#${rep + 1}`}: ${(s.wallMs / 1000).toFixed(2)} s, ${Math.round((s.peakRssKiB ?? 0) / 1024)} MiB`,
        );
        if (rep >= 0) samples.push(s);
      }
    }
  } catch (err) {
    if (err instanceof BenchFailure) {
      log(`FAILED: ${err.message}`);
      return 1;
    }
    throw err;
  }
  const base = median(samples.filter((s) => s.variant === 'baseline').map((s) => s.wallMs));
  const rows = opts.variants.map((v) => {
    const mine = samples.filter((s) => s.variant === v);
    const wall = median(mine.map((s) => s.wallMs));
    const rss = Math.max(...mine.map((s) => s.peakRssKiB ?? 0)) / 1024;
    const cpu = median(mine.map((s) => s.cpuSec ?? 0));
    const raw = mine.find((s) => s.rawBytes !== undefined)?.rawBytes;
    const target = TARGETS[input.format][v];
    const ratio = base ? wall / base : Number.NaN;
    return {
      variant: v,
      seconds: wall / 1000,
      cpu,
      peakRssMiB: rss,
      ratio,
      rawMB: raw === undefined ? undefined : raw / 1e6,
      target,
      pass: target === undefined ? undefined : ratio <= target,
    };
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ input, load: loadavg(), reps: opts.reps, rows }, null, 2)}\n`);
    return 0;
  }
  const label: Record<Variant, string> = {
    baseline: `a) DuckDB COPY read_${input.format} → parquet`,
    'raw-off': 'b) dip run, raw zone off',
    'raw-on': 'b) dip run, raw zone on',
  };
  process.stdout.write(
    `${basename(input.path)}${input.real ? ' (real data)' : ''}: ${fmtInt(input.rows)} rows, ${(input.bytes / 1e6).toFixed(1)} MB; median of ${opts.reps}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  process.stdout.write(
    `${renderTable(
      ['variant', 'seconds', 'CPU s', 'peak RSS MiB', 'raw MB', 'ratio b/a', 'target', 'result'],
      rows.map((r) => [
        label[r.variant],
        r.seconds.toFixed(2),
        r.cpu.toFixed(2),
        fmtInt(r.peakRssMiB),
        r.rawMB === undefined ? '—' : r.rawMB.toFixed(1),
        r.ratio.toFixed(2),
        r.target === undefined ? '—' : `≤ ${r.target}`,
        r.pass === undefined ? '—' : r.pass ? 'PASS' : 'FAIL',
      ]),
      opts.markdown,
      [false, true, true, true, true, true, false, false],
    )}\n`,
  );
  return 0;
}
