/**
 * The raw zone stores each input as it arrived (files, database extracts), once and
 * zstd-compressed, and derives record envelopes on read: `raw.<table>` reads the same columns
 * and values as the old one-envelope-per-record form, `replay` rebuilds bronze identical to
 * the first ingest, and a lake written in the old form (test/fixtures/raw-v1) still queries
 * and replays.
 */
import assert from 'node:assert/strict';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compress } from '@mongodb-js/zstd';
import pg from 'pg';
import type { DataFile } from '../src/catalog/types.js';
import { replayStream } from '../src/lake/replay.js';
import type { StreamSpec } from '../src/lake/units.js';
import { type MariadbServer, execMariadb, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { REPO_ROOT, TestProject, makeTempDir } from './support/project.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'raw-v1');
const STREAMS = ['orders', 'customers', 'items', 'facts'] as const;
const STREAM_PATHS = {
  orders: { path: 'data/orders/*.csv' },
  customers: { path: 'data/customers/*.ndjson' },
  items: { path: 'data/items/*.json' },
  facts: { path: 'data/facts/*.parquet' },
};

interface Expected {
  dir: string;
  dump: Record<string, { raw: Record<string, unknown>[]; rawTypes: Record<string, unknown>[]; bronze: unknown[] }>;
}

const expected = async (): Promise<Expected> =>
  JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as Expected;

/** raw.<t> as the fixture recorded it (run id and receive time differ per run). */
const rawDump = (p: TestProject, t: string) =>
  p.rows(
    `select seq, payload::VARCHAR as payload, pipeline, source, stream, position::VARCHAR as position from raw.${t} order by seq`,
  );
const rawTypes = (p: TestProject, t: string) =>
  p.rows(
    `select column_name, data_type from information_schema.columns where table_schema='raw' and table_name='${t}' order by ordinal_position`,
  );
/** Every bronze row but the ingest time (a replay keeps run id, source and source file). */
const bronzeSum = (p: TestProject, t: string) =>
  p.rows(
    `select count(*)::INT as n, md5(string_agg(t::VARCHAR, '|' order by t::VARCHAR)) as h from (select * exclude (_dip_ingested_at) from bronze.${t}) t`,
  );

/** The stream spec replay needs, from the project's config. */
function spec(table: string, writeDisposition: StreamSpec['writeDisposition'] = 'append'): StreamSpec {
  return { name: table, table, writeDisposition, primaryKey: [], schemaContract: 'evolve' };
}

async function replayAll(p: TestProject, tables: readonly string[], source = 'src'): Promise<void> {
  const lake = await p.lake();
  for (const t of tables) {
    const r = await replayStream(lake, 'p', source, spec(t), {}, `replay_${t}`);
    assert.ok(r.rawFiles >= 1, `${t}: replayed ${r.rawFiles} raw files`);
  }
}

async function liveRaw(p: TestProject, table: string): Promise<DataFile[]> {
  return (await p.lake()).catalog.liveFiles(`raw.${table}`);
}

describe('raw as it arrived: files', () => {
  it('stores each input once, compressed, and raw.<table> reads as the old envelopes did', async () => {
    const want = await expected();
    const p = await TestProject.create(STREAM_PATHS);
    try {
      await cp(join(FIXTURE, 'data'), p.path('data'), { recursive: true });
      await p.runOk();
      for (const t of STREAMS) {
        const old = want.dump[t];
        assert.ok(old);
        const rows = (await rawDump(p, t)).map((r) => ({
          ...r,
          position: String(r['position']).replaceAll(p.dir, want.dir),
        }));
        assert.deepEqual(rows, old.raw, `raw.${t} as before`);
        assert.deepEqual(await rawTypes(p, t), old.rawTypes, `raw.${t} columns as before`);
        const files = await liveRaw(p, t);
        assert.equal(files.length, 1);
        const f = files[0] as DataFile;
        assert.equal(f.meta['envelope'], 'stored');
        const input = (await readdir(p.path(`data/${t}`)))[0] as string;
        const bytes = await readFile(p.path(`data/${t}/${input}`));
        assert.match(
          f.path,
          new RegExp(`^raw/src/${t}/content/[0-9a-f]{64}\\.${t === 'facts' ? 'parquet' : '\\w+\\.zst'}$`),
        );
        // Parquet is kept as it came (it is compressed already); the others as zstd.
        if (t === 'facts') assert.equal(f.bytes, bytes.length);
        else assert.ok(f.bytes < bytes.length, `${t}: ${f.bytes} stored bytes < ${bytes.length} input bytes`);
      }
      // every run's run id and one receive time on all of a file's records
      const meta = await p.rows(
        `select count(distinct run_id)::INT as runs, count(distinct received_at)::INT as times from raw.orders`,
      );
      assert.deepEqual(meta, [{ runs: 1, times: 1 }]);

      // replay from the stored inputs: bronze identical, row by row
      const before = Object.fromEntries(await Promise.all(STREAMS.map(async (t) => [t, await bronzeSum(p, t)])));
      await replayAll(p, STREAMS);
      for (const t of STREAMS) assert.deepEqual(await bronzeSum(p, t), before[t], `bronze.${t} after replay`);
    } finally {
      await p.dispose();
    }
  });

  it('keeps about one compressed copy, and the same content once', async () => {
    const p = await TestProject.create({ big: { path: 'data/*.csv' } });
    try {
      const lines = ['id,name,amount,at'];
      for (let i = 0; i < 50_000; i++)
        lines.push(`${i},name ${i % 977},${(i * 0.37).toFixed(2)},2026-01-01 00:${String(i % 60).padStart(2, '0')}:00`);
      const text = `${lines.join('\n')}\n`;
      await p.write('data/a.csv', text);
      await p.runOk();
      const [f] = await liveRaw(p, 'big');
      assert.ok(f);
      const oneCopy = (await compress(Buffer.from(text), 1)).length;
      assert.ok(f.bytes <= oneCopy * 1.25, `raw ${f.bytes} bytes vs one zstd copy ${oneCopy} bytes`);
      assert.ok(f.bytes < text.length / 3, `raw ${f.bytes} bytes vs input ${text.length} bytes`);
      assert.equal(f.rows, 50_000);
      assert.equal(await p.count('raw.big'), 50_000);

      // the same content under another name: a second raw file row, one object in storage
      await p.write('data/b.csv', text);
      await p.runOk();
      const files = await liveRaw(p, 'big');
      assert.equal(files.length, 2);
      assert.equal(files[0]?.path, files[1]?.path);
      const stored = await readdir(join(p.lakeDir, 'raw', 'src', 'big', 'content'));
      assert.equal(stored.length, 1);
      assert.equal(await p.count('raw.big'), 100_000);
      assert.deepEqual(
        await p.rows(`select position->>'file' as file, count(*)::INT as n from raw.big group by all order by file`),
        [
          { file: p.path('data/a.csv'), n: 50_000 },
          { file: p.path('data/b.csv'), n: 50_000 },
        ],
      );
      const before = await bronzeSum(p, 'big');
      await replayAll(p, ['big']);
      assert.deepEqual(await bronzeSum(p, 'big'), before);
    } finally {
      await p.dispose();
    }
  });
});

describe('raw as it arrived: a lake written in the old form', () => {
  it('still queries, replays, and takes new inputs beside the old envelopes', async () => {
    const want = await expected();
    const p = await TestProject.create(STREAM_PATHS);
    try {
      await cp(join(FIXTURE, 'dot-dip'), p.path('.dip'), { recursive: true });
      await cp(join(FIXTURE, 'data'), p.path('data'), { recursive: true });
      for (const t of STREAMS) {
        const old = want.dump[t];
        assert.ok(old);
        assert.deepEqual(await rawDump(p, t), old.raw, `raw.${t} of the old lake`);
        assert.deepEqual(await rawTypes(p, t), old.rawTypes);
        assert.deepEqual(await bronzeSum(p, t), old.bronze);
        assert.equal((await liveRaw(p, t))[0]?.meta['envelope'], undefined);
      }
      await replayAll(p, STREAMS);
      for (const t of STREAMS) assert.deepEqual(await bronzeSum(p, t), want.dump[t]?.bronze, `bronze.${t} replayed`);

      // a new input lands in the stored form beside the old envelopes
      await p.write(
        'data/orders/2.csv',
        'id,customer,qty,price,ordered_on,ordered_at,paid,coupon\n100,"C, 9",1,2.00,2026-03-09,2026-03-01 11:00:00,true,K\n',
      );
      await p.runOk();
      const forms = (await liveRaw(p, 'orders')).map((f) => String(f.meta['envelope'] ?? 'old')).sort();
      assert.deepEqual(forms, ['old', 'stored']);
      assert.equal(await p.count('raw.orders'), (want.dump['orders']?.raw.length ?? 0) + 1);
      const before = await bronzeSum(p, 'orders');
      await replayAll(p, ['orders']);
      assert.deepEqual(await bronzeSum(p, 'orders'), before);
    } finally {
      await p.dispose();
    }
  });
});
