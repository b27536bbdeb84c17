/**
 * Gold benchmark (gold issue), two measurements, each against a hand-written DuckDB statement
 * run in its own plain node process (bench/baseline-copy.mjs) with the same threads and memory:
 *
 *   scd2 — an SCD2 dimension (check strategy over 5 columns) of N keys (default 2,000,000) built
 *          once, then a snapshot with 5% of the rows changed: timed `dip build dim_customer`
 *          (the merge: changed versions closed, new versions added, the table rewritten) vs ONE
 *          `COPY (…) TO` doing the same merge over the same Parquet files. Each timed dip run
 *          starts from a copy of the project taken before the merge.
 *   fact — a fact table of M rows (default 10,000,000) with 3 as-of lookups into SCD2
 *          dimensions (200,000 customers, 20,000 products, 500 stores, 1–3 versions each):
 *          timed `dip build fact_sales --full-refresh` vs ONE hand-written ASOF JOIN statement
 *          writing the same rows (members -1/-2 included); peak RSS of both.
 *
 * Not timed: generating the inputs (cached in bench/.cache/), committing them as silver tables,
 * building the dimensions. Wall time is spawn → exit; peak RSS is VmHWM polled every 50 ms.
 * Both sides must write the same number of rows.
 *
 *   npm run bench -- gold [--dim-rows N] [--fact-rows N] [--runs N] [--only scd2|fact] [--markdown] [--json]
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, fmtInt, machineInfo, median, parseOrExit, renderTable } from './common.js';
import { failIfBad, spawnMeasured, syncDisks, type Measured } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'gold');
const CACHE = join(BENCH_DIR, '.cache');
/** dist/ is copied here at start, so a rebuild during the run cannot change the code under test. */
const DIST = join(WORK, 'dist');
const DIP_CLI = join(DIST, 'cli', 'main.js');
const BASELINE = join(BENCH_DIR, 'baseline-copy.mjs');
const SCD2_TARGET = 1.5;
const FACT_TARGET = 1.3;

const HELP = `npm run bench -- gold [options]

  --dim-rows N     keys of the SCD2 dimension (default 2000000)
  --fact-rows N    rows of the fact table (default 10000000)
  --runs N         timed runs per variant, median reported (default 3)
  --threads N      DuckDB threads, both sides (default 2)
  --memory SIZE    DuckDB memory limit, both sides (default 1GB)
  --only NAME      scd2 or fact (default both)
  --markdown       tables as Markdown (for bench/README.md)
  --json           one JSON document on stdout
`;

interface Options {
  dimRows: number;
  factRows: number;
  runs: number;
  threads: number;
  memory: string;
  only: 'scd2' | 'fact' | undefined;
  markdown: boolean;
  json: boolean;
}

function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      'dim-rows': { type: 'string', default: '2000000' },
      'fact-rows': { type: 'string', default: '10000000' },
      runs: { type: 'string', default: '3' },
      threads: { type: 'string', default: '2' },
      memory: { type: 'string', default: '1GB' },
      only: { type: 'string' },
      markdown: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  if (values.only !== undefined && values.only !== 'scd2' && values.only !== 'fact')
    throw new Error(`--only ${values.only}: expected scd2 or fact`);
  return {
    dimRows: count(String(Number(values['dim-rows'])), 'dim-rows'),
    factRows: count(String(Number(values['fact-rows'])), 'fact-rows'),
    runs: Math.max(1, count(values.runs, 'runs')),
    threads: Math.max(1, count(values.threads, 'threads')),
    memory: values.memory,
    only: values.only as Options['only'],
    markdown: values.markdown,
    json: values.json,
  };
}

const log = (s: string) => process.stderr.write(`${s}\n`);
const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Runs statements in a plain DuckDB process (the baseline runner); returns its measurement. */
async function duck(sql: string | string[], opts: Options): Promise<Measured & { rows: number }> {
  await mkdir(join(WORK, 'tmp'), { recursive: true });
  const m = await spawnMeasured(process.execPath, [
    BASELINE,
    JSON.stringify({ sql, threads: opts.threads, memoryLimit: opts.memory, tempDirectory: join(WORK, 'tmp') }),
  ]);
  failIfBad('DuckDB', m);
  return { ...m, rows: Number((JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { rows?: number }).rows ?? 0) };
}

async function dip(project: string, args: string[]): Promise<Measured> {
  const m = await spawnMeasured(process.execPath, [DIP_CLI, '-p', project, ...args]);
  failIfBad(`dip ${args.join(' ')}`, m);
  return m;
}

function projectYaml(opts: Options, gold: Record<string, unknown>): string {
  return `${JSON.stringify(
    {
      version: 1,
      project: 'bench-gold',
      engine: { threads: opts.threads, memory_limit: opts.memory },
      pipelines: { bench: { sources: {}, gold } },
    },
    null,
    2,
  )}\n`;
}

/**
 * Commits Parquet files as silver tables of a project (through the lake's own writer and catalog),
 * the way a silver build would have left them.
 */
async function commitSilver(project: string, tables: Record<string, string>): Promise<void> {
  const { loadProject } = await import('../src/config/load.js');
  const { Lake } = await import('../src/lake/lake.js');
  const { writeLakeFile } = await import('../src/lake/write-file.js');
  const lake = await Lake.open(await loadProject(project));
  try {
    for (const [table, file] of Object.entries(tables)) {
      const written = await writeLakeFile(
        lake,
        `SELECT * FROM read_parquet(${lit(file)})`,
        { zone: 'silver', source: 'bench', table },
        {},
      );
      const columns = await lake.engine.describe(`SELECT * FROM read_parquet(${lit(file)})`);
      const info = await lake.catalog.getTable(`silver.${table}`);
      await lake.catalog.commit({
        runId: null,
        operation: 'replace',
        tables: [
          {
            table: `silver.${table}`,
            zone: 'silver',
            format: 'parquet',
            schema: { columns },
            add: [written],
            remove: 'all',
            expectedHead: info?.headCommit ?? null,
          },
        ],
        summary: { rows: written.rows },
      });
    }
  } finally {
    await lake.close();
  }
}

async function liveFiles(project: string, table: string): Promise<string[]> {
  const { loadProject } = await import('../src/config/load.js');
  const { Lake } = await import('../src/lake/lake.js');
  const lake = await Lake.open(await loadProject(project));
  try {
    return (await lake.catalog.liveFiles(table)).map((f) => lake.storage.uri(f.path));
  } finally {
    await lake.close();
  }
}

interface Row {
  bench: string;
  variant: string;
  wallMs: number;
  peakRssMiB: number | null;
  rows: number;
}

const rss = (m: Measured) => (m.peakRssKiB === null ? null : Math.round(m.peakRssKiB / 1024));

async function benchScd2(opts: Options): Promise<Row[]> {
  const n = opts.dimRows;
  const dir = join(WORK, 'scd2');
  const saved = join(WORK, 'scd2-saved');
  await rm(dir, { recursive: true, force: true });
  await rm(saved, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await mkdir(CACHE, { recursive: true });
  const v1 = join(CACHE, `gold-customers-${n}-v1.parquet`);
  const v2 = join(CACHE, `gold-customers-${n}-v2.parquet`);
  const cols = `i AS id, 'name ' || i AS name, 'city ' || (i % 1000) AS city, 'segment ' || (i % 7) AS segment, (i * 7919) % 100000 AS score`;
  if (!existsSync(v1) || !existsSync(v2)) {
    log(`generating ${fmtInt(n)} customers (v1, and v2 with 5% changed)…`);
    await duck(
      [
        `COPY (SELECT ${cols} FROM range(1, ${n + 1}) t(i)) TO ${lit(`${v1}.part`)} (FORMAT parquet)`,
        `COPY (SELECT * REPLACE (CASE WHEN id % 20 = 0 THEN city || ' moved' ELSE city END AS city) FROM read_parquet(${lit(`${v1}.part`)})) TO ${lit(`${v2}.part`)} (FORMAT parquet)`,
      ],
      opts,
    );
    await rename(`${v1}.part`, v1);
    await rename(`${v2}.part`, v2);
  }
  await writeFile(
    join(dir, 'dip.yaml'),
    projectYaml(opts, {
      dim_customer: {
        kind: 'scd2',
        from: 'silver.customers',
        unique_key: ['id'],
        strategy: 'check',
        hard_deletes: 'ignore',
      },
    }),
  );
  await commitSilver(dir, { customers: v1 });
  log('building the dimension from v1 (not timed)…');
  await dip(dir, ['build', 'dim_customer', '--quiet']);
  const dimFiles = await liveFiles(dir, 'gold.dim_customer');
  await commitSilver(dir, { customers: v2 });
  await cp(join(dir, '.dip'), join(saved, '.dip'), { recursive: true });
  // The same merge as ONE statement over the same files (the snapshot time as dip takes it: a constant).
  const hash = `md5(concat_ws(chr(31), ${['name', 'city', 'segment', 'score'].map((c) => `coalesce(CAST(${c} AS VARCHAR), chr(0))`).join(', ')}))`;
  const ts = `TIMESTAMPTZ '2026-01-01 00:00:00+00'`;
  const out = join(WORK, 'scd2-baseline.parquet');
  const baselineSql = `COPY (
    WITH s AS (SELECT id, name, city, segment, score, ${hash} AS _h FROM read_parquet(${lit(v2)})),
    d AS (SELECT * FROM read_parquet([${dimFiles.map(lit).join(', ')}])),
    ch AS (SELECT s.* FROM s LEFT JOIN (SELECT id, _dip_row_hash FROM d WHERE is_current) AS c ON c.id = s.id WHERE c._dip_row_hash IS NULL OR c._dip_row_hash <> s._h)
    SELECT d.* REPLACE (CASE WHEN d.is_current AND ch.id IS NOT NULL THEN ${ts} ELSE d.valid_to END AS valid_to, d.is_current AND ch.id IS NULL AS is_current)
      FROM d LEFT JOIN (SELECT id FROM ch) AS ch ON ch.id = d.id
    UNION ALL BY NAME
    SELECT id, name, city, segment, score, ${ts} AS valid_from, NULL::TIMESTAMPTZ AS valid_to, true AS is_current,
      md5(concat_ws(chr(31), CAST(id AS VARCHAR), CAST(${ts} AS VARCHAR))) AS version_hash, ${ts} AS updated_at, _h AS _dip_row_hash FROM ch
  ) TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`;
  const rows: Row[] = [];
  for (let r = 0; r < opts.runs; r++) {
    syncDisks();
    const b = await duck(baselineSql, opts);
    rows.push({ bench: 'scd2', variant: 'baseline', wallMs: b.wallMs, peakRssMiB: rss(b), rows: b.rows });
    await rm(join(dir, '.dip'), { recursive: true, force: true });
    await cp(join(saved, '.dip'), join(dir, '.dip'), { recursive: true });
    syncDisks();
    const d = await dip(dir, ['build', 'dim_customer', '--json']);
    const result = (JSON.parse(d.stdout) as { rows: number; mode: string }[])[0];
    if (result?.mode !== 'incremental') throw new Error(`dip build was a ${result?.mode} build, expected incremental`);
    rows.push({ bench: 'scd2', variant: 'dip', wallMs: d.wallMs, peakRssMiB: rss(d), rows: result.rows });
    log(`scd2 run ${r + 1}: baseline ${Math.round(b.wallMs)} ms, dip ${Math.round(d.wallMs)} ms`);
  }
  return rows;
}

async function benchFact(opts: Options): Promise<Row[]> {
  const n = opts.factRows;
  const dir = join(WORK, 'fact');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await mkdir(CACHE, { recursive: true });
  const sales = join(CACHE, `gold-sales-${n}.parquet`);
  const changes = (name: string, keys: number) => join(CACHE, `gold-${name}-changes-${keys}.parquet`);
  const dims = { customer: 200_000, product: 20_000, store: 500 } as const;
  const start = `TIMESTAMPTZ '2024-01-01 00:00:00+00'`;
  const gen: string[] = [];
  const made: string[] = [];
  if (!existsSync(sales) && made.push(sales))
    gen.push(
      `COPY (SELECT i AS sale_id, 1 + (hash(i) % ${dims.customer + 1000}) AS customer_id, 1 + (hash(i * 3) % ${dims.product}) AS product_id, 1 + (hash(i * 7) % ${dims.store}) AS store_id,
        ${start} + to_seconds(CAST(hash(i * 11) % 31536000 AS BIGINT)) AS sold_at, CAST((hash(i * 13) % 10000) AS DECIMAL(12,2)) / 100 AS amount
       FROM range(1, ${n + 1}) t(i)) TO ${lit(`${sales}.part`)} (FORMAT parquet)`,
    );
  for (const [name, keys] of Object.entries(dims)) {
    if (existsSync(changes(name, keys))) continue;
    made.push(changes(name, keys));
    // 1–3 versions per key: created at the start of 2024, changed at a random time (or two).
    gen.push(`COPY (SELECT k AS id, '${name} ' || k || ' v' || v AS label, CAST(k * 10 + v AS UBIGINT) AS _cdc_lsn, 1 AS _cdc_seq, 'u' AS _cdc_op, false AS _cdc_deleted,
        CASE WHEN v = 0 THEN ${start} - INTERVAL 1 DAY ELSE ${start} + to_seconds(CAST(hash(k * 17 + v) % 15000000 + v * 15000000 AS BIGINT)) END AS _cdc_commit_ts
       FROM range(1, ${keys + 1}) a(k), range(0, 3) b(v) WHERE v <= k % 3) TO ${lit(`${changes(name, keys)}.part`)} (FORMAT parquet)`);
  }
  if (gen.length) {
    log(`generating ${fmtInt(n)} sales and three change logs…`);
    await duck(gen, opts);
    for (const f of made) await rename(`${f}.part`, f);
  }
  const gold: Record<string, unknown> = {};
  for (const name of Object.keys(dims))
    gold[`dim_${name}`] = {
      kind: 'scd2',
      from: `silver.${name}_changes`,
      unique_key: ['id'],
      strategy: 'cdc',
      surrogate_key: { name: `${name}_key` },
    };
  gold['fact_sales'] = {
    kind: 'fact',
    from: 'silver.sales',
    lookups: Object.keys(dims).map((name) => ({ dimension: `dim_${name}`, key: { id: `${name}_id` }, at: 'sold_at' })),
  };
  await writeFile(join(dir, 'dip.yaml'), projectYaml(opts, gold));
  await commitSilver(dir, {
    sales,
    ...Object.fromEntries(Object.entries(dims).map(([name, keys]) => [`${name}_changes`, changes(name, keys)])),
  });
  log('building the three dimensions (not timed)…');
  await dip(dir, ['build', 'dim_customer', 'dim_product', 'dim_store', '--quiet']);
  const dimFiles: Record<string, string[]> = {};
  for (const name of Object.keys(dims)) dimFiles[name] = await liveFiles(dir, `gold.dim_${name}`);
  const salesFiles = await liveFiles(dir, 'silver.sales');
  const out = join(WORK, 'fact-baseline.parquet');
  const names = Object.keys(dims);
  const baselineSql = `COPY (
    SELECT s.*, ${names
      .map(
        (d) =>
          `CASE WHEN s.${d}_id IS NULL THEN -2 WHEN ${d}.k IS NULL OR (${d}.vt IS NOT NULL AND s.sold_at >= ${d}.vt) THEN -1 ELSE ${d}.k END AS ${d}_key`,
      )
      .join(', ')}
    FROM read_parquet([${salesFiles.map(lit).join(', ')}]) AS s
    ${names
      .map(
        (d) =>
          `ASOF LEFT JOIN (SELECT ${d}_key AS k, id, valid_from AS vf, valid_to AS vt FROM read_parquet([${(dimFiles[d] ?? []).map(lit).join(', ')}]) WHERE ${d}_key >= 0) AS ${d} ON ${d}.id = s.${d}_id AND s.sold_at >= ${d}.vf`,
      )
      .join('\n    ')}
  ) TO ${lit(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`;
  const rows: Row[] = [];
  for (let r = 0; r < opts.runs; r++) {
    syncDisks();
    const b = await duck(baselineSql, opts);
    rows.push({ bench: 'fact', variant: 'baseline', wallMs: b.wallMs, peakRssMiB: rss(b), rows: b.rows });
    syncDisks();
    const d = await dip(dir, ['build', 'fact_sales', '--full-refresh', '--json']);
    const result = (JSON.parse(d.stdout) as { rows: number }[])[0];
    rows.push({ bench: 'fact', variant: 'dip', wallMs: d.wallMs, peakRssMiB: rss(d), rows: result?.rows ?? 0 });
    log(`fact run ${r + 1}: baseline ${Math.round(b.wallMs)} ms, dip ${Math.round(d.wallMs)} ms`);
  }
  return rows;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parseOptions(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    process.stderr.write(`dist/cli/main.js is missing: build first (npm run build)\n`);
    return 1;
  }
  await mkdir(WORK, { recursive: true });
  await rm(DIST, { recursive: true, force: true });
  await cp(join(ROOT, 'dist'), DIST, { recursive: true });
  const machine = machineInfo(ROOT);
  const all: Row[] = [];
  if (opts.only !== 'fact') all.push(...(await benchScd2(opts)));
  if (opts.only !== 'scd2') all.push(...(await benchFact(opts)));
  machine.loadAverageAtEnd = (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100);
  const summary = ['scd2', 'fact']
    .filter((b) => all.some((r) => r.bench === b))
    .map((bench) => {
      const of = (v: string) => all.filter((r) => r.bench === bench && r.variant === v);
      const base = median(of('baseline').map((r) => r.wallMs));
      const mine = median(of('dip').map((r) => r.wallMs));
      const peak = (v: string) => Math.max(...of(v).map((r) => r.peakRssMiB ?? 0));
      const rowsMatch = of('dip').every((r) => r.rows === of('baseline')[0]?.rows);
      const target = bench === 'scd2' ? SCD2_TARGET : FACT_TARGET;
      return {
        bench,
        baselineMs: base,
        dipMs: mine,
        ratio: mine / base,
        target,
        baselinePeakMiB: peak('baseline'),
        dipPeakMiB: peak('dip'),
        rows: of('dip')[0]?.rows ?? 0,
        rowsMatch,
      };
    });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ machine, options: opts, summary, runs: all }, null, 2)}\n`);
  } else {
    process.stdout.write(
      `${renderTable(
        [
          'benchmark',
          'rows written',
          'DuckDB statement (median)',
          'dip build (median)',
          'ratio',
          'target',
          'peak RSS DuckDB',
          'peak RSS dip',
        ],
        summary.map((s) => [
          s.bench === 'scd2'
            ? `SCD2 merge, ${fmtInt(opts.dimRows)} keys, 5% changed`
            : `fact, ${fmtInt(opts.factRows)} rows, 3 as-of lookups`,
          `${fmtInt(s.rows)}${s.rowsMatch ? '' : ' (MISMATCH)'}`,
          `${(s.baselineMs / 1000).toFixed(2)} s`,
          `${(s.dipMs / 1000).toFixed(2)} s`,
          `${s.ratio.toFixed(2)}×`,
          `≤ ${s.target}×`,
          `${fmtInt(s.baselinePeakMiB)} MiB`,
          `${fmtInt(s.dipPeakMiB)} MiB`,
        ]),
        opts.markdown,
        [false, true, true, true, true, true, true, true],
      )}\n`,
    );
    process.stdout.write(
      `\n${machine.cpus} × ${machine.cpuModel}, ${machine.node}, commit ${machine.commit}, load ${machine.loadAverageAtStart.join(' ')} → ${machine.loadAverageAtEnd.join(' ')}\n`,
    );
  }
  return summary.every((s) => s.rowsMatch) ? 0 : 1;
}
