/**
 * Incremental silver benchmark (`npm run bench -- silver --incremental`): the silver table of
 * bench/silver.ts is built once from N rows (default 5M), then 1% new/changed rows land in
 * bronze (half updates of existing ids with a later updatedAt, half new ids), and the next
 * build is timed two ways from the SAME state, interleaved, median of --runs:
 *
 *   (a) the same build's full refresh — `dip transform bench --full-refresh`;
 *   (b) the incremental build        — `dip transform bench`.
 *
 * The state (catalog file) is restored before every timed run, so each run does the same work.
 * Targets: (b) ≤ 0.15 × (a) in wall time, and (b)'s peak RSS ≤ memory_limit + 300 MiB. Both
 * results must agree on the 15-figure fingerprint of bench/silver.ts.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtInt, machineInfo, median, renderTable } from './common.js';
import { BenchFailure, failIfBad, spawnMeasured, syncDisks, type Measured } from './measure.js';
import {
  ensureInput,
  filesUnder,
  fingerprintSql,
  firstLine,
  log,
  projectYaml,
  warmPageCache,
  type InputFile,
  type Options,
} from './silver.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'silver-incremental');
const DIST = join(WORK, 'dist');
const DIP_CLI = join(DIST, 'cli', 'main.js');
const PIPELINE = 'bench';
const TARGET_RATIO = 0.15;
const RSS_OVERHEAD_MIB = 300;
const MIB = 1024 * 1024;

/** DuckDB's memory limit in MiB (its units: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024). */
function memoryMiB(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)?\s*$/i.exec(text);
  if (!m) return Number.NaN;
  const unit = (m[2] ?? 'B').toUpperCase();
  const pow = { K: 1, M: 2, G: 3, T: 4 }[unit[0] as 'K' | 'M' | 'G' | 'T'] ?? 0;
  const base = unit.includes('I') ? 1024 : 1000;
  return (Number(m[1]) * base ** pow) / MIB;
}

/**
 * 1% of the input's rows, changed: ids with id % 200 = 3 come again with updatedAt 60 days
 * later, one more view and an edited title (updates); ids with id % 200 = 5 come again as
 * id + 1e9 (new keys). Every other value is the input's.
 */
function deltaSql(input: string, out: string): string {
  const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return `COPY (
    SELECT * REPLACE (
      CASE WHEN id % 200 = 5 THEN id + 1000000000 ELSE id END AS id,
      CASE WHEN id % 200 = 3 THEN title || ' (edited)' ELSE title END AS title,
      CASE WHEN id % 200 = 3 THEN updatedAt + INTERVAL 60 DAY ELSE updatedAt END AS updatedAt,
      CASE WHEN id % 200 = 3 THEN {'views': metrics.views + 1, 'likes': metrics.likes, 'comments': metrics.comments, 'shares': metrics.shares} ELSE metrics END AS metrics
    ) FROM read_parquet(${lit(input)}) WHERE id % 200 IN (3, 5)
  ) TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd)`;
}

async function duck(sql: string): Promise<Record<string, unknown>[]> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: String(cpus().length) });
  const conn = await db.connect();
  try {
    return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

function dip(project: string, args: string[]): Promise<Measured> {
  syncDisks();
  return spawnMeasured(process.execPath, [DIP_CLI, ...args, '-p', project]);
}

async function query(project: string, sql: string): Promise<Record<string, unknown>[]> {
  const m = await dip(project, ['query', '--json', sql]);
  failIfBad(`dip query ${sql}`, m);
  return JSON.parse(m.stdout) as Record<string, unknown>[];
}

/** The catalog files of a project (SQLite and its WAL), copied aside or back. */
async function copyCatalog(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of await readdir(to)) if (f.startsWith('catalog.db')) await rm(join(to, f), { force: true });
  for (const f of await readdir(from)) if (f.startsWith('catalog.db')) await cp(join(from, f), join(to, f));
}

interface Sample {
  variant: 'full' | 'incremental';
  wallMs: number;
  cpuSec: number | null;
  peakRssKiB: number | null;
  rows: number;
  newRows: number;
  mode: string;
  fingerprint: Record<string, string>;
}

export async function runIncremental(opts: Options): Promise<number> {
  if (!existsSync(join(opts.dist, 'cli', 'main.js'))) {
    process.stderr.write(`${join(opts.dist, 'cli', 'main.js')} is missing: build first (npm run build)\n`);
    return 1;
  }
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  await cp(opts.dist, DIST, { recursive: true });
  const machine = machineInfo(ROOT);
  const project = join(WORK, 'project');
  const inputs = join(WORK, 'inputs');
  const snapshot = join(WORK, 'snapshot');
  const samples: Sample[] = [];
  let input: InputFile;
  let deltaRows: number;
  try {
    input = await ensureInput(opts.rows);
    await mkdir(inputs, { recursive: true });
    await mkdir(project, { recursive: true });
    await symlink(input.path, join(inputs, 'a-base.parquet'));
    await writeFile(join(project, 'dip.yaml'), projectYaml(input, opts, join(inputs, '*.parquet')));
    log(`dip run --no-silver: ${fmtInt(input.rows)} rows → bronze (not timed) …`);
    failIfBad('dip run (base)', await dip(project, ['run', PIPELINE, '--no-silver', '--quiet', '--json']));
    log('dip transform: the table at the base (not timed) …');
    const base = await dip(project, ['transform', PIPELINE, '--quiet', '--json']);
    failIfBad('dip transform (base)', base);
    log(`base build: ${(base.wallMs / 1000).toFixed(1)} s, peak RSS ${Math.round((base.peakRssKiB ?? 0) / 1024)} MiB`);
    const delta = join(inputs, 'b-delta.parquet');
    await duck(deltaSql(input.path, delta));
    deltaRows = Number((await duck(`SELECT count(*) AS n FROM read_parquet('${delta}')`))[0]?.['n']);
    log(
      `delta: ${fmtInt(deltaRows)} rows (${((100 * deltaRows) / input.rows).toFixed(2)}% of the input) → bronze (not timed) …`,
    );
    failIfBad('dip run (delta)', await dip(project, ['run', PIPELINE, '--no-silver', '--quiet', '--json']));
    await copyCatalog(join(project, '.dip'), snapshot);
    await warmPageCache(await filesUnder(join(project, '.dip', 'lake'), '.parquet'));
  } catch (err) {
    if (err instanceof BenchFailure) {
      process.stderr.write(`\nFAILED: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  const once = async (variant: Sample['variant'], r: number): Promise<Sample> => {
    await copyCatalog(snapshot, join(project, '.dip'));
    log(`run ${r + 1}/${opts.runs} ${variant} …`);
    const m = await dip(project, [
      'transform',
      PIPELINE,
      ...(variant === 'full' ? ['--full-refresh'] : []),
      '--quiet',
      '--json',
    ]);
    failIfBad(`dip transform (${variant})`, m);
    const result = (JSON.parse(m.stdout) as { mode: string; rows: number; newRows: number }[])[0];
    if (!result) throw new BenchFailure(`dip transform printed no result: ${m.stdout.slice(0, 500)}`);
    const fp = (await query(project, fingerprintSql('silver.posts')))[0] ?? {};
    const s: Sample = {
      variant,
      wallMs: m.wallMs,
      cpuSec: m.cpuSec,
      peakRssKiB: m.peakRssKiB,
      rows: result.rows,
      newRows: result.newRows,
      mode: result.mode,
      fingerprint: Object.fromEntries(Object.entries(fp).map(([k, v]) => [k, String(v)])),
    };
    log(
      `run ${r + 1}/${opts.runs} ${variant}: ${s.mode} build, ${(s.wallMs / 1000).toFixed(2)} s, peak RSS ${Math.round((s.peakRssKiB ?? 0) / 1024)} MiB, ${fmtInt(s.rows)} rows (${fmtInt(s.newRows)} new/changed)`,
    );
    return s;
  };
  let failure: string | undefined;
  try {
    for (let r = 0; r < opts.runs; r++) {
      samples.push(await once('incremental', r));
      samples.push(await once('full', r));
    }
  } catch (err) {
    if (!(err instanceof BenchFailure)) throw err;
    failure = firstLine(err.message);
  }
  const inc = samples.filter((s) => s.variant === 'incremental');
  const full = samples.filter((s) => s.variant === 'full');
  const secs = (xs: Sample[]) => median(xs.map((s) => s.wallMs)) / 1000;
  const cpu = (xs: Sample[]) => median(xs.map((s) => s.cpuSec ?? Number.NaN));
  const rss = (xs: Sample[]) => Math.max(...xs.map((s) => (s.peakRssKiB ?? 0) / 1024));
  const notes: string[] = [];
  const ref = full[0]?.fingerprint;
  for (const s of samples) {
    const diff = ref ? Object.keys(ref).filter((k) => s.fingerprint[k] !== ref[k]) : [];
    if (diff.length) failure ??= `${s.variant} differs from the full refresh in ${diff.join(', ')}`;
  }
  if (inc.some((s) => s.mode !== 'incremental')) failure ??= 'the incremental build was not incremental';
  if (ref)
    notes.push(`content: every run matches the full refresh on all ${Object.keys(ref).length} fingerprint figures`);
  const limit = memoryMiB(opts.memory);
  const ratio = inc.length && full.length ? secs(inc) / secs(full) : Number.NaN;
  const cpuRatio = inc.length && full.length ? cpu(inc) / cpu(full) : Number.NaN;
  const rssTarget = limit + RSS_OVERHEAD_MIB;
  const rows = [
    ...(full.length ? [['a) dip transform --full-refresh (same state)', full] as const] : []),
    ...(inc.length ? [['b) dip transform, incremental', inc] as const] : []),
  ].map(([label, xs]) => [
    label,
    String(xs.length),
    secs([...xs]).toFixed(2),
    cpu([...xs]).toFixed(2),
    fmtInt(rss([...xs])),
    fmtInt(xs[0]?.newRows ?? 0),
    fmtInt(xs[0]?.rows ?? 0),
    xs === inc ? ratio.toFixed(3) : '1.000',
    xs === inc ? cpuRatio.toFixed(3) : '1.000',
    xs === inc ? `≤ ${TARGET_RATIO}, RSS ≤ ${fmtInt(rssTarget)}` : '—',
    xs === inc
      ? `${ratio <= TARGET_RATIO ? 'PASS' : 'FAIL'} / RSS ${rss([...xs]) <= rssTarget ? 'PASS' : 'FAIL'}`
      : '—',
  ]);
  const doc = {
    benchmark: 'silver-incremental',
    machine: { ...machine, loadAverageAtEnd: loadavg().map((x) => Math.round(x * 100) / 100) },
    config: { rows: opts.rows, deltaRows, threads: opts.threads, memoryLimit: opts.memory, runs: opts.runs },
    results: {
      fullSeconds: full.length ? secs(full) : null,
      incrementalSeconds: inc.length ? secs(inc) : null,
      ratio,
      cpuRatio,
      incrementalPeakRssMiB: inc.length ? rss(inc) : null,
      fullPeakRssMiB: full.length ? rss(full) : null,
      rssTargetMiB: rssTarget,
    },
    samples: samples.map(({ fingerprint: _f, ...s }) => s),
    notes,
    failure: failure ?? null,
  };
  await writeFile(join(BENCH_DIR, '.work', 'last-silver-incremental.json'), `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  else {
    const p = (t: string) => process.stdout.write(`${t}\n`);
    p(`\nsilver incremental benchmark · ${machine.date} · commit ${machine.commit} · node ${machine.node}`);
    p(
      `load average at start ${machine.loadAverageAtStart.join(' ')}, at end ${doc.machine.loadAverageAtEnd.join(' ')}`,
    );
    p(
      `${fmtInt(input.rows)} input rows, ${fmtInt(deltaRows)} new/changed rows landed after the base build; DuckDB threads=${opts.threads}, memory_limit=${opts.memory}; median of ${opts.runs}, interleaved\n`,
    );
    p(
      renderTable(
        [
          'variant',
          'runs',
          'seconds',
          'CPU s',
          'peak RSS MiB',
          'new/changed',
          'rows',
          'ratio',
          'CPU ratio',
          'target',
          'result',
        ],
        rows,
        opts.markdown,
        [false, true, true, true, true, true, true, true, true, false, false],
      ),
    );
    for (const n of notes) p(`\n${n}`);
    if (failure) p(`\nFAILED: ${failure}`);
  }
  if (!opts.keep) await rm(join(WORK, 'project'), { recursive: true, force: true });
  if (failure) return 1;
  return opts.check && !(ratio <= TARGET_RATIO && rss(inc) <= rssTarget) ? 2 : 0;
}
