/**
 * What the lake does with change units across a source's type change (no database needed): a
 * column whose new type has no common type with the table's becomes text in both the change
 * log and the current table; and a change event that does not convert is never quarantined
 * past: the stream stops before its unit with the position unchanged.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { StreamStats } from '../src/catalog/types.js';
import { runStream } from '../src/pipeline/run.js';
import { CDC_COLUMN_TYPES } from '../src/lake/zone-schemas.js';
import type { ReadUnit, SourceInstance, StreamSpec } from '../src/sources/types.js';
import { TestProject } from './support/project.js';

const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
});

const stream: StreamSpec = {
  name: 't',
  table: 't_changes',
  writeDisposition: 'append',
  primaryKey: ['id'],
  schemaContract: 'evolve',
  currentState: { table: 't' },
  widenToText: true,
};

/** A change unit: rows of (id, b) as CSV text, `b` of the given type, created at `lsn`. */
async function changeUnit(p: TestProject, n: number, bType: string, rows: [string, string][]): Promise<ReadUnit> {
  const path = join(p.dir, `unit-${n}.csv`);
  const header = ['id', 'b', ...CDC_COLUMN_TYPES.map((c) => c.name)].join(',');
  const lines = rows.map(([id, b], i) => `${id},${b},c,${n},${i + 1},${n},2024-01-01 00:00:00+00,false,`);
  await writeFile(path, `${header}\n${lines.join('\n')}\n`);
  return {
    label: `unit ${n}`,
    input: {
      path,
      format: 'csv',
      columns: [{ name: 'id', type: 'INTEGER' }, { name: 'b', type: bType }, ...CDC_COLUMN_TYPES],
    },
    bytes: 10,
    position: { unit: n },
    state: { lsn: n },
  };
}

it('widens a retyped column to text, and stops before a change event that does not convert', async () => {
  const p = await TestProject.create({ unused: { path: 'none/*.csv' } });
  projects.push(p);
  const lake = await p.lake();
  const batches: (() => Promise<ReadUnit>)[][] = [
    [
      () =>
        changeUnit(p, 1, 'INTEGER', [
          ['1', '10'],
          ['2', '20'],
        ]),
    ],
    // ALTER TABLE t MODIFY b VARCHAR(20): the next events carry text.
    [() => changeUnit(p, 2, 'VARCHAR', [['3', 'not-a-number']])],
    // A value the unit's type cannot hold (a conversion bug upstream): refused, not quarantined.
    [() => changeUnit(p, 3, 'VARCHAR', [['x', 'y']])],
  ];
  const source = (units: (() => Promise<ReadUnit>)[]): SourceInstance => ({
    streams: () => [stream],
    async plan() {
      async function* all(): AsyncIterable<ReadUnit> {
        for (const u of units) yield await u();
      }
      return { units: all(), skipped: 0 };
    },
    close: async () => undefined,
  });
  const run = (units: (() => Promise<ReadUnit>)[]) => {
    const stats: StreamStats = { rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 0 };
    const target = { pipeline: 'p', source: 'db', stream, rawEnabled: false, runId: 'run_cdc_lake' };
    return runStream(lake, source(units), target, stats, new AbortController().signal, () => undefined);
  };
  await run(batches[0] ?? []);
  await run(batches[1] ?? []);
  const types = async (table: string) =>
    (await p.rows(`SELECT column_name, column_type FROM (DESCRIBE ${table}) WHERE column_name IN ('id', 'b')`)).map(
      (r) => `${String(r['column_name'])} ${String(r['column_type'])}`,
    );
  assert.deepEqual(await types('bronze.t_changes'), ['id INTEGER', 'b VARCHAR']);
  assert.deepEqual(await types('bronze.t'), ['id INTEGER', 'b VARCHAR']);
  assert.deepEqual(
    (await p.rows('SELECT id, b FROM bronze.t ORDER BY id')).map((r) => [r['id'], r['b']]),
    [
      [1, '10'],
      [2, '20'],
      [3, 'not-a-number'],
    ],
  );
  await assert.rejects(run(batches[2] ?? []), (err: Error & { exitCode?: number }) => {
    assert.match(
      err.message,
      /^bronze\.t_changes: 1 change event\(s\) of unit 3 do not convert to the stream's column types \(column id: CAST\)\. Change events are not quarantined: the stream stops before this unit/,
    );
    assert.doesNotMatch(err.message, /"x"|'x'/);
    assert.equal(err.exitCode, 4);
    return true;
  });
  assert.deepEqual(await lake.catalog.getState('p', 'db', 't'), { lsn: 2 });
  assert.equal(await p.count('bronze.t_changes'), 3);
  assert.equal(await p.count('quarantine.t_changes').catch(() => 0), 0);
  // Once fixed, the run resumes exactly at the refused unit.
  await run([() => changeUnit(p, 3, 'VARCHAR', [['4', 'y']])]);
  assert.deepEqual(await lake.catalog.getState('p', 'db', 't'), { lsn: 3 });
  assert.deepEqual(
    (await p.rows('SELECT id, b FROM bronze.t_changes ORDER BY id')).map((r) => [r['id'], r['b']]),
    [
      [1, '10'],
      [2, '20'],
      [3, 'not-a-number'],
      [4, 'y'],
    ],
  );
});
