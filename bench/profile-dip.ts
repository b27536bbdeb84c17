/**
 * Where `dip run` spends its time: runs the project's pipelines in this process the way
 * `dip run` does (loadProject → Lake.open → runPipeline → close) with every engine statement,
 * storage publish and catalog call timed. Not part of the timed comparison (it wraps methods);
 * bench/files.ts runs it once and prints the breakdown.
 *
 *   node --import tsx bench/profile-dip.ts <project dir> [<dist dir, default ../dist>]
 *
 * The build is imported from <dist dir> (bench/files.ts passes its snapshot of dist/, the same
 * code its timed runs use). Prints one JSON object on stdout.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { loadProject as LoadProject } from '../src/config/load.js';
import type { Lake as LakeClass } from '../src/lake/lake.js';
import type { runPipeline as RunPipeline } from '../src/pipeline/run.js';

export interface ProfilePhase {
  phase: string;
  ms: number;
  calls: number;
}

export interface ProfileReport {
  totalMs: number;
  phases: ProfilePhase[];
  statements: { phase: string; ms: number; sql: string }[];
  events: { type: string; atMs: number }[];
  rows: number;
}

const t0 = performance.now();
const phases = new Map<string, ProfilePhase>();
const statements: ProfileReport['statements'] = [];
const events: ProfileReport['events'] = [];
let depth = 0;

function record(phase: string, ms: number): void {
  const p = phases.get(phase) ?? { phase, ms: 0, calls: 0 };
  p.ms += ms;
  p.calls += 1;
  phases.set(phase, p);
}

async function timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await fn();
  } finally {
    record(phase, performance.now() - start);
  }
}

/** What an engine statement is for, from its SQL. */
function classify(sql: string): string {
  const s = sql.trim();
  if (/^DROP/i.test(s)) return 'engine: drop temp tables';
  if (/^DESCRIBE/i.test(s)) return 'engine: DESCRIBE (sniff + schema)';
  if (/sniff_csv\(/i.test(s)) return 'engine: sniff_csv (dialect, formats)';
  if (/^COPY/i.test(s) && /FORMAT json/i.test(s)) return 'engine: raw zone COPY → ndjson.zst';
  if (/^COPY/i.test(s) && /all_varchar=true/i.test(s)) return 'engine: raw zone staging COPY → parquet';
  if (/^COPY/i.test(s) && /_dip_quarantined_at/.test(s)) return 'engine: quarantine COPY → parquet';
  if (/^COPY/i.test(s) && /_dip_run_id/.test(s)) return 'engine: bronze COPY → parquet';
  if (/^COPY/i.test(s)) return 'engine: other COPY';
  if (/dip_rejects|dip_rejscan|duckdb_tables/.test(s)) return 'engine: rejects lookup';
  return 'engine: other';
}

type AnyMethod = (...args: unknown[]) => Promise<unknown>;

/**
 * Wraps the named async methods of `obj` with a timer under `prefix`. Only the outermost call
 * is timed, so a method that calls another wrapped one is not counted twice.
 */
function wrapAll(obj: object, prefix: string, names: readonly string[]): void {
  const target = obj as Record<string, AnyMethod>;
  let inside = 0;
  for (const name of names) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = async (...args: unknown[]) => {
      if (inside > 0) return original.apply(obj, args);
      inside++;
      try {
        return await timed(`${prefix}${name}`, () => original.apply(obj, args));
      } finally {
        inside--;
      }
    };
  }
}

function methodNames(obj: object): string[] {
  const names = new Set<string>();
  for (let p: object | null = Object.getPrototypeOf(obj); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const n of Object.getOwnPropertyNames(p)) if (n !== 'constructor') names.add(n);
  }
  return [...names];
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: profile-dip.ts <project dir> [<dist dir>]');
  const dist = resolve(process.argv[3] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'dist'));
  const load = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(join(dist, rel)).href)) as T;
  const { loadProject } = await load<{ loadProject: typeof LoadProject }>('config/load.js');
  const { Lake } = await load<{ Lake: typeof LakeClass }>('lake/lake.js');
  const { runPipeline } = await load<{ runPipeline: typeof RunPipeline }>('pipeline/run.js');
  const project = await timed('load dip.yaml', () => loadProject(dir));
  const lake = await timed('open lake (catalog, engine)', () => Lake.open(project));
  // Engine: time top-level statements only (copy() calls all() internally).
  const engine = lake.engine as unknown as Record<string, AnyMethod>;
  for (const name of ['run', 'all', 'table', 'copy', 'describe']) {
    const original = engine[name];
    if (typeof original !== 'function') continue;
    engine[name] = async (...args: unknown[]) => {
      if (depth > 0) return original.apply(lake.engine, args);
      const sql = String(args[0]);
      const phase = classify(name === 'describe' ? `DESCRIBE ${sql}` : sql);
      depth++;
      const start = performance.now();
      try {
        return await original.apply(lake.engine, args);
      } finally {
        depth--;
        const ms = performance.now() - start;
        record(phase, ms);
        statements.push({ phase, ms, sql: sql.replace(/\s+/g, ' ').slice(0, 160) });
      }
    };
  }
  wrapAll(lake.storage, 'storage: ', ['publish', 'stagingDir']);
  wrapAll(
    lake.catalog,
    'catalog: ',
    methodNames(lake.catalog).filter((n) => n !== 'close'),
  );
  let rows = 0;
  try {
    for (const name of Object.keys(project.config.pipelines)) {
      const result = await runPipeline(lake, name, {
        onEvent: (e) => events.push({ type: e.type, atMs: performance.now() - t0 }),
      });
      if (result.status !== 'succeeded')
        throw new Error(`pipeline ${name} failed: ${result.errors.map((e) => e.message).join('; ')}`);
      rows += Object.values(result.stats.streams).reduce((n, s) => n + s.rows, 0);
    }
  } finally {
    await timed('close lake', () => lake.close());
  }
  const report: ProfileReport = {
    totalMs: performance.now() - t0,
    phases: [...phases.values()].sort((a, b) => b.ms - a.ms),
    statements,
    events,
    rows,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
