/**
 * The destination contract (issue 18) for DuckDB database files (modes, re-runs, new commits
 * only, type round trip). PostgreSQL: destination.contract.test.ts. Was: against a throwaway PostgreSQL: every mode loads, a
 * re-run loads nothing new, SIGKILL mid-load + re-run leaves the target equal to the lake
 * table (row count + a checksum over every column), replace under a reader never shows an
 * empty or partial table, and every bronze type round-trips. MariaDB and DuckDB-file
 * destinations are not built yet (see the report of issue 18).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadDestinations } from '../src/ops/load.js';
import { TestProject, projectConfig } from './support/project.js';

const COLS = ['id', 'amount', 'ts', 'local_ts', 'd', 'ok', 'name', 'tags', 'nums', 'doc'] as const;

/** A Parquet file of `n` rows from `start`, with every type bronze keeps (and NULLs). */
async function writeTyped(path: string, start: number, n: number, label = 'a'): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await mkdir(dirname(path), { recursive: true });
  await c.run(`COPY (SELECT i::BIGINT AS id,
      CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 1.0001)::DECIMAL(18,4) END AS amount,
      (TIMESTAMPTZ '2024-03-10 01:59:59.123456+00' + to_microseconds(i * 1000003)) AS ts,
      (TIMESTAMP '2024-01-01 00:00:00.000001' + to_microseconds(i)) AS local_ts,
      (DATE '2020-02-29' + (i % 1000)::INTEGER) AS d,
      CASE WHEN i % 5 = 0 THEN NULL ELSE i % 2 = 0 END AS ok,
      CASE WHEN i % 11 = 0 THEN '' ELSE '${label}-' || i || ' "q", é' END AS name,
      CASE WHEN i % 3 = 0 THEN NULL ELSE ['x' || i, 'y,z'] END AS tags,
      [i, i + 1]::INTEGER[] AS nums,
      CASE WHEN i % 4 = 0 THEN NULL ELSE json_object('k', i, 'v', 'w') END AS doc
    FROM range(${start}, ${start + n}) t(i)) TO '${path}' (FORMAT parquet)`);
  c.closeSync();
  db.closeSync();
}

/** Canonical rows, equal on both sides when the values are equal. */
function canon(rows: Record<string, unknown>[]): string[] {
  return rows
    .map((r) =>
      JSON.stringify(
        COLS.map((k) => {
          const v = r[k];
          if (v === null || v === undefined) return null;
          if ((k === 'tags' || k === 'nums' || k === 'doc') && typeof v === 'string') return JSON.parse(v) as unknown;
          return String(v);
        }),
      ),
    )
    .sort();
}

const LAKE_SELECT = `SELECT id::VARCHAR AS id, amount::VARCHAR AS amount, epoch_us(ts)::VARCHAR AS ts,
  strftime(local_ts, '%Y-%m-%d %H:%M:%S.%f') AS local_ts, d::VARCHAR AS d, ok::VARCHAR AS ok, name,
  to_json(tags)::VARCHAR AS tags, to_json(nums)::VARCHAR AS nums, doc::VARCHAR AS doc`;

function checksum(rows: string[]): string {
  return createHash('sha256').update(rows.join('\n')).digest('hex');
}

describe('destination contract: DuckDB file', () => {
  let p: TestProject;
  before(async () => {
    p = await TestProject.create({});
    const config = projectConfig({ t: { path: 'data/*.parquet', format: 'parquet', primary_key: ['id'] } });
    config['destinations'] = {
      file: {
        kind: 'duckdb',
        path: 'out/hand-off.duckdb',
        tables: [
          { table: 'bronze.t', target: 't_replace', mode: 'replace' },
          { table: 'bronze.t', target: 't_append', mode: 'append' },
          { table: 'bronze.t', target: 't_merge', mode: 'merge' },
        ],
      },
    };
    await p.write('dip.yaml', JSON.stringify(config));
    await mkdir(p.path('out'));
  });
  after(async () => {
    await p?.dispose();
  });

  async function fileRows(table: string): Promise<string[]> {
    const db = await DuckDBInstance.create(p.path('out/hand-off.duckdb'));
    const c = await db.connect();
    try {
      const r = await c.runAndReadAll(`${LAKE_SELECT} FROM main.${table}`);
      return canon(r.getRowObjectsJson() as Record<string, unknown>[]);
    } finally {
      c.closeSync();
      db.closeSync();
    }
  }

  it('every mode loads, types round-trip, a re-run loads nothing, then only new commits', async () => {
    await writeTyped(p.path('data/a.parquet'), 0, 300);
    await p.runOk();
    const lake = await p.lake();
    const first = await loadDestinations(lake);
    assert.deepEqual(
      first[0]?.tables.map((t) => [t.loaded, t.rows]),
      [
        [true, 300],
        [true, 300],
        [true, 300],
      ],
    );
    const again = await loadDestinations(lake);
    assert.deepEqual(
      again[0]?.tables.map((t) => [t.loaded, t.rows]),
      [
        [false, 0],
        [false, 0],
        [false, 0],
      ],
    );
    await writeTyped(p.path('data/b.parquet'), 300, 100, 'b');
    await p.runOk();
    const second = await loadDestinations(lake);
    assert.deepEqual(
      second[0]?.tables.map((t) => [t.loaded, t.rows]),
      [
        [true, 400],
        [true, 100],
        [true, 100],
      ],
    );
    const want = canon(await p.rows(`${LAKE_SELECT} FROM bronze.t`));
    assert.equal(want.length, 400);
    for (const t of ['t_replace', 't_append', 't_merge']) assert.equal(checksum(await fileRows(t)), checksum(want), t);
  });
});
