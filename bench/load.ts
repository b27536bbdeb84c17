/**
 * `npm run bench -- load [--rows N]`: lake table → PostgreSQL (issue 18), in one process.
 *
 *   replace / append: `loadTable` (DuckDB writes the CSV, COPY FROM STDIN, swap or insert, the
 *   dip_loads row, one transaction) vs `psql -c "\copy t FROM 'rows.csv' CSV"` of the same rows
 *   (the CSV written beforehand, untimed) into an empty table of the same types.
 *   merge: 5% of the keys changed in the lake (a merge stream), `loadTable` mode merge vs a
 *   hand-written COPY of those rows into a staging table + `INSERT … ON CONFLICT DO UPDATE`.
 * Prints wall times and ratios, with the load average.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadProject } from '../src/config/load.js';
import { loadTable, openWarehouse } from '../src/destinations/load.js';
import { Lake } from '../src/lake/lake.js';
import { runPipeline } from '../src/pipeline/run.js';
import { findPostgresBinDir, startPostgres, withClient } from '../test/support/postgres.js';
import { makeTempDir, projectConfig } from '../test/support/project.js';

const TYPES = 'id bigint PRIMARY KEY, amount numeric(18,4), ts timestamptz, name text, qty integer';

async function parquet(path: string, sql: string): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run(`COPY (${sql}) TO '${path}' (FORMAT parquet)`);
  c.closeSync();
  db.closeSync();
}

const rowsSql = (n: number, bump: number, step = 1): string =>
  `SELECT (i * ${step})::BIGINT AS id, ((i * ${step}) * 1.25 + ${bump})::DECIMAL(18,4) AS amount,
   TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i * 1000) AS ts, 'name-' || i AS name, (i % 100)::INTEGER AS qty
   FROM range(0, ${n}) t(i)`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { rows: { type: 'string', default: '1000000' } } });
  const n = Math.round(Number(values.rows));
  const bin = findPostgresBinDir();
  if (!bin) {
    process.stderr.write('load: PostgreSQL binaries not found\n');
    return 2;
  }
  const pg = await startPostgres();
  const dir = await makeTempDir('dip-bench-load-');
  try {
    const config = projectConfig({
      t: { path: 'data/t*.parquet', format: 'parquet', primary_key: ['id'] },
      m: { path: 'data/m*.parquet', format: 'parquet', write_disposition: 'merge', primary_key: ['id'] },
    });
    config['engine'] = { threads: 2, memory_limit: '2GB' };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config));
    await mkdir(join(dir, 'data'));
    await parquet(join(dir, 'data', 't1.parquet'), rowsSql(n, 0));
    await parquet(join(dir, 'data', 'm1.parquet'), rowsSql(n, 0));
    const lake = await Lake.open(await loadProject(dir));
    const run = await runPipeline(lake, 'p');
    if (run.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(run.errors)}`);
    const csv = join(dir, 'rows.csv');
    await lake.engine.copy(
      `COPY (SELECT id, amount, ts, name, qty FROM read_parquet('${join(dir, 'data', 't1.parquet')}')) TO '${csv}' (FORMAT csv, HEADER false)`,
    );
    const psql = join(bin, 'psql');
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return (performance.now() - t0) / 1000;
    };
    await withClient(pg.url, (c) => c.query(`CREATE TABLE base_csv (${TYPES})`));
    const psqlCopy = await time(async () => {
      const r = spawnSync(psql, [pg.url, '-q', '-c', `\\copy base_csv FROM '${csv}' CSV`], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('psql failed');
    });
    const wh = await openWarehouse({ kind: 'postgres', url: pg.url, schema: 'public' }, dir);
    const replace = await time(() => loadTable(lake, wh, { table: 'bronze.t', mode: 'replace', target: 't_replace' }));
    const append = await time(() => loadTable(lake, wh, { table: 'bronze.t', mode: 'append', target: 't_append' }));
    await loadTable(lake, wh, { table: 'bronze.m', mode: 'merge', target: 't_merge' });
    // 5% of the keys changed: every 20th id gets a new amount.
    const changed = Math.floor(n / 20);
    await parquet(join(dir, 'data', 'm2.parquet'), rowsSql(changed, 7, 20));
    const run2 = await runPipeline(lake, 'p');
    if (run2.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(run2.errors)}`);
    const merge = await time(() => loadTable(lake, wh, { table: 'bronze.m', mode: 'merge', target: 't_merge' }));
    await wh.close();
    const csv2 = join(dir, 'changed.csv');
    await lake.engine.copy(
      `COPY (SELECT id, amount, ts, name, qty FROM read_parquet('${join(dir, 'data', 'm2.parquet')}')) TO '${csv2}' (FORMAT csv, HEADER false)`,
    );
    const handMerge = await time(async () => {
      const sql = `BEGIN; CREATE TEMP TABLE s (${TYPES.replace(' PRIMARY KEY', '')}); \\copy s FROM '${csv2}' CSV
INSERT INTO base_csv SELECT * FROM s ON CONFLICT (id) DO UPDATE SET amount = EXCLUDED.amount, ts = EXCLUDED.ts, name = EXCLUDED.name, qty = EXCLUDED.qty; COMMIT;`;
      const r = spawnSync(psql, [pg.url, '-q', '-v', 'ON_ERROR_STOP=1'], {
        input: sql,
        stdio: ['pipe', 'inherit', 'inherit'],
      });
      if (r.status !== 0) throw new Error('psql merge failed');
    });
    await lake.close();
    const f = (s: number): string => `${s.toFixed(2)} s`;
    process.stdout.write(
      `load: ${n.toLocaleString('en-US')} rows → PostgreSQL, load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' / ')}\n` +
        `| what | time | ratio |\n|---|---:|---:|\n` +
        `| psql \\copy FROM csv (baseline) | ${f(psqlCopy)} | 1.00× |\n` +
        `| dip load replace | ${f(replace)} | ${(replace / psqlCopy).toFixed(2)}× |\n` +
        `| dip load append | ${f(append)} | ${(append / psqlCopy).toFixed(2)}× |\n` +
        `| hand INSERT … ON CONFLICT of ${changed.toLocaleString('en-US')} rows (baseline) | ${f(handMerge)} | 1.00× |\n` +
        `| dip load merge (5%) | ${f(merge)} | ${(merge / handMerge).toFixed(2)}× |\n`,
    );
    return 0;
  } finally {
    await pg.stop();
    spawnSync('rm', ['-rf', dir]);
  }
}
