/**
 * The raw zone stores each input as it arrived (files, database extracts), once and
 * zstd-compressed, and derives record envelopes on read: `raw.<table>` reads the same columns
 * and values as the old one-envelope-per-record form, `replay` rebuilds bronze identical to
 * the first ingest, and a lake written in the old form (test/fixtures/raw-v1) still queries
 * and replays.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Encoder } from '@toondepauw/node-zstd';
import pg from 'pg';
import type { DataFile } from '../src/catalog/types.js';
import { replayStream } from '../src/lake/replay.js';
import type { StreamSpec } from '../src/lake/units.js';
import { type MariadbServer, execMariadb, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';
import { CLI, REPO_ROOT, TestProject } from './support/project.js';

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
      const oneCopy = (await new Encoder(3).encode(Buffer.from(text))).length;
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

/** `dip replay p` through the CLI (it resolves each stream's spec from the source, as users run it). */
function dipReplay(p: TestProject): void {
  const r = spawnSync(process.execPath, [CLI, '-p', p.dir, 'replay', 'p', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `dip replay: ${r.stderr}`);
}

/** Bronze of database streams: replay of the stored extracts equals the first ingest row by row. */
async function assertDatabaseReplay(p: TestProject, tables: readonly string[], rows: Record<string, number>) {
  const before: Record<string, unknown> = {};
  for (const t of tables) {
    before[t] = await bronzeSum(p, t);
    assert.equal(await p.count(`bronze.${t}`), rows[t]);
    const files = await liveRaw(p, t);
    assert.ok(files.length > 0);
    for (const f of files) {
      assert.equal(f.meta['envelope'], 'stored', `${t}: ${f.path}`);
      assert.deepEqual((f.meta['read'] as { kind: string }).kind, 'source-csv');
      assert.match(f.path, new RegExp(`^raw/db/${t}/content/[0-9a-f]{64}\\.csv\\.zst$`));
    }
    // one envelope per extracted record, every field as text
    const [raw] = await p.rows(`select count(*)::INT as n, min(json_type(payload))::VARCHAR as t from raw.${t}`);
    assert.ok(Number(raw?.['n']) >= (rows[t] ?? 0), `raw.${t}: ${String(raw?.['n'])} records`);
    assert.equal(raw?.['t'], 'OBJECT');
  }
  await p.reopen();
  dipReplay(p);
  await p.reopen();
  for (const t of tables) assert.deepEqual(await bronzeSum(p, t), before[t], `bronze.${t} after replay`);
}

describe('raw as it arrived: PostgreSQL', postgresTestOptions(), () => {
  let server: PostgresServer;
  let db: pg.Client;

  before(async () => {
    server = await startPostgres();
    db = new pg.Client({ connectionString: server.url });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await server?.stop();
  });

  it('full and incremental extracts replay to identical bronze; change events keep their envelope columns', async () => {
    await db.query(
      `CREATE TABLE things (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, blob bytea, doc jsonb, tags text[], ok boolean)`,
    );
    await db.query(
      `INSERT INTO things SELECT i, CASE WHEN i % 10 = 0 THEN NULL WHEN i % 10 = 1 THEN '' ELSE 'na"me, ' || i || E'\\nline' END,
        i * 1.25, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', '\\x00ff', jsonb_build_object('k', i, 's', 'x"y'),
        ARRAY['t' || i, 'u v'], i % 2 = 0 FROM generate_series(1, 3000) i`,
    );
    await db.query(`CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz NOT NULL, v text)`);
    await db.query(
      `INSERT INTO events SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', 'v' || i FROM generate_series(1, 1200) i`,
    );
    const p = await TestProject.withSources({
      db: {
        type: 'postgres',
        connection: { url: server.url },
        tables: ['things', { name: 'events', mode: 'incremental', cursor: 'updated_at', chunk_rows: 500 }],
        extract: { chunk_rows: 1000 },
      },
    });
    try {
      await p.runOk();
      await db.query(`UPDATE events SET v = 'w' || id, updated_at = updated_at + interval '1 day' WHERE id <= 100`);
      await p.runOk();
      await assertDatabaseReplay(p, ['things', 'events'], { things: 3000, events: 1200 });
    } finally {
      await p.dispose();
    }

    await db.query(`CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2))`);
    await db.query(`INSERT INTO acct SELECT i, 'o' || i, i FROM generate_series(1, 50) i`);
    const c = await TestProject.withSources({
      db: {
        type: 'postgres',
        connection: { url: server.url },
        mode: 'cdc',
        tables: ['acct'],
        cdc: { flush_interval: '200ms', idle_timeout: '2s' },
      },
    });
    try {
      await c.runOk();
      await db.query(`INSERT INTO acct VALUES (51, 'new', 1)`);
      await db.query(`UPDATE acct SET balance = balance + 1 WHERE id <= 5`);
      await db.query(`DELETE FROM acct WHERE id = 7`);
      await c.runOk();
      const table = (await c.lake()).catalog;
      const tables = (await table.listTables()).map((t) => t.name).filter((n) => n.startsWith('raw.'));
      assert.equal(tables.length, 1);
      const raw = tables[0] as string;
      const files = await table.liveFiles(raw);
      // the snapshot is an extract (CSV as written), the changes are events as received
      assert.equal(await c.num(`select count(*) from ${raw} where json_extract_string(payload, 'op') is null`), 50);
      const forms = files.map(
        (f) => (f.meta['read'] as { kind: string } | undefined)?.kind ?? String(f.meta['envelope']),
      );
      assert.ok(forms.includes('events'), `raw file forms: ${forms.join(', ')}`);
      assert.deepEqual(await rawTypes(c, raw.slice(4)), (await expected()).dump['orders']?.rawTypes);
      const events = await c.rows(
        `select json_extract_string(payload, 'op') as op, count(*)::INT as n,
           bool_and(json_extract_string(position, 'op') = json_extract_string(payload, 'op')
             and json_extract_string(position, 'lsn') = json_extract_string(payload, '$.source.lsn')
             and json_extract_string(position, 'table') = 'public.acct') as pos, min(seq)::INT as first
         from ${raw} where json_extract_string(payload, 'op') is not null group by 1 order by 1`,
      );
      assert.deepEqual(events, [
        { op: 'c', n: 1, pos: true, first: 1 },
        { op: 'd', n: 1, pos: true, first: events.find((e) => e['op'] === 'd')?.['first'] },
        { op: 'u', n: 5, pos: true, first: events.find((e) => e['op'] === 'u')?.['first'] },
      ]);
      const [after] = await c.rows(
        `select json_extract_string(payload, '$.after.owner') as owner from ${raw} where json_extract_string(payload, 'op') = 'c'`,
      );
      assert.equal(after?.['owner'], 'new');
    } finally {
      await c.dispose();
    }
  });
});

describe('raw as it arrived: MySQL', mariadbTestOptions(), () => {
  let server: MariadbServer;

  before(async () => {
    server = await startMariadb();
  });

  after(async () => {
    await server?.stop();
  });

  it('full and incremental extracts replay to identical bronze', async () => {
    await execMariadb(
      server.url,
      'CREATE TABLE things (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(12,2), at DATETIME(3), blob_v VARBINARY(8), ok BOOLEAN)',
      `INSERT INTO things SELECT seq, IF(seq % 10 = 0, NULL, IF(seq % 10 = 1, '', CONCAT('na"me, ', seq))), seq * 1.25,
        TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE, X'00FF', seq % 2 = 0 FROM seq_1_to_3000`,
      'CREATE TABLE events (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, v VARCHAR(20))',
      `INSERT INTO events SELECT seq, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND, CONCAT('v', seq) FROM seq_1_to_1200`,
    );
    const p = await TestProject.withSources({
      db: {
        type: 'mysql',
        connection: { url: server.url },
        tables: ['things', { name: 'events', mode: 'incremental', cursor: 'updated_at', chunk_rows: 500 }],
        extract: { chunk_rows: 1000 },
      },
    });
    try {
      await p.runOk();
      await execMariadb(
        server.url,
        `UPDATE events SET v = CONCAT('w', id), updated_at = updated_at + INTERVAL 1 DAY WHERE id <= 100`,
      );
      await p.runOk();
      await assertDatabaseReplay(p, ['things', 'events'], { things: 3000, events: 1200 });
    } finally {
      await p.dispose();
    }
  });
});
