// The DuckDB baseline of bench/files.ts, run as its own plain-node process (no tsx, no dip code)
// so its wall time and peak RSS compare like for like with `node dist/cli/main.js run`.
//
//   node bench/baseline-copy.mjs '{"csv":"…","out":"…","threads":2,"memoryLimit":"1GB","tempDirectory":"…","compression":"zstd"}'
//
// Prints one JSON line: {"rows": n, "copyMs": ms, "openMs": ms, "statementsMs": [ms, …]}.
import { DuckDBInstance } from '@duckdb/node-api';

const opts = JSON.parse(process.argv[2] ?? '{}');
const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

const t0 = performance.now();
const config = { threads: String(opts.threads), memory_limit: String(opts.memoryLimit) };
if (opts.tempDirectory) config.temp_directory = String(opts.tempDirectory);
const instance = await DuckDBInstance.create(':memory:', config);
const connection = await instance.connect();
const t1 = performance.now();
// `sql` (a statement or a list run in order) replaces the baseline COPY; rows are the last one's.
const statements = [
  opts.sql ??
    `COPY (SELECT * FROM read_csv(${lit(opts.csv)})) TO ${lit(opts.out)} (FORMAT parquet, COMPRESSION ${opts.compression ?? 'zstd'})`,
].flat();
const statementsMs = [];
let row = {};
for (const sql of statements) {
  const start = performance.now();
  const reader = await connection.runAndReadAll(sql);
  statementsMs.push(performance.now() - start);
  row = reader.getRowObjectsJson()[0] ?? {};
}
const t2 = performance.now();
connection.closeSync();
instance.closeSync();
process.stdout.write(
  `${JSON.stringify({ rows: Number(row.Count ?? 0), openMs: t1 - t0, copyMs: t2 - t1, statementsMs })}\n`,
);
