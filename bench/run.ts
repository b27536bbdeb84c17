/**
 * Benchmark dispatcher.
 *
 *   npm run bench                      every registered benchmark, default options
 *   npm run bench -- files --rows 1e6  one benchmark, the rest of the arguments are its own
 *   npm run bench -- --json            every benchmark, each given --json
 *   npm run bench -- list              what is registered
 *
 * A benchmark is a module whose `main(args)` resolves to a process exit code. Register new
 * ones (rest, postgres, silver, scheduler, …) in BENCHMARKS below; modules are imported lazily
 * so one benchmark's dependencies never load for another.
 */
export interface Benchmark {
  description: string;
  load: () => Promise<{ main(args: string[]): Promise<number> }>;
}

export const BENCHMARKS: Record<string, Benchmark> = {
  files: {
    description: 'CSV → bronze: `dip run` vs raw DuckDB COPY read_csv → Parquet (rows/s, MB/s, peak RSS, ratio)',
    load: () => import('./files.js'),
  },
  landing: {
    description:
      'one CSV, Parquet or JSON file → bronze, raw zone on and off, vs DuckDB COPY → Parquet (issue 15; --file for real data)',
    load: () => import('./landing.js'),
  },
  rest: {
    description:
      'REST API → bronze: `dip run` (cursor, parallel offset) vs hand-written fetch/undici loops (pages/s, records/s, ratios)',
    load: () => import('./rest.js'),
  },
  postgres: {
    description:
      'PostgreSQL → bronze: `dip run` full extract vs psql \\copy (csv, binary), and CDC lag under pgbench (p50/p95/p99)',
    load: () => import('./postgres.js'),
  },
  silver: {
    description:
      'bronze → silver: `dip transform --full-refresh` (standardize, dedup, 2 masks, 6 checks) vs one hand-written DuckDB statement (rows/s, ratio)',
    load: () => import('./silver.js'),
  },
  gold: {
    description:
      'gold: an SCD2 merge (5% changed) into a 2M-row dimension vs one hand-written DuckDB statement (≤ 1.5×), and a 10M-row fact build with 3 as-of lookups vs a hand-written ASOF JOIN (≤ 1.3×); peak RSS',
    load: () => import('./gold.js'),
  },
  scheduler: {
    description:
      'orchestrator: a 1,000 no-op task DAG and a 10,000-interval backfill, in-process (and with --workers N via pg-boss): tasks/s, intervals/s vs an in-memory executor',
    load: () => import('./scheduler.js'),
  },
  gateway: {
    description:
      "push path: `dip gateway` (auth, idempotency, fsync before 2xx) vs a bare Fastify POST handler, 1 KB events single and NDJSON×100 (req/s, events/s, p99 at half peak), and the lander's ack-to-queryable lag",
    load: () => import('./gateway.js'),
  },
  s3: {
    description:
      'S3 lake: `dip run` of 5M CSV rows into an S3-compatible server (s3rver) vs the local lake, and vs uploading the same bytes with the AWS SDK alone (ratios)',
    load: () => import('./s3.js'),
  },
  kafka: {
    description:
      'broker → bronze: `dip run` from JetStream (3 subjects) vs a bare ordered-consumer read (messages/s, ratio) and ack-to-queryable p50/p99 under 5,000 events/s with --follow; Kafka with DIP_KAFKA_BROKERS',
    load: () => import('./kafka.js'),
  },
  load: {
    description:
      'lake table → PostgreSQL (issue 18): dip load replace/append vs psql \\copy FROM csv, merge of 5% vs a hand-written INSERT … ON CONFLICT from staging',
    load: () => import('./load.js'),
  },
  startup: {
    description:
      "CLI start-up: `dip --version`, `dip --help` and a no-op `dip run` vs bare `node -e ''` in the same rounds (medians, ratios; --compare DIR for a before build)",
    load: () => import('./startup.js'),
  },
};

function usage(): string {
  const names = Object.entries(BENCHMARKS).map(([name, b]) => `  ${name.padEnd(12)} ${b.description}`);
  return `usage: npm run bench [-- <name> [options]]\n\nbenchmarks:\n${names.join('\n')}\n\nnpm run bench -- <name> --help shows a benchmark's options.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === 'list' || first === '--help' || first === '-h') {
    process.stdout.write(usage());
    return 0;
  }
  let chosen: [string, Benchmark][];
  let args: string[];
  if (first === undefined || first.startsWith('-')) {
    chosen = Object.entries(BENCHMARKS);
    args = argv;
  } else {
    const bench = BENCHMARKS[first];
    if (!bench) {
      process.stderr.write(`unknown benchmark "${first}"\n\n${usage()}`);
      return 64;
    }
    chosen = [[first, bench]];
    args = rest;
  }
  let code = 0;
  for (const [name, bench] of chosen) {
    if (chosen.length > 1) process.stderr.write(`\n=== bench ${name} ===\n`);
    const mod = await bench.load();
    const rc = await mod.main(args);
    if (rc !== 0 && code === 0) code = rc;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
