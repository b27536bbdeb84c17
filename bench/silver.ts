/**
 * Bronze → silver benchmark (silver issue): a bronze table of N rows (default 5,000,000) with
 * 20 columns, 2 of them nested objects, ~5% duplicate ids, refined into silver with
 * standardization, dedup, two masks and six checks. Timed in one run as
 *
 *   (a) baseline — ONE hand-written DuckDB statement over the same bronze Parquet files doing
 *                  the same work, `COPY (…) TO 'x.parquet' (zstd, level 1)`, in its own plain
 *                  node process (bench/baseline-copy.mjs) with dip's threads and memory limit.
 *                  Written three ways to dedup — `QUALIFY row_number()`, `arg_max(row)`, and
 *                  max(updatedAt) per id joined back — and the fastest median is the baseline
 *                  (a variant that fails, e.g. out of memory, is reported and dropped).
 *   (b) dip      — `node dist/cli/main.js transform <pipeline> --full-refresh` (runDipTransform).
 *
 * Not timed: generating the input Parquet (cached in bench/.cache/, keyed by row count) and
 * `dip run --no-silver` of it into bronze (raw zone off), once per invocation into a fresh
 * project. Variants are interleaved (qualify, arg_max, max_join, dip, qualify, …); wall time
 * is spawn → exit of the child, peak RSS its VmHWM polled from /proc every 50 ms. Every
 * variant must write the expected row count; a content fingerprint (15 figures, masks
 * included) of each output is compared with the first's.
 *
 *   npm run bench -- silver [--rows N] [--runs N] [--variants …] [--json] …   (--help lists the options)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, fmtInt, machineInfo, median, parseOrExit, renderTable, variantList } from './common.js';
import { BenchFailure, failIfBad, spawnMeasured, syncDisks, type Measured } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 'silver');
const CACHE = join(BENCH_DIR, '.cache');
/** dist/ is copied here at start, so a rebuild by other work during the run cannot change the code under test. */
const DIST = join(WORK, 'dist');
const DIP_CLI = join(DIST, 'cli', 'main.js');
const BASELINE = join(BENCH_DIR, 'baseline-copy.mjs');
const PIPELINE = 'bench';
const SOURCE = 'files';
const BRONZE_TABLE = 'posts';
const SILVER_TABLE = 'posts';
/** Fixed hash salt: dip (privacy.salt) and the baseline hash with the same one. */
const SALT = 'bench-silver-salt-0123456789';
/** Bump when the generated data changes, so cached files are regenerated. */
const DATA_VERSION = 1;
const MIB = 1024 * 1024;
const MB = 1e6;
const TARGET_RATIO = 1.5;

const HELP = `npm run bench -- silver [options]

  --rows N          rows of the bronze table (default 5000000; 5e6 and 5_000_000 work)
  --runs N          timed runs per variant, median reported (default 3)
  --warmup N        untimed runs per variant first (default 0)
  --threads N       DuckDB threads, dip (engine.threads) and baseline alike (default 2)
  --memory SIZE     DuckDB memory limit, both sides (default 1GB)
  --variants LIST   comma list of qualify,arg_max,max_join,dip (default all four)
  --dist DIR        the dip build under test (default: dist/ of this repository)
  --diagnose        also time the parts of the baseline alone (writer, dedup, each expression), once each
  --print-sql       print the three baseline statements (over this run's bronze files, after the ingest) and stop
  --keep            keep the project and the baseline outputs in bench/.work/silver/
  --check           exit 2 when the ratio target (≤ ${TARGET_RATIO}) is missed
  --incremental     instead: 1% new/changed rows into the built table, the incremental build
                    against the same build's full refresh (bench/silver-incremental.ts)
  --json            print one JSON document on stdout instead of tables
  --markdown        print tables as Markdown (for bench/README.md)
`;

/** The hand-written statement, three ways to dedup; the fastest that completes is the baseline. */
type BaselineVariant = 'qualify' | 'arg_max' | 'max_join';
type Variant = BaselineVariant | 'dip';
const BASELINES: readonly BaselineVariant[] = ['qualify', 'arg_max', 'max_join'];
const VARIANTS: readonly Variant[] = [...BASELINES, 'dip'];
const LABEL: Record<Variant, string> = {
  qualify: 'a) DuckDB, one statement, dedup QUALIFY row_number()',
  arg_max: 'a) DuckDB, one statement, dedup arg_max(row)',
  max_join: 'a) DuckDB, one statement, dedup max(updatedAt) per id, join back',
  dip: 'b) dip transform --full-refresh',
};

export interface Options {
  rows: number;
  runs: number;
  warmup: number;
  threads: number;
  memory: string;
  variants: Variant[];
  dist: string;
  printSql: boolean;
  diagnose: boolean;
  keep: boolean;
  check: boolean;
  json: boolean;
  markdown: boolean;
  /** Run the incremental benchmark instead (bench/silver-incremental.ts). */
  incremental: boolean;
}

export function parseOptions(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      rows: { type: 'string', default: '5000000' },
      runs: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0' },
      threads: { type: 'string', default: '2' },
      memory: { type: 'string', default: '1GB' },
      variants: { type: 'string', default: VARIANTS.join(',') },
      dist: { type: 'string', default: join(ROOT, 'dist') },
      'print-sql': { type: 'boolean', default: false },
      diagnose: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      incremental: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  const variants = variantList(values.variants, VARIANTS);
  const rows = count(values.rows, 'rows');
  if (rows < 100) throw new Error('--rows must be at least 100');
  return {
    rows,
    runs: Math.max(1, count(values.runs, 'runs')),
    warmup: count(values.warmup, 'warmup'),
    threads: Math.max(1, count(values.threads, 'threads')),
    memory: values.memory,
    variants: VARIANTS.filter((v) => variants.includes(v)),
    dist: resolve(values.dist),
    printSql: values['print-sql'],
    diagnose: values.diagnose,
    keep: values.keep,
    check: values.check,
    json: values.json,
    markdown: values.markdown,
    incremental: values.incremental,
  };
}

export const log = (msg: string) => process.stderr.write(`[bench silver] ${msg}\n`);
const sqlLit = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** The line of a child's failure that says what went wrong (DuckDB's error, dip's message). */
export function firstLine(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      try {
        const m = (JSON.parse(l) as { error?: { message?: unknown } }).error?.message;
        return typeof m === 'string' ? `error: ${m.split('\n')[0]}` : l;
      } catch {
        return l;
      }
    });
  return (lines.find((l) => /error|"message"/i.test(l)) ?? lines[0] ?? '').slice(0, 400);
}

// ─── data ────────────────────────────────────────────────────────────────────────────────

/**
 * The input, as a source would send it: 20 top-level camelCase columns, `author` and
 * `metrics` nested objects. Row i carries id i, except every 20th row (i % 20 = 19, 5%),
 * which is an older version of an earlier id (an updatedAt 1–30 days earlier, another
 * status, fewer views). Every value but those is derived from the id, so all versions of an
 * id agree on it. Ids with id % 1250 = 7 (0.08%) have a malformed externalCode: the regex
 * check (mostly 0.999) quarantines them. Deterministic: DuckDB's hash() of the row number.
 *
 * Work for silver: snake_case names, flattening, trim (title, category, regionName and
 * author.name have surrounding spaces), empty strings → null (subtitle is '' on 70% of rows,
 * author.country on 10%), publishedAt ISO text with offsets → TIMESTAMPTZ, status A/I/P →
 * active/inactive/pending, dedup on id by updatedAt, masks on author.email and phoneNumber.
 */
function generatorSql(rows: number, out: string): string {
  return `COPY (
  WITH r AS (
    SELECT i,
      CASE WHEN i % 20 = 19 THEN i - 1 - 20 * ((hash(i, 9) % 1000)::BIGINT % (i // 20 + 1)) ELSE i END AS id,
      (i % 20 = 19) AS old
    FROM range(${rows}) t(i)
  )
  SELECT
    id,
    CASE WHEN id % 1250 = 7 THEN lower(chr((65 + id % 26)::INTEGER)) || '_' || (id % 1000000)
         ELSE chr((65 + id % 26)::INTEGER) || chr((65 + (id // 26) % 26)::INTEGER) || '-' || lpad((id % 1000000)::VARCHAR, 6, '0') END AS externalCode,
    CASE WHEN id % 3 = 0 THEN '  Post title ' || id || ' ' ELSE 'Post title ' || id END AS title,
    repeat('lorem ipsum dolor ', (1 + id % 6)::INTEGER) || id AS body,
    (['A', 'I', 'P'])[1 + (hash(id, old::INTEGER) % 3)::INTEGER] AS status,
    strftime(TIMESTAMP '2023-01-01 00:00:00' + to_seconds((hash(id, 4) % 31536000)::BIGINT), '%Y-%m-%dT%H:%M:%S')
      || (['Z', '+00:00', '+02:00', '-05:00', '+05:30'])[1 + (hash(id, 5) % 5)::INTEGER] AS publishedAt,
    TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds((hash(id, 2) % 60000000)::BIGINT)
      - CASE WHEN old THEN to_days((1 + hash(i, 3) % 30)::INTEGER) ELSE INTERVAL 0 DAY END AS updatedAt,
    CASE WHEN id % 2 = 0 THEN '+1-555-' || lpad((hash(id, 6) % 1000)::VARCHAR, 3, '0') || '-' || lpad((hash(id, 7) % 10000)::VARCHAR, 4, '0')
         ELSE '(555) ' || lpad((hash(id, 6) % 1000)::VARCHAR, 3, '0') || ' ' || lpad((hash(id, 7) % 10000)::VARCHAR, 4, '0') END AS phoneNumber,
    (['en', 'fr', 'de', 'es', 'pt', 'it'])[1 + (id % 6)::INTEGER] AS language,
    CASE WHEN id % 4 = 0 THEN ' ' ELSE '' END || (['news', 'sport', 'tech', 'travel', 'food', 'music', 'art'])[1 + (id % 7)::INTEGER] || CASE WHEN id % 5 = 0 THEN '  ' ELSE '' END AS category,
    CASE WHEN id % 10 < 7 THEN '' ELSE 'Subtitle ' || id END AS subtitle,
    (hash(id, 8) % 10 = 0) AS isPinned,
    round((hash(id, 10) % 100000)::DOUBLE / 1000.0, 3) AS score,
    (1 + hash(id, 11) % 5)::INTEGER AS rating,
    'https://example.com/posts/' || id AS sourceUrl,
    '  ' || (['eu-west', 'eu-north', 'us-east', 'us-west', 'ap-south'])[1 + (id % 5)::INTEGER] || ' ' AS regionName,
    CASE WHEN old THEN 1 ELSE 2 END AS revision,
    DATE '2022-01-01' + (id % 700)::INTEGER AS createdDate,
    {
      'id': (hash(id, 12) % 200000)::BIGINT,
      'name': CASE WHEN id % 7 = 0 THEN ' Author ' || (hash(id, 12) % 200000) || '  ' ELSE 'Author ' || (hash(id, 12) % 200000) END,
      'email': 'user' || (hash(id, 12) % 200000) || '@mail' || (id % 9) || '.example.com',
      'country': CASE WHEN id % 10 = 3 THEN '' ELSE (['FR', 'DE', 'US', 'GB', 'IN', 'BR', 'JP'])[1 + (hash(id, 13) % 7)::INTEGER] END
    } AS author,
    {
      'views': (hash(id, 14) % 100000 + CASE WHEN old THEN 0 ELSE 5000 END)::BIGINT,
      'likes': (hash(id, 15) % 5000)::BIGINT,
      'comments': (hash(id, 16) % 500)::BIGINT,
      'shares': (hash(id, 17) % 200)::BIGINT
    } AS metrics
  FROM r
) TO ${sqlLit(out)} (FORMAT parquet, COMPRESSION zstd)`;
}

export interface InputFile {
  path: string;
  rows: number;
  bytes: number;
  /** Distinct ids, and distinct ids with a bad externalCode (quarantined by the regex check). */
  ids: number;
  badIds: number;
  /** Input rows with a bad code (every version of a bad id). */
  badRows: number;
  reused: boolean;
  generateMs?: number;
}

/** The input Parquet for `rows` rows, generated with DuckDB unless bench/.cache/ already has it. */
export async function ensureInput(rows: number): Promise<InputFile> {
  const path = join(CACHE, `silver-posts-${rows}.parquet`);
  const metaPath = `${path}.meta.json`;
  if (existsSync(path) && existsSync(metaPath)) {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as {
      version: number;
      rows: number;
      bytes: number;
      ids: number;
      badIds: number;
      badRows?: number;
    };
    if (meta.version === DATA_VERSION && meta.rows === rows && meta.bytes === (await stat(path)).size) {
      if (meta.badRows === undefined) {
        meta.badRows = (await inputCounts(path)).badRows;
        await writeFile(metaPath, `${JSON.stringify(meta)}\n`);
      }
      return { path, rows, bytes: meta.bytes, ids: meta.ids, badIds: meta.badIds, badRows: meta.badRows, reused: true };
    }
  }
  await mkdir(CACHE, { recursive: true });
  log(`generating ${path} (${fmtInt(rows)} rows) with DuckDB …`);
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const tmp = `${path}.tmp`;
  const started = performance.now();
  const db = await DuckDBInstance.create(':memory:', { threads: String(cpus().length) });
  const conn = await db.connect();
  try {
    await conn.run(generatorSql(rows, tmp));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  const counts = await inputCounts(tmp);
  await rename(tmp, path);
  const bytes = (await stat(path)).size;
  await writeFile(metaPath, `${JSON.stringify({ version: DATA_VERSION, rows, bytes, ...counts })}\n`);
  const generateMs = performance.now() - started;
  log(`generated ${(bytes / MB).toFixed(0)} MB in ${(generateMs / 1000).toFixed(1)} s`);
  return { path, rows, bytes, ...counts, reused: false, generateMs };
}

/** Distinct ids, and the ids and rows with a bad code, of an input file. */
async function inputCounts(path: string): Promise<{ ids: number; badIds: number; badRows: number }> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: String(cpus().length) });
  const conn = await db.connect();
  try {
    const r = await conn.runAndReadAll(
      `SELECT count(DISTINCT id) AS ids, count(DISTINCT id) FILTER (WHERE id % 1250 = 7) AS bad_ids, count(*) FILTER (WHERE id % 1250 = 7) AS bad_rows FROM read_parquet(${sqlLit(path)})`,
    );
    const row = r.getRowObjectsJson()[0] as Record<string, string | number>;
    return { ids: Number(row['ids']), badIds: Number(row['bad_ids']), badRows: Number(row['bad_rows']) };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

// ─── child processes ───────────────────────────────────────────────────────────────────

export async function filesUnder(dir: string, ext: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

async function bytesOf(paths: string[]): Promise<number> {
  let total = 0;
  for (const p of paths) total += (await stat(p)).size;
  return total;
}

export async function warmPageCache(paths: string[]): Promise<void> {
  const buf = Buffer.allocUnsafe(8 * MIB);
  for (const p of paths) {
    const fh = await open(p, 'r');
    try {
      while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
    } finally {
      await fh.close();
    }
  }
}

// ─── the dip project ───────────────────────────────────────────────────────────────────

/** The six checks: all error severity; the regex one may fail on 0.1% (the bad codes go to quarantine). */
const CHECKS_YAML = `
          - { type: not_null, column: id }
          - { type: accepted_values, column: status, values: [active, inactive, pending] }
          - { type: range, column: metrics__views, min: 0 }
          - { type: format, column: author__email, format: email }
          - { type: regex, column: external_code, pattern: '^[A-Z]{2}-[0-9]{6}$', mostly: 0.999 }
          - { type: row_count, min: 1 }`;

export function projectYaml(input: InputFile, opts: Options, inputPath: string = input.path): string {
  return `# generated by bench/silver.ts
version: 1
project: bench-silver
storage: { kind: local, path: .dip/lake }
catalog: { kind: sqlite, path: .dip/catalog.db }
engine: { threads: ${opts.threads}, memory_limit: ${opts.memory} }
privacy: { salt: ${SALT} }
pipelines:
  ${PIPELINE}:
    raw: { enabled: false }
    sources:
      ${SOURCE}:
        type: files
        streams:
          ${BRONZE_TABLE}:
            path: ${JSON.stringify(inputPath)}
            format: parquet
            write_disposition: append
    silver:
      ${SILVER_TABLE}:
        from: ${BRONZE_TABLE}
        naming: snake_case
        trim: true
        empty_as_null: true
        primary_key: [id]
        dedup: { sort_by: updated_at }
        columns:
          published_at: { type: TIMESTAMPTZ }
          status: { map: { A: active, I: inactive, P: pending } }
          author__email: { pii: email, mask: hash }
          phone_number: { pii: phone, mask: last4 }
        checks:${CHECKS_YAML}
`;
}

interface Project {
  dir: string;
  bronzeFiles: string[];
  bronzeBytes: number;
  ingestSeconds: number;
  ingestPeakRssMiB: number | null;
}

interface DipRunJson {
  status: string;
  durationMs: number;
  stats: { streams: Record<string, { rows: number; quarantined: number }> };
}

/** A fresh project with the input landed in bronze by `dip run` (raw zone off). Not timed for the ratio. */
async function ingestProject(input: InputFile, opts: Options): Promise<Project> {
  const dir = join(WORK, 'project');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'dip.yaml'), projectYaml(input, opts));
  // `dip run` builds the silver tables after ingesting unless told not to (--no-silver, in
  // builds that have silver): here only bronze is wanted, silver is the timed step.
  const help = spawnSync(process.execPath, [DIP_CLI, 'run', '--help'], { encoding: 'utf8' });
  const noSilver = help.stdout.includes('--no-silver') ? ['--no-silver'] : [];
  log(`dip run ${noSilver.join(' ')}: ${fmtInt(input.rows)} rows → bronze.${BRONZE_TABLE} (raw zone off) …`);
  const m = await spawnMeasured(process.execPath, [
    DIP_CLI,
    'run',
    PIPELINE,
    ...noSilver,
    '--quiet',
    '--json',
    '-p',
    dir,
  ]);
  failIfBad('dip run (ingest into bronze)', m);
  const run = (JSON.parse(m.stdout) as DipRunJson[])[0];
  const streams = run?.stats.streams ?? {};
  const stream =
    streams[`${SOURCE}.${BRONZE_TABLE}`] ??
    streams[BRONZE_TABLE] ??
    Object.entries(streams).find(([k]) => !k.startsWith('silver.'))?.[1];
  if (!run || run.status !== 'succeeded' || !stream || stream.rows !== input.rows || stream.quarantined !== 0) {
    throw new BenchFailure(`dip run did not land ${input.rows} rows in bronze: ${m.stdout.slice(0, 2000)}`);
  }
  const bronzeFiles = await filesUnder(join(dir, '.dip', 'lake', 'bronze', SOURCE, BRONZE_TABLE), '.parquet');
  if (bronzeFiles.length === 0)
    throw new BenchFailure(
      `no bronze Parquet files under ${join(dir, '.dip', 'lake', 'bronze', SOURCE, BRONZE_TABLE)}`,
    );
  const bronzeBytes = await bytesOf(bronzeFiles);
  log(
    `bronze: ${bronzeFiles.length} file(s), ${(bronzeBytes / MB).toFixed(1)} MB, dip run took ${(m.wallMs / 1000).toFixed(1)} s`,
  );
  return {
    dir,
    bronzeFiles,
    bronzeBytes,
    ingestSeconds: m.wallMs / 1000,
    ingestPeakRssMiB: m.peakRssKiB === null ? null : m.peakRssKiB / 1024,
  };
}

// ─── (a) the baseline: one hand-written statement ──────────────────────────────────────

/** Text standardization a user writes per text column: trim, then '' → NULL. */
const txt = (expr: string) => `nullif(trim(${expr}), '')`;

/**
 * The silver row before masks, from bronze column references (`p` is the prefix: `` for
 * bronze columns, `r.` for the arg_max struct). Names snake_case, objects flattened a__b.
 */
function standardized(p: string): string {
  return [
    `${p}id AS id`,
    `${txt(`${p}externalCode`)} AS external_code`,
    `${txt(`${p}title`)} AS title`,
    `${txt(`${p}body`)} AS body`,
    `CASE ${txt(`${p}status`)} WHEN 'A' THEN 'active' WHEN 'I' THEN 'inactive' WHEN 'P' THEN 'pending' ELSE ${txt(`${p}status`)} END AS status`,
    `${txt(`${p}publishedAt`)}::TIMESTAMPTZ AS published_at`,
    `${p}updatedAt AS updated_at`,
    `${txt(`${p}phoneNumber`)} AS phone_number`,
    `${txt(`${p}language`)} AS language`,
    `${txt(`${p}category`)} AS category`,
    `${txt(`${p}subtitle`)} AS subtitle`,
    `${p}isPinned AS is_pinned`,
    `${p}score AS score`,
    `${p}rating AS rating`,
    `${txt(`${p}sourceUrl`)} AS source_url`,
    `${txt(`${p}regionName`)} AS region_name`,
    `${p}revision AS revision`,
    `${p}createdDate AS created_date`,
    `${p}author.id AS author__id`,
    `${txt(`${p}author.name`)} AS author__name`,
    `${txt(`${p}author.email`)} AS author__email`,
    `${txt(`${p}author.country`)} AS author__country`,
    `${p}metrics.views AS metrics__views`,
    `${p}metrics.likes AS metrics__likes`,
    `${p}metrics.comments AS metrics__comments`,
    `${p}metrics.shares AS metrics__shares`,
  ].join(',\n        ');
}

/**
 * The silver columns, masks applied, over the standardized, deduplicated rows `s`. last4:
 * translate() of all but the last 4 characters (every phone here ends in 4 digits), which
 * gives the same text as regexp_replace(…, '[0-9]', '*', 'g') at about 60% of its cost.
 */
const MASKED = `s.* REPLACE (
      sha256(${sqlLit(SALT)} || s.author__email) AS author__email,
      translate(left(s.phone_number, -4), '0123456789', '**********') || right(s.phone_number, 4) AS phone_number
    )`;

/** Row checks of error severity (nulls pass all but not_null); failing rows are left out, as dip quarantines them. row_count is a table check. */
const ROW_CHECKS = `s.id IS NOT NULL
    AND (s.status IS NULL OR s.status IN ('active', 'inactive', 'pending'))
    AND (s.metrics__views IS NULL OR s.metrics__views >= 0)
    AND (s.author__email IS NULL OR regexp_full_match(s.author__email, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+'))
    AND (s.external_code IS NULL OR regexp_full_match(s.external_code, '[A-Z]{2}-[0-9]{6}'))`;

/**
 * The whole bronze → silver refinement as one COPY. Every variant dedups first, then
 * standardizes the survivors, checks and masks (checks see values before masking). The bad
 * codes are on every version of an id, so checking before or after dedup drops the same ids.
 *
 * - qualify: row_number() over (partition by id order by updatedAt desc) = 1, first/last
 *   seen as window min/max over the same partition;
 * - arg_max: group by id, arg_max(whole row as a struct, updatedAt);
 * - max_join: group by id for max(updatedAt) and first/last seen (keys only), joined back to
 *   a second scan of bronze on (id, updatedAt). Keeps ties on the latest updatedAt (there are
 *   none in this data: older versions are at least a day older; the row count check would
 *   catch them).
 */
function baselineSql(variant: BaselineVariant, bronzeFiles: string[], out: string): string {
  const bronze = `read_parquet([${bronzeFiles.map(sqlLit).join(', ')}], hive_partitioning = false)`;
  const deduped =
    variant === 'max_join'
      ? `SELECT
        ${standardized('b.')},
        k.first_seen AS _dip_first_seen,
        k.last_seen AS _dip_last_seen
      FROM ${bronze} b
      JOIN (
        SELECT id, max(updatedAt) AS latest, min(_dip_ingested_at) AS first_seen, max(_dip_ingested_at) AS last_seen
        FROM ${bronze}
        GROUP BY id
      ) k ON b.id = k.id AND b.updatedAt = k.latest`
      : variant === 'qualify'
        ? `SELECT
        ${standardized('')},
        min(_dip_ingested_at) OVER (PARTITION BY id) AS _dip_first_seen,
        max(_dip_ingested_at) OVER (PARTITION BY id) AS _dip_last_seen
      FROM ${bronze}
      QUALIFY row_number() OVER (PARTITION BY id ORDER BY updatedAt DESC) = 1`
        : `SELECT
        ${standardized('r.')},
        first_seen AS _dip_first_seen,
        last_seen AS _dip_last_seen
      FROM (
        SELECT arg_max(b, b.updatedAt) AS r, min(b._dip_ingested_at) AS first_seen, max(b._dip_ingested_at) AS last_seen
        FROM ${bronze} b
        GROUP BY b.id
      )`;
  return `COPY (
  SELECT ${MASKED}
  FROM (
      ${deduped}
  ) s
  WHERE ${ROW_CHECKS}
) TO ${sqlLit(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`;
}

// ─── diagnose ──────────────────────────────────────────────────────────────────────────

/**
 * The parts of the baseline statement alone, each in a fresh baseline process over the same
 * bronze files: what the writer, the dedup and each expression cost. Expressions are timed
 * as `SELECT sum(length(expr))` less the same over the bare column(s) (the scan), so the
 * figure is the function's own cost. dip's last4 macro (src/transform/mask.ts) is timed too:
 * it finds the 4th-last digit with a regex where the baseline assumes the value ends in 4 digits.
 */
function diagnoseStatements(bronzeFiles: string[], out: string): { name: string; sql: string; minus?: string }[] {
  const b = `read_parquet([${bronzeFiles.map(sqlLit).join(', ')}], hive_partitioning = false)`;
  const copy = (select: string) =>
    `COPY (${select}) TO ${sqlLit(out)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)`;
  const keys = `(SELECT id, max(updatedAt) AS latest FROM ${b} GROUP BY id) k`;
  const texts = [
    'externalCode',
    'title',
    'body',
    'status',
    'publishedAt',
    'phoneNumber',
    'language',
    'category',
    'subtitle',
    'sourceUrl',
    'regionName',
    'author.name',
    'author.email',
    'author.country',
  ];
  const lengths = (exprs: string[]) =>
    `SELECT ${exprs.map((e, i) => `sum(length(${e})) AS l${i}`).join(', ')} FROM ${b}`;
  const salt = sqlLit(SALT);
  return [
    { name: 'rewrite bronze as is: COPY * → Parquet zstd level 1', sql: copy(`SELECT * FROM ${b}`) },
    {
      name: 'dedup only, max_join: COPY the latest rows as is',
      sql: copy(`SELECT b.* FROM ${b} b JOIN ${keys} ON b.id = k.id AND b.updatedAt = k.latest`),
    },
    {
      name: 'dedup only, qualify: COPY the latest rows as is',
      sql: copy(`SELECT * FROM ${b} QUALIFY row_number() OVER (PARTITION BY id ORDER BY updatedAt DESC) = 1`),
    },
    { name: 'expr: trim + empty→null on the 14 text columns', sql: lengths(texts.map(txt)), minus: lengths(texts) },
    {
      name: 'expr: publishedAt text → TIMESTAMPTZ',
      sql: `SELECT sum(epoch(publishedAt::TIMESTAMPTZ)) FROM ${b}`,
      minus: `SELECT sum(length(publishedAt)) FROM ${b}`,
    },
    {
      name: 'expr: status map (CASE)',
      sql: lengths([
        `CASE status WHEN 'A' THEN 'active' WHEN 'I' THEN 'inactive' WHEN 'P' THEN 'pending' ELSE status END`,
      ]),
      minus: lengths(['status']),
    },
    {
      name: 'expr: hash mask sha256(salt || email)',
      sql: lengths([`sha256(${salt} || author.email)`]),
      minus: lengths(['author.email']),
    },
    {
      name: 'expr: last4 mask, translate (baseline)',
      sql: lengths([`translate(left(phoneNumber, -4), '0123456789', '**********') || right(phoneNumber, 4)`]),
      minus: lengths(['phoneNumber']),
    },
    {
      name: 'expr: last4 mask, regexp_replace [0-9] → *',
      sql: lengths([`regexp_replace(left(phoneNumber, -4), '[0-9]', '*', 'g') || right(phoneNumber, 4)`]),
      minus: lengths(['phoneNumber']),
    },
    {
      name: "expr: last4 mask, dip's macro (regexp_extract + translate)",
      sql: lengths([
        `translate(left(phoneNumber, length(phoneNumber) - length(regexp_extract(phoneNumber, '(\\d\\D*){0,4}$'))), '0123456789', '**********') || regexp_extract(phoneNumber, '(\\d\\D*){0,4}$')`,
      ]),
      minus: lengths(['phoneNumber']),
    },
    {
      name: 'expr: the 2 regex checks (email format, code pattern)',
      sql: `SELECT count(*) FROM ${b} WHERE regexp_full_match(author.email, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+') AND regexp_full_match(externalCode, '[A-Z]{2}-[0-9]{6}')`,
      minus: `SELECT count(*) FROM ${b} WHERE length(author.email) > 0 AND length(externalCode) > 0`,
    },
  ];
}

interface DiagnoseRow {
  name: string;
  seconds: number;
  cpuSeconds: number | null;
  peakRssMiB: number | null;
}

async function runDiagnose(project: Project, opts: Options): Promise<DiagnoseRow[]> {
  const dir = join(WORK, 'diagnose');
  const rows: DiagnoseRow[] = [];
  const once = async (sql: string) => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    syncDisks();
    const m = await spawnMeasured(process.execPath, [
      BASELINE,
      JSON.stringify({ sql, threads: opts.threads, memoryLimit: opts.memory, tempDirectory: join(dir, 'spill') }),
    ]);
    failIfBad('diagnose statement', m);
    const r = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { copyMs: number };
    return { ms: r.copyMs, cpu: m.cpuSec, rss: m.peakRssKiB };
  };
  for (const st of diagnoseStatements(project.bronzeFiles, join(dir, 'out.parquet'))) {
    log(`diagnose: ${st.name}`);
    try {
      const a = await once(st.sql);
      const z = st.minus ? await once(st.minus) : undefined;
      rows.push({
        name: st.name,
        seconds: (a.ms - (z?.ms ?? 0)) / 1000,
        cpuSeconds: a.cpu === null ? null : a.cpu - (z?.cpu ?? 0),
        peakRssMiB: a.rss === null ? null : a.rss / 1024,
      });
    } catch (err) {
      if (!(err instanceof BenchFailure)) throw err;
      log(`diagnose: ${st.name} failed: ${firstLine(err.message)}`);
      rows.push({
        name: `${st.name} — failed: ${firstLine(err.message)}`,
        seconds: NaN,
        cpuSeconds: null,
        peakRssMiB: null,
      });
    }
  }
  await rm(dir, { recursive: true, force: true });
  return rows;
}

function diagnoseTable(rows: DiagnoseRow[], markdown: boolean): string {
  return renderTable(
    ['part of the baseline, alone (expr: less the bare scan)', 'in-process s', 'CPU s', 'peak RSS MiB'],
    rows.map((r) => [
      r.name,
      Number.isNaN(r.seconds) ? 'n/a' : r.seconds.toFixed(2),
      r.cpuSeconds === null ? 'n/a' : r.cpuSeconds.toFixed(2),
      r.peakRssMiB === null ? 'n/a' : fmtInt(r.peakRssMiB),
    ]),
    markdown,
    [false, true, true, true],
  );
}

// ─── runs ──────────────────────────────────────────────────────────────────────────────

interface RunSample {
  variant: Variant;
  wallMs: number;
  /** Time inside the process: the baseline's statement; dip's durationMs when its JSON output has one. */
  innerMs: number | null;
  peakRssKiB: number | null;
  cpuSec: number | null;
  rowsOut: number | null;
  outBytes: number | null;
  /** dip's own report of the build. */
  dip?: { inputRows: number; quarantined: number; mode: string; quality: string | null };
}

async function runBaseline(variant: BaselineVariant, project: Project, opts: Options): Promise<RunSample> {
  const dir = join(WORK, `baseline-${variant}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const out = join(dir, 'silver.parquet');
  syncDisks();
  const m = await spawnMeasured(process.execPath, [
    BASELINE,
    JSON.stringify({
      sql: baselineSql(variant, project.bronzeFiles, out),
      threads: opts.threads,
      memoryLimit: opts.memory,
      tempDirectory: join(dir, 'spill'),
    }),
  ]);
  failIfBad(`baseline (${variant})`, m);
  const result = JSON.parse(m.stdout.trim().split('\n').pop() ?? '{}') as { rows: number; copyMs: number };
  return {
    variant,
    wallMs: m.wallMs,
    innerMs: result.copyMs,
    peakRssKiB: m.peakRssKiB,
    cpuSec: m.cpuSec,
    rowsOut: result.rows,
    outBytes: (await stat(out)).size,
  };
}

/**
 * (b) The timed dip step: `dip transform <pipeline> --full-refresh`, the whole silver table
 * rebuilt from bronze. The one place the command line is spelled out.
 */
async function runDipTransform(project: Project): Promise<Measured> {
  syncDisks();
  return spawnMeasured(process.execPath, [
    DIP_CLI,
    'transform',
    PIPELINE,
    '--full-refresh',
    '--quiet',
    '--json',
    '-p',
    project.dir,
  ]);
}

async function dipQuery(project: Project, sql: string): Promise<Record<string, unknown>[]> {
  const m = await spawnMeasured(process.execPath, [DIP_CLI, 'query', '--json', '-p', project.dir, sql]);
  failIfBad(`dip query ${sql}`, m);
  return JSON.parse(m.stdout) as Record<string, unknown>[];
}

/** What `dip transform --json` reports per silver table (src/transform/silver.ts SilverTableResult). */
interface DipTableResult {
  table: string;
  mode: string;
  inputRows: number;
  rows: number;
  newRows: number;
  quarantined: number;
  quality?: string;
}

async function runDip(project: Project): Promise<RunSample> {
  const silverDir = join(project.dir, '.dip', 'lake', 'silver');
  const before = new Set(await filesUnder(silverDir, '.parquet'));
  const m = await runDipTransform(project);
  failIfBad('dip transform', m);
  let result: DipTableResult | undefined;
  try {
    const doc = JSON.parse(m.stdout) as DipTableResult[];
    result = doc.find((r) => r.table === SILVER_TABLE || r.table === `silver.${SILVER_TABLE}`);
  } catch {
    throw new BenchFailure(`dip transform --json printed no JSON:\n${m.stdout.slice(0, 2000)}`);
  }
  if (!result)
    throw new BenchFailure(`dip transform --json reported no silver table ${SILVER_TABLE}: ${m.stdout.slice(0, 2000)}`);
  const rows = Number((await dipQuery(project, `select count(*) n from silver.${SILVER_TABLE}`))[0]?.['n'] ?? NaN);
  if (rows !== result.rows)
    throw new BenchFailure(`dip transform reported ${result.rows} rows, silver.${SILVER_TABLE} holds ${rows}`);
  // Every --full-refresh adds a version of the table; this run's output is the files it added.
  const added = (await filesUnder(silverDir, '.parquet')).filter((f) => !before.has(f));
  return {
    variant: 'dip',
    wallMs: m.wallMs,
    innerMs: null,
    peakRssKiB: m.peakRssKiB,
    cpuSec: m.cpuSec,
    rowsOut: rows,
    outBytes: added.length ? await bytesOf(added) : null,
    dip: {
      inputRows: result.inputRows,
      quarantined: result.quarantined,
      mode: result.mode,
      quality: result.quality ?? null,
    },
  };
}

// ─── content check ─────────────────────────────────────────────────────────────────────

/** Figures over the silver table that both sides must agree on (masks included). */
export function fingerprintSql(from: string): string {
  return `SELECT count(*) AS rows, count(DISTINCT id) AS ids, sum(metrics__views) AS views, sum(revision) AS revisions,
    count(*) FILTER (WHERE status = 'active') AS active, count(subtitle) AS subtitles, count(author__country) AS countries,
    sum(length(title)) AS title_chars, sum(length(category)) AS category_chars, sum(length(author__name)) AS author_name_chars,
    sum(epoch(published_at))::BIGINT AS published_epoch_sum, count(DISTINCT author__email) AS email_hashes,
    max(author__email) AS max_email_hash, sum(hash(phone_number) % 1000003) AS phone_hash_sum,
    min(_dip_first_seen)::VARCHAR AS first_seen
  FROM ${from}`;
}

async function baselineFingerprint(path: string): Promise<Record<string, string>> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await db.connect();
  try {
    const r = await conn.runAndReadAll(fingerprintSql(`read_parquet(${sqlLit(path)})`));
    return Object.fromEntries(Object.entries(r.getRowObjectsJson()[0] ?? {}).map(([k, v]) => [k, String(v)]));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

// ─── summary ───────────────────────────────────────────────────────────────────────────

interface Summary {
  variant: Variant;
  label: string;
  runs: number;
  seconds: number;
  innerSeconds: number | null;
  cpuSeconds: number | null;
  rowsIn: number;
  rowsOut: number | null;
  rowsPerSec: number;
  peakRssMiB: number | null;
  outMB: number | null;
  /** wall-time ratio against the baseline (the faster dedup variant); 1 for the baseline itself. */
  ratio: number | null;
  cpuRatio: number | null;
  baseline: boolean;
  pass: boolean | null;
  samples: { seconds: number; cpuSeconds: number | null; peakRssMiB: number | null }[];
}

function summarize(rowsIn: number, samples: RunSample[]): Summary[] {
  const by = (v: Variant) => samples.filter((s) => s.variant === v);
  const secs = (runs: RunSample[]) => median(runs.map((s) => s.wallMs)) / 1000;
  const cpuOf = (runs: RunSample[]) => {
    const xs = runs.map((s) => s.cpuSec).filter((x): x is number => x !== null);
    return xs.length === runs.length ? median(xs) : null;
  };
  const bases = BASELINES.filter((v) => by(v).length > 0);
  const base = bases.length ? bases.reduce((a, b) => (secs(by(b)) < secs(by(a)) ? b : a)) : undefined;
  const baseSec = base ? secs(by(base)) : null;
  const baseCpu = base ? cpuOf(by(base)) : null;
  const out: Summary[] = [];
  for (const v of VARIANTS) {
    const runs = by(v);
    if (!runs.length) continue;
    const seconds = secs(runs);
    const cpuSeconds = cpuOf(runs);
    const inner = runs.map((s) => s.innerMs).filter((x): x is number => x !== null);
    const rss = runs.map((s) => s.peakRssKiB).filter((x): x is number => x !== null);
    const ratio = baseSec === null ? null : seconds / baseSec;
    const last = runs[runs.length - 1];
    out.push({
      variant: v,
      label: LABEL[v],
      runs: runs.length,
      seconds,
      innerSeconds: inner.length === runs.length ? median(inner) / 1000 : null,
      cpuSeconds,
      rowsIn,
      rowsOut: last?.rowsOut ?? null,
      rowsPerSec: rowsIn / seconds,
      peakRssMiB: rss.length ? Math.max(...rss) / 1024 : null,
      outMB: last?.outBytes == null ? null : last.outBytes / MB,
      ratio,
      cpuRatio: baseCpu === null || cpuSeconds === null ? null : cpuSeconds / baseCpu,
      baseline: v === base,
      pass: v === 'dip' && ratio !== null ? ratio <= TARGET_RATIO : null,
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
    'rows in',
    'rows out',
    'rows/s (in)',
    'peak RSS MiB',
    'output MB',
    'ratio',
    'CPU ratio',
    'target',
    'result',
  ];
  const rows = summary.map((s) => [
    s.baseline ? `${s.label} (baseline)` : s.label,
    String(s.runs),
    s.seconds.toFixed(2),
    s.innerSeconds === null ? 'n/a' : s.innerSeconds.toFixed(2),
    s.cpuSeconds === null ? 'n/a' : s.cpuSeconds.toFixed(2),
    fmtInt(s.rowsIn),
    s.rowsOut === null ? 'n/a' : fmtInt(s.rowsOut),
    fmtInt(s.rowsPerSec),
    s.peakRssMiB === null ? 'n/a' : fmtInt(s.peakRssMiB),
    s.outMB === null ? 'n/a' : s.outMB.toFixed(1),
    s.ratio === null ? 'n/a' : s.ratio.toFixed(2),
    s.cpuRatio === null ? 'n/a' : s.cpuRatio.toFixed(2),
    s.variant === 'dip' ? `≤ ${TARGET_RATIO.toFixed(2)}` : '—',
    s.pass === null ? '—' : s.pass ? 'PASS' : 'FAIL',
  ]);
  return renderTable(head, rows, markdown, [
    false,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    false,
  ]);
}

// ─── main ──────────────────────────────────────────────────────────────────────────────

async function runVariant(v: Variant, project: Project, opts: Options): Promise<RunSample> {
  return v === 'dip' ? runDip(project) : runBaseline(v, project, opts);
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parseOptions(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const opts = parsed.opts;
  if (opts.incremental) return (await import('./silver-incremental.js')).runIncremental(opts);
  if (!existsSync(join(opts.dist, 'cli', 'main.js'))) {
    process.stderr.write(`${join(opts.dist, 'cli', 'main.js')} is missing: build first (npm run build)\n`);
    return 1;
  }
  await mkdir(WORK, { recursive: true });
  await rm(DIST, { recursive: true, force: true });
  await cp(opts.dist, DIST, { recursive: true });
  const machine = machineInfo(ROOT);

  const samples: RunSample[] = [];
  const notes: string[] = [];
  let input: InputFile;
  let project: Project;
  let failure: string | undefined;
  let expectedRows: number;
  try {
    input = await ensureInput(opts.rows);
    expectedRows = input.ids - input.badIds;
    log(
      `input ${input.path}: ${fmtInt(input.rows)} rows, ${fmtInt(input.ids)} ids, ${fmtInt(input.badIds)} with a bad code → expect ${fmtInt(expectedRows)} silver rows${input.reused ? ' (cached)' : ''}`,
    );
    project = await ingestProject(input, opts);
    if (opts.printSql) {
      for (const v of BASELINES)
        process.stdout.write(
          `-- ${LABEL[v]}\n${baselineSql(v, project.bronzeFiles, join(WORK, `baseline-${v}`, 'silver.parquet'))};\n\n`,
        );
      return 0;
    }
    await warmPageCache(project.bronzeFiles);
  } catch (err) {
    if (err instanceof BenchFailure) {
      process.stderr.write(`\nFAILED: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  // A variant that fails (a baseline out of memory, dip without the transform command, a
  // wrong row count) is dropped from later runs; the others go on and are reported.
  const failed = new Map<Variant, string>();
  const attempt = async (v: Variant, what: string): Promise<RunSample | undefined> => {
    if (failed.has(v)) return undefined;
    log(`${what} ${v} …`);
    try {
      const s = await runVariant(v, project, opts);
      log(
        `${what} ${v}: ${(s.wallMs / 1000).toFixed(2)} s, ${s.rowsOut === null ? '?' : fmtInt(s.rowsOut)} rows out, peak RSS ${s.peakRssKiB === null ? 'n/a' : `${Math.round(s.peakRssKiB / 1024)} MiB`}`,
      );
      if (s.rowsOut !== expectedRows)
        throw new BenchFailure(
          `${v} wrote ${s.rowsOut} silver rows, expected ${expectedRows} (distinct ids less those with a bad code)`,
        );
      return s;
    } catch (err) {
      if (!(err instanceof BenchFailure)) throw err;
      failed.set(v, err.message);
      log(`${v} FAILED, left out of the remaining runs: ${firstLine(err.message)}`);
      return undefined;
    }
  };
  for (let w = 0; w < opts.warmup; w++) {
    for (const v of opts.variants) await attempt(v, `warm-up ${w + 1}/${opts.warmup}`);
  }
  for (let r = 0; r < opts.runs; r++) {
    for (const v of opts.variants) {
      const s = await attempt(v, `run ${r + 1}/${opts.runs}`);
      if (s) samples.push(s);
    }
  }
  const dipRuns = samples.filter((s) => s.dip);
  if (dipRuns.length) {
    const d = dipRuns.map((s) => s.dip).at(-1);
    if (d) {
      notes.push(
        `dip transform reported: ${d.mode} build, ${fmtInt(d.inputRows)} input rows, ${fmtInt(d.quarantined)} quarantined ` +
          `(the input has ${fmtInt(input.badRows)} rows / ${fmtInt(input.badIds)} ids with a bad code), quality ${d.quality ?? 'n/a'}`,
      );
    }
  }
  // A baseline variant that does not complete is a finding (reported), not a bench failure.
  for (const [v, message] of failed) notes.push(`${v} failed: ${firstLine(message)}`);
  if (failed.has('dip')) failure = failed.get('dip');
  if (BASELINES.some((v) => opts.variants.includes(v)) && !samples.some((s) => s.variant !== 'dip'))
    failure ??= 'no baseline variant completed';
  for (const [v, message] of failed) if (message.includes('silver rows, expected')) failure ??= `${v}: ${message}`;

  // Content: the baseline outputs against each other, and dip's silver table against them.
  const fingerprints: Record<string, Record<string, string>> = {};
  try {
    for (const v of BASELINES) {
      const path = join(WORK, `baseline-${v}`, 'silver.parquet');
      if (samples.some((s) => s.variant === v) && existsSync(path)) fingerprints[v] = await baselineFingerprint(path);
    }
    if (samples.some((s) => s.variant === 'dip')) {
      const rows = await dipQuery(project, fingerprintSql(`silver.${SILVER_TABLE}`));
      fingerprints['dip'] = Object.fromEntries(Object.entries(rows[0] ?? {}).map(([k, v]) => [k, String(v)]));
    }
  } catch (err) {
    notes.push(`content comparison failed: ${firstLine(err instanceof Error ? err.message : String(err))}`);
  }
  const [refName, ref] = Object.entries(fingerprints)[0] ?? [];
  for (const [name, fp] of Object.entries(fingerprints)) {
    if (!ref || name === refName) continue;
    const diff = Object.keys(ref).filter((k) => fp[k] !== ref[k]);
    notes.push(
      diff.length
        ? `content: ${name} differs from ${refName} in ${diff.map((k) => `${k} (${fp[k]} vs ${ref[k]})`).join(', ')}`
        : `content: ${name} matches ${refName} (${Object.keys(ref).length} figures)`,
    );
  }

  const diagnose = opts.diagnose ? await runDiagnose(project, opts) : undefined;
  const summary = summarize(input.rows, samples);
  machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const doc = {
    benchmark: 'silver',
    machine,
    config: { threads: opts.threads, memoryLimit: opts.memory, runs: opts.runs, warmup: opts.warmup, salt: SALT },
    input: {
      path: input.path,
      rows: input.rows,
      bytes: input.bytes,
      ids: input.ids,
      badIds: input.badIds,
      badRows: input.badRows,
      reused: input.reused,
      generateSeconds: input.generateMs === undefined ? null : input.generateMs / 1000,
    },
    bronze: {
      files: project.bronzeFiles.length,
      bytes: project.bronzeBytes,
      ingestSeconds: project.ingestSeconds,
      ingestPeakRssMiB: project.ingestPeakRssMiB,
    },
    expectedRowsOut: expectedRows,
    targetRatio: TARGET_RATIO,
    results: summary,
    fingerprints,
    diagnose,
    notes,
    failure: failure ?? null,
  };
  await writeFile(join(BENCH_DIR, '.work', 'last-silver.json'), `${JSON.stringify(doc, null, 2)}\n`);

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const p = (s: string) => process.stdout.write(`${s}\n`);
    p(
      `\nsilver benchmark · ${machine.date} · commit ${machine.commit} · ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB · node ${machine.node}`,
    );
    p(
      `load average (1/5/15 min) at start ${machine.loadAverageAtStart.join(' ')}, at end ${machine.loadAverageAtEnd.join(' ')}`,
    );
    p(
      `DuckDB threads=${opts.threads}, memory_limit=${opts.memory} on both sides; median of ${opts.runs}${opts.warmup ? ` after ${opts.warmup} warm-up` : ''}`,
    );
    p(
      `input ${input.path}: ${fmtInt(input.rows)} rows, ${(input.bytes / MB).toFixed(1)} MB Parquet${input.reused ? ' (cached)' : `, generated in ${((input.generateMs ?? 0) / 1000).toFixed(1)} s`}; ` +
        `bronze ${project.bronzeFiles.length} file(s), ${(project.bronzeBytes / MB).toFixed(1)} MB, ingested by dip run in ${project.ingestSeconds.toFixed(1)} s (not timed below)`,
    );
    p(
      `expected silver rows: ${fmtInt(input.ids)} distinct ids − ${fmtInt(input.badIds)} quarantined = ${fmtInt(expectedRows)}\n`,
    );
    p(summary.length ? resultsTable(summary, opts.markdown) : '(no completed runs)');
    for (const n of notes) p(`\n${n}`);
    if (diagnose) {
      p(`\nthe parts of the baseline statement, each alone in a fresh baseline process (one run each):\n`);
      p(diagnoseTable(diagnose, opts.markdown));
    }
    if (failure)
      p(
        `\nFAILED: ${firstLine(failure)}${failed.has('dip') ? ' (dip transform)' : ''}; details in bench/.work/last-silver.json`,
      );
  }
  if (!opts.keep && !failure) {
    await rm(join(WORK, 'project'), { recursive: true, force: true });
    for (const v of BASELINES) await rm(join(WORK, `baseline-${v}`), { recursive: true, force: true });
  }
  if (failure) return 1;
  const dip = summary.find((s) => s.variant === 'dip');
  return opts.check && dip?.pass === false ? 2 : 0;
}
