/**
 * Scheduling overhead: a DAG of 1,000 no-op tasks and a backfill of 10,000 intervals of a
 * no-op pipeline, executed in-process (SQLite catalog) and, with --workers, by `dip worker`
 * processes through pg-boss on a PostgreSQL catalog. Prints tasks/s and intervals/s.
 *
 * Baselines measured in the same run: the same DAG run by a hand-written in-memory topological
 * executor (no durability: what pure scheduling costs), and the floor of a durable scheduler:
 * two empty write transactions per task on the same catalog file (claim + finish).
 *
 *   npm run bench -- scheduler [--tasks 1000] [--intervals 10000] [--concurrency 16] [--workers 3] [--markdown]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { startRuntime } from '../src/orchestrate/runtime.js';
import { fmtInt, machineInfo, parseOrExit, renderTable } from './common.js';

const HELP = `npm run bench -- scheduler [--tasks N] [--intervals N] [--concurrency N] [--workers N] [--markdown] [--json]`;
const ROOT = new URL('..', import.meta.url).pathname;

interface Opts {
  tasks: number;
  intervals: number;
  concurrency: number;
  workers: number;
  markdown: boolean;
  json: boolean;
}

interface Row {
  what: string;
  executor: string;
  units: number;
  seconds: number;
  perSecond: number;
  ratio?: number;
}

/** Layers of 100 tasks; each depends on two tasks of the layer before (a wide, deep DAG). */
export function dagTasks(n: number, width = 100): Record<string, { module: string; depends_on: string[] }> {
  const tasks: Record<string, { module: string; depends_on: string[] }> = {};
  for (let i = 0; i < n; i++) {
    const layer = Math.floor(i / width);
    const col = i % width;
    const deps =
      layer === 0
        ? []
        : [...new Set([`t${(layer - 1) * width + col}`, `t${(layer - 1) * width + ((col + 1) % width)}`])].filter(
            (d) => Number(d.slice(1)) < n,
          );
    tasks[`t${i}`] = { module: 'noop.mjs', depends_on: deps };
  }
  return tasks;
}

async function projectDir(
  opts: Opts,
  catalog: Record<string, unknown>,
  executor: 'in-process' | 'workers',
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dip-bench-sched-'));
  await mkdir(join(dir, '.dip'), { recursive: true });
  await writeFile(join(dir, 'noop.mjs'), 'export default async () => {};\n');
  const config = {
    version: 1,
    project: 'bench',
    catalog,
    serve: { concurrency: opts.concurrency, executor },
    pipelines: {
      dag: { sources: {}, retries: { attempts: 1 }, max_parallel_tasks: 1000, tasks: dagTasks(opts.tasks) },
      noop: {
        schedule: { every: '1h' },
        max_active_runs: opts.concurrency,
        sources: {},
        retries: { attempts: 1 },
        tasks: { t: { module: 'noop.mjs' } },
      },
    },
  };
  await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config, null, 2));
  return dir;
}

async function waitStatus(
  lake: Lake,
  filter: { backfillId?: string; pipeline?: string },
  total: number,
): Promise<void> {
  for (;;) {
    const counts = await lake.catalog.orchestration.countRuns(filter);
    const done = (counts['succeeded'] ?? 0) + (counts['failed'] ?? 0) + (counts['cancelled'] ?? 0);
    if ((counts['failed'] ?? 0) > 0) throw new Error(`bench runs failed: ${JSON.stringify(counts)}`);
    if (done >= total) return;
    await new Promise((r) => setTimeout(r, total > 100 ? 100 : 10));
  }
}

async function inProcess(opts: Opts): Promise<Row[]> {
  const dir = await projectDir(opts, { kind: 'sqlite', path: '.dip/catalog.db' }, 'in-process');
  const lake = await Lake.open(await loadProject(dir));
  const rows: Row[] = [];
  try {
    const runtime = startRuntime(lake, { concurrency: opts.concurrency, pollMs: 50, leaseMs: 60_000 });
    let t = performance.now();
    await runtime.orchestrator.trigger('dag');
    await waitStatus(lake, { pipeline: 'dag' }, 1);
    let s = (performance.now() - t) / 1000;
    rows.push({
      what: `DAG of ${fmtInt(opts.tasks)} no-op tasks`,
      executor: `in-process ×${opts.concurrency}, SQLite`,
      units: opts.tasks,
      seconds: s,
      perSecond: opts.tasks / s,
    });
    const from = new Date('2020-01-01T00:00:00Z');
    const to = new Date(from.getTime() + opts.intervals * 3_600_000);
    t = performance.now();
    const plan = await runtime.orchestrator.backfill('noop', { from, to, parallel: opts.concurrency });
    await waitStatus(lake, { backfillId: plan.backfillId as string }, opts.intervals);
    s = (performance.now() - t) / 1000;
    rows.push({
      what: `backfill of ${fmtInt(opts.intervals)} intervals`,
      executor: `in-process ×${opts.concurrency}, SQLite`,
      units: opts.intervals,
      seconds: s,
      perSecond: opts.intervals / s,
    });
    await runtime.stop();
    // The durable floor: two empty write transactions per task on this catalog.
    const store = lake.catalog as unknown as { db: { transaction<T>(fn: () => Promise<T>): Promise<T> } };
    t = performance.now();
    for (let i = 0; i < opts.tasks * 2; i++) await store.db.transaction(async () => undefined);
    s = (performance.now() - t) / 1000;
    rows.push({
      what: `floor: ${fmtInt(opts.tasks * 2)} empty write transactions`,
      executor: 'SQLite (WAL, synchronous=FULL)',
      units: opts.tasks,
      seconds: s,
      perSecond: opts.tasks / s,
    });
  } finally {
    await lake.close();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

/** The same DAG with no durability: a ready queue and `concurrency` promises. */
async function inMemory(opts: Opts): Promise<Row> {
  const tasks = dagTasks(opts.tasks);
  const noop = async () => undefined;
  const t = performance.now();
  const waiting = new Map(Object.entries(tasks).map(([n, d]) => [n, d.depends_on.length]));
  const downstream = new Map<string, string[]>();
  for (const [n, d] of Object.entries(tasks))
    for (const u of d.depends_on) downstream.set(u, [...(downstream.get(u) ?? []), n]);
  const ready = [...waiting].filter(([, w]) => w === 0).map(([n]) => n);
  let done = 0;
  await new Promise<void>((resolve) => {
    let active = 0;
    const pump = () => {
      while (active < opts.concurrency && ready.length) {
        const name = ready.shift() as string;
        active++;
        void noop().then(() => {
          active--;
          done++;
          for (const d of downstream.get(name) ?? []) {
            const w = (waiting.get(d) ?? 1) - 1;
            waiting.set(d, w);
            if (w === 0) ready.push(d);
          }
          if (done === opts.tasks) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const s = (performance.now() - t) / 1000;
  return {
    what: `baseline: same DAG, in-memory executor (no durability)`,
    executor: `×${opts.concurrency}`,
    units: opts.tasks,
    seconds: s,
    perSecond: opts.tasks / s,
  };
}

async function withWorkers(opts: Opts): Promise<Row[]> {
  const { startPostgres } = await import('../test/support/postgres.js');
  const { spawn } = await import('node:child_process');
  const pg = await startPostgres();
  const dir = await projectDir(opts, { kind: 'postgres', url: pg.url, schema: 'dip' }, 'workers');
  const lake = await Lake.open(await loadProject(dir));
  const children: ReturnType<typeof spawn>[] = [];
  const rows: Row[] = [];
  try {
    const { createDispatcher } = await import('../src/orchestrate/queue.js');
    const dispatcher = await createDispatcher(lake);
    if (!dispatcher) throw new Error('no dispatcher for executor: workers');
    const ready: Promise<void>[] = [];
    for (let i = 0; i < opts.workers; i++) {
      const child = spawn(
        process.execPath,
        [join(ROOT, 'dist/cli/main.js'), 'worker', '--concurrency', String(opts.concurrency)],
        { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DIP_LOG_LEVEL: 'info' } },
      );
      children.push(child);
      // Timing starts once every worker is up (start-up is module loading, not scheduling).
      ready.push(
        new Promise((resolve, reject) => {
          let seen = '';
          child.stderr?.setEncoding('utf8').on('data', (d: string) => {
            if (seen.length < 100_000) seen += d;
            if (seen.includes('worker started')) resolve();
          });
          child.once('exit', (code) => reject(new Error(`dip worker exited with ${code}: ${seen.slice(-2000)}`)));
        }),
      );
    }
    await Promise.all(ready);
    const runtime = startRuntime(lake, { concurrency: 0, dispatch: (refs) => dispatcher.dispatch(refs) });
    let t = performance.now();
    await runtime.orchestrator.trigger('dag');
    await waitStatus(lake, { pipeline: 'dag' }, 1);
    let s = (performance.now() - t) / 1000;
    const label = `${opts.workers} dip worker ×${opts.concurrency}, PostgreSQL + pg-boss`;
    rows.push({
      what: `DAG of ${fmtInt(opts.tasks)} no-op tasks`,
      executor: label,
      units: opts.tasks,
      seconds: s,
      perSecond: opts.tasks / s,
    });
    const from = new Date('2020-01-01T00:00:00Z');
    const to = new Date(from.getTime() + opts.intervals * 3_600_000);
    t = performance.now();
    const plan = await runtime.orchestrator.backfill('noop', { from, to, parallel: opts.concurrency * opts.workers });
    await waitStatus(lake, { backfillId: plan.backfillId as string }, opts.intervals);
    s = (performance.now() - t) / 1000;
    rows.push({
      what: `backfill of ${fmtInt(opts.intervals)} intervals`,
      executor: label,
      units: opts.intervals,
      seconds: s,
      perSecond: opts.intervals / s,
    });
    await runtime.stop();
    await dispatcher.close();
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    await lake.close();
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit<Opts>(() => {
    const { values } = parseArgs({
      args,
      options: {
        tasks: { type: 'string', default: '1000' },
        intervals: { type: 'string', default: '10000' },
        concurrency: { type: 'string', default: '16' },
        workers: { type: 'string', default: '0' },
        markdown: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    });
    if (values.help) return undefined;
    return {
      tasks: Number(values.tasks),
      intervals: Number(values.intervals),
      concurrency: Number(values.concurrency),
      workers: Number(values.workers),
      markdown: values.markdown,
      json: values.json,
    };
  }, HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  const baseline = await inMemory(opts);
  const rows = await inProcess(opts);
  if (opts.workers > 0) rows.push(...(await withWorkers(opts)));
  const dagInProcess = rows[0] as Row;
  const all = [baseline, ...rows].map((r) => ({
    ...r,
    ratio: r.what.startsWith('DAG') ? dagInProcess.seconds / baseline.seconds : undefined,
  }));
  const verdict = dagInProcess.perSecond >= 500 ? 'PASS' : 'FAIL';
  if (opts.json) {
    process.stdout.write(
      `${JSON.stringify({ machine: machineInfo(ROOT), rows: all, target: { tasksPerSecond: 500, verdict } }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(
      `${renderTable(
        ['measure', 'executor', 'units', 'seconds', 'per second'],
        all.map((r) => [r.what, r.executor, fmtInt(r.units), r.seconds.toFixed(3), fmtInt(r.perSecond)]),
        opts.markdown,
        [false, false, true, true, true],
      )}\n`,
    );
    process.stdout.write(
      `\nin-process DAG: ${fmtInt(dagInProcess.perSecond)} tasks/s (target ≥ 500: ${verdict}); durable scheduling costs ${(dagInProcess.seconds / baseline.seconds).toFixed(0)}× the in-memory executor\n`,
    );
  }
  return verdict === 'PASS' ? 0 : 1;
}
