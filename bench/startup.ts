/**
 * CLI start-up benchmark (issue 13): how long `dip` takes before it does anything, against bare
 * `node -e ''` measured in the same run, interleaved, so that a machine busy with other work
 * slows every variant alike and the ratios stay meaningful. Variants:
 *
 *   bare     node -e ''
 *   version  node <dist>/cli/main.js --version          (target: < 0.3 s, i.e. ≤ 2× bare at 0.15 s)
 *   help     node <dist>/cli/main.js --help             (every command group loaded; no target)
 *   run      node <dist>/cli/main.js run -p <project>   a no-op run: every input file was ingested
 *                                                        already (target: < 0.6 s, i.e. ≤ 4× bare)
 *
 * The project (written to bench/.work/startup/project, ingested once untimed) has one files
 * source with an append and a merge stream, and a silver table with a check, so the no-op run
 * opens the lake, plans both streams against the file ledger, finds nothing new and builds no
 * silver. Every timed `run` must succeed; a last `run --json` must report 0 rows and 0 commits.
 * `--compare DIR` also times another build (e.g. dist/ of the commit before) in the same rounds.
 *
 * Wall time is spawn → exit of the child (bench/measure.ts); CPU time is the child's user+sys,
 * read from this process's cutime/cstime (/proc/self/stat) around each run (10 ms ticks).
 *
 *   npm run bench -- startup [--runs N] [--compare DIR] [--check] [--json] [--markdown]
 */
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, machineInfo, median, parseOrExit, renderTable } from './common.js';
import { BenchFailure, CLOCK_TICKS, failIfBad, spawnMeasured } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'startup');
const PROJECT = join(WORK, 'project');
/** The issue's figures: bare node took 0.15 s on this machine when it was quiet. */
const BARE_QUIET_S = 0.15;
const TARGET_S: Record<string, number> = { version: 0.3, run: 0.6 };

const HELP = `npm run bench -- startup [options]

  --runs N          timed runs per variant, interleaved (default 15)
  --warmup N        untimed rounds first (default 2)
  --dist DIR        the dip build under test (default: dist/ of this repository)
  --compare DIR     also time this build (e.g. dist/ of the commit before), labelled "before"
  --check           exit 2 when a ratio target is missed (version ≤ ${TARGET_S['version']! / BARE_QUIET_S}× bare, run ≤ ${TARGET_S['run']! / BARE_QUIET_S}× bare)
  --json            print one JSON document on stdout instead of tables
  --markdown        print tables as Markdown
`;

interface Options {
  runs: number;
  warmup: number;
  dist: string;
  compare: string | undefined;
  check: boolean;
  json: boolean;
  markdown: boolean;
}

function parse(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      runs: { type: 'string', default: '15' },
      warmup: { type: 'string', default: '2' },
      dist: { type: 'string', default: join(ROOT, 'dist') },
      compare: { type: 'string' },
      check: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  const runs = count(values.runs, 'runs');
  if (runs < 1) throw new Error('--runs must be at least 1');
  return {
    runs,
    warmup: count(values.warmup, 'warmup'),
    dist: resolve(values.dist),
    compare: values.compare ? resolve(values.compare) : undefined,
    check: values.check,
    json: values.json,
    markdown: values.markdown,
  };
}

interface Variant {
  name: string;
  label: string;
  cmd: string;
  args: string[];
}

/** CPU time (user+sys, ms) of the children this process has waited for so far. */
function childrenCpuMs(): number {
  const st = readFileSync('/proc/self/stat', 'utf8');
  const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS) * 1000;
}

const hasProc = existsSync('/proc/self/stat');

async function writeProject(cli: string): Promise<void> {
  await rm(PROJECT, { recursive: true, force: true });
  await mkdir(join(PROJECT, 'data', 'orders'), { recursive: true });
  await mkdir(join(PROJECT, 'data', 'customers'), { recursive: true });
  for (const day of [1, 2, 3]) {
    const rows = Array.from(
      { length: 200 },
      (_, i) =>
        `${day * 1000 + i},c${i % 40},${(i % 7) + 1},${(i * 1.25).toFixed(2)},2026-11-0${day}T10:00:00Z,${i % 5 ? 'paid' : 'refunded'}`,
    );
    await writeFile(
      join(PROJECT, 'data', 'orders', `orders-2026-11-0${day}.csv`),
      `order_id,customer_id,quantity,unit_price,ordered_at,status\n${rows.join('\n')}\n`,
    );
  }
  const customers = Array.from({ length: 40 }, (_, i) =>
    JSON.stringify({ customer_id: `c${i}`, name: `Customer ${i}`, country: ['PT', 'DE', 'FR'][i % 3] }),
  );
  await writeFile(join(PROJECT, 'data', 'customers', 'customers-2026-11-01.ndjson'), `${customers.join('\n')}\n`);
  await writeFile(
    join(PROJECT, 'dip.yaml'),
    `version: 1
project: startup
storage: { kind: local, path: .dip/lake }
catalog: { kind: sqlite, path: .dip/catalog.db }
pipelines:
  shop:
    sources:
      exports:
        type: files
        streams:
          orders: { path: data/orders/*.csv, write_disposition: append, primary_key: [order_id] }
          customers: { path: data/customers/*.ndjson, write_disposition: merge, primary_key: [customer_id] }
    silver:
      orders:
        from: orders
        primary_key: [order_id]
        checks:
          - { type: not_null, column: order_id }
`,
  );
  // The one run that ingests everything (not timed); afterwards every run is a no-op.
  failIfBad(
    'dip run (initial ingest)',
    await spawnMeasured(process.execPath, [cli, 'run', '--quiet', '-p', PROJECT], PROJECT),
  );
}

/** The no-op run must be one: succeeded, nothing read, nothing committed. */
async function verifyNoop(cli: string, label: string): Promise<void> {
  const m = await spawnMeasured(process.execPath, [cli, 'run', '--quiet', '--json', '-p', PROJECT], PROJECT);
  failIfBad(`${label}: dip run --json`, m);
  const results = JSON.parse(m.stdout) as {
    status: string;
    stats: { streams: Record<string, { rows: number; commits: number }> };
  }[];
  const streams = results.flatMap((r) => Object.values(r.stats.streams));
  const busy = streams.filter((s) => s.rows !== 0 || s.commits !== 0).length;
  if (results.some((r) => r.status !== 'succeeded') || busy > 0 || streams.length !== 3) {
    throw new BenchFailure(
      `${label}: the run is not a no-op (${streams.length} streams, ${busy} with rows or commits):\n${m.stdout.slice(0, 2000)}`,
    );
  }
}

async function copyDist(from: string, name: string): Promise<string> {
  if (!existsSync(join(from, 'cli', 'main.js')))
    throw new BenchFailure(`${from}: no cli/main.js (build first: npm run build)`);
  // A copy beside the repository's node_modules: a rebuild of dist/ during the run cannot change the code under test.
  const dir = join(WORK, name);
  await rm(dir, { recursive: true, force: true });
  await cp(from, dir, { recursive: true });
  return join(dir, 'cli', 'main.js');
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parse(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  const machine = machineInfo(ROOT);
  await mkdir(WORK, { recursive: true });
  const builds: { tag: string; cli: string }[] = [{ tag: '', cli: await copyDist(opts.dist, 'dist') }];
  if (opts.compare) builds.push({ tag: 'before ', cli: await copyDist(opts.compare, 'dist-before') });
  process.stderr.write(`startup: preparing the no-op project in ${PROJECT}\n`);
  await writeProject(builds[0]!.cli);
  for (const b of builds) await verifyNoop(b.cli, b.tag ? b.tag.trim() : 'dip');

  const variants: Variant[] = [{ name: 'bare', label: "node -e ''", cmd: process.execPath, args: ['-e', ''] }];
  for (const b of builds) {
    const prefix = b.tag ? 'before:' : '';
    variants.push(
      { name: `${prefix}version`, label: `${b.tag}dip --version`, cmd: process.execPath, args: [b.cli, '--version'] },
      { name: `${prefix}help`, label: `${b.tag}dip --help`, cmd: process.execPath, args: [b.cli, '--help'] },
      {
        name: `${prefix}run`,
        label: `${b.tag}dip run (no-op)`,
        cmd: process.execPath,
        args: [b.cli, 'run', '-p', PROJECT],
      },
    );
  }
  const wall = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const cpu = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let round = 0; round < opts.warmup + opts.runs; round++) {
    const timed = round >= opts.warmup;
    process.stderr.write(
      `\r  ${timed ? `round ${round - opts.warmup + 1}/${opts.runs}` : `warm-up ${round + 1}/${opts.warmup}`}   `,
    );
    for (const v of variants) {
      const before = hasProc ? childrenCpuMs() : 0;
      const m = await spawnMeasured(v.cmd, v.args, PROJECT);
      failIfBad(v.label, m);
      if (!timed) continue;
      wall.get(v.name)!.push(m.wallMs);
      if (hasProc) cpu.get(v.name)!.push(childrenCpuMs() - before);
    }
  }
  process.stderr.write('\n');
  machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);

  const bareWall = median(wall.get('bare')!);
  const bareCpu = hasProc ? median(cpu.get('bare')!) : NaN;
  const results = variants.map((v) => {
    const w = wall.get(v.name)!;
    const sorted = [...w].sort((a, b) => a - b);
    const base = v.name.replace(/^before:/, '');
    const target = TARGET_S[base];
    return {
      variant: v.name,
      command: v.label,
      wallMedianMs: Math.round(median(w)),
      wallP90Ms: Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)]!),
      ratio: Math.round((median(w) / bareWall) * 100) / 100,
      cpuMedianMs: hasProc ? Math.round(median(cpu.get(v.name)!)) : null,
      cpuRatio: hasProc ? Math.round((median(cpu.get(v.name)!) / bareCpu) * 100) / 100 : null,
      targetRatio: target === undefined ? null : target / BARE_QUIET_S,
      targetSeconds: target ?? null,
    };
  });
  const missed = results.filter(
    (r) => !r.variant.startsWith('before:') && r.targetRatio !== null && r.ratio > r.targetRatio,
  );

  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ machine, runs: opts.runs, results, targetsMet: missed.length === 0 }, null, 2)}\n`,
    );
  } else {
    const out = process.stdout;
    out.write(`\nCLI start-up: median of ${opts.runs} interleaved runs each, wall time spawn → exit\n`);
    out.write(
      `machine: ${machine.cpus} × ${machine.cpuModel}, node ${machine.node}, commit ${machine.commit}, load average ${machine.loadAverageAtStart.join(' ')} → ${machine.loadAverageAtEnd.join(' ')}\n\n`,
    );
    const mark = (ok: boolean) => (ok ? '✓' : '✗');
    const rows = results.map((r) => [
      r.command,
      `${r.wallMedianMs} ms`,
      `${r.wallP90Ms} ms`,
      `${r.ratio.toFixed(2)}×`,
      r.cpuMedianMs === null ? '–' : `${r.cpuMedianMs} ms`,
      r.cpuRatio === null ? '–' : `${r.cpuRatio.toFixed(2)}×`,
      r.targetRatio === null || r.targetSeconds === null
        ? ''
        : `< ${r.targetSeconds} s ${mark(r.wallMedianMs < r.targetSeconds * 1000)} · ≤ ${r.targetRatio}× bare ${mark(r.ratio <= r.targetRatio)}`,
    ]);
    out.write(
      `${renderTable(['command', 'wall median', 'wall p90', 'vs bare', 'CPU median', 'CPU vs bare', 'target'], rows, opts.markdown, [false, true, true, true, true, true, false])}\n\n`,
    );
    out.write(
      `The targets are seconds on this machine as the issue measured it, bare node taking ${BARE_QUIET_S} s; the load of other\n` +
        `work slows every variant, so they are also judged as ratios to bare node measured in the same rounds (${bareWall.toFixed(0)} ms\n` +
        `here; ≤ target / ${BARE_QUIET_S} s). --check fails on a missed ratio.\n`,
    );
    if (missed.length)
      out.write(`missed: ${missed.map((r) => `${r.command} ${r.ratio}× > ${r.targetRatio}×`).join(', ')}\n`);
  }
  return opts.check && missed.length ? 2 : 0;
}
