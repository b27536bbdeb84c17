/**
 * Lake operations on committed tables: time travel, rollback, compaction, garbage collection
 * and replay from the raw zone.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, describe, it, mock } from 'node:test';
import type { Lake } from '../src/lake/lake.js';
import { collectGarbage, compactTable, rollbackTable } from '../src/lake/maintenance.js';
import { replayStream } from '../src/lake/replay.js';
import { createSource } from '../src/sources/registry.js';
import type { StreamSpec } from '../src/sources/types.js';
import { TestProject, type StreamYaml } from './support/project.js';

const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
});

async function project(streams: Record<string, StreamYaml>): Promise<TestProject> {
  const p = await TestProject.create(streams);
  projects.push(p);
  return p;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const csv = (ids: number[], tag = 'n') => `id,name\n${ids.map((i) => `${i},${tag}${i}`).join('\n')}\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function head(lake: Lake, table: string): Promise<number> {
  const info = await lake.catalog.getTable(table);
  assert.ok(info?.headCommit !== null && info?.headCommit !== undefined, `${table} has a head commit`);
  return info.headCommit;
}

/** Every column of every row, ordered by id, as one string. */
async function snapshot(p: TestProject, table: string, asOf?: { commit?: number; at?: Date }): Promise<string> {
  const rows = await p.rows(
    `select md5(string_agg(t::VARCHAR, '|' order by id, _dip_run_id)) as h, count(*) as n from ${table} t`,
    asOf,
  );
  return `${String(rows[0]?.['n'])}:${String(rows[0]?.['h'])}`;
}

function streamSpec(p: TestProject, lake: Lake, name: string): StreamSpec {
  const cfg = lake.project.config.pipelines['p']?.sources['src'];
  assert.ok(cfg);
  const spec = createSource(cfg, p.dir, 'src')
    .streams()
    .find((s) => s.name === name);
  assert.ok(spec, `stream ${name}`);
  return spec;
}

/** Files of a table read directly (not through the query view), in row order. */
async function directColumns(lake: Lake, path: string): Promise<string[]> {
  const rows = await lake.engine.all(
    `describe select * from read_parquet('${lake.storage.uri(path)}', hive_partitioning=false)`,
  );
  return rows.map((r) => String(r['column_name']));
}

describe('time travel and rollback', () => {
  it('query as of a commit or a time sees the older table; rollback restores it as a new commit', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/1.csv', csv(range(1, 21)));
    await p.runOk();
    const lake = await p.lake();
    const c1 = await head(lake, 'bronze.orders');
    const s1 = await snapshot(p, 'bronze.orders');
    await sleep(15);
    const between = new Date();
    await sleep(15);

    await p.write('data/2.csv', csv(range(21, 51)));
    await p.runOk();
    const c2 = await head(lake, 'bronze.orders');
    assert.ok(c2 > c1);
    const s2 = await snapshot(p, 'bronze.orders');
    assert.equal(await p.count('bronze.orders'), 50);

    assert.equal(await p.count('bronze.orders', { commit: c1 }), 20);
    assert.equal(await p.num('select sum(id) from bronze.orders', { commit: c1 }), sum(range(1, 21)));
    assert.equal(await p.count('bronze.orders', { at: between }), 20);
    assert.equal(await snapshot(p, 'bronze.orders', { commit: c1 }), s1);
    assert.equal(await snapshot(p, 'bronze.orders', { at: between }), s1);
    assert.equal(await p.count('bronze.orders', { commit: c2 }), 50);
    assert.equal(await p.count('raw.orders', { commit: c1 }), 20);
    // a commit id before the table existed: the table is not there yet
    await assert.rejects(
      p.rows('select count(*) from bronze.orders', { commit: 0 }),
      /no commit at or before commit 0/,
    );
    await assert.rejects(
      p.rows('select count(*) from bronze.orders', { at: new Date('2000-01-01T00:00:00Z') }),
      /no commit at or before 2000-01-01/,
    );

    const rb = await rollbackTable(lake, 'bronze.orders', c1);
    assert.equal(rb.operation, 'rollback');
    assert.ok(rb.id > c2, 'rollback is a new commit');
    assert.equal(await head(lake, 'bronze.orders'), rb.id);
    assert.equal(await p.count('bronze.orders'), 20);
    assert.equal(await snapshot(p, 'bronze.orders'), s1, 'the old rows, audit columns included');
    // history is kept: the state before the rollback is still readable
    assert.equal(await snapshot(p, 'bronze.orders', { commit: c2 }), s2);
    const info = await lake.catalog.getTable('bronze.orders');
    assert.equal(info?.rows, 20);
    assert.equal(info?.files, 1);
    // other tables are untouched by the rollback
    assert.equal(await p.count('raw.orders'), 50);

    await assert.rejects(rollbackTable(lake, 'bronze.nope', c1), /no table named bronze\.nope/);
  });
});

describe('compaction', () => {
  it('merges N small files into one with identical rows; the old files stay readable as of the previous commit', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    const perFile = [range(1, 8), range(8, 20), range(20, 23), range(23, 40), range(40, 41), range(41, 61)];
    for (const [i, ids] of perFile.entries()) await p.write(`data/${i}.csv`, csv(ids));
    await p.runOk();
    const lake = await p.lake();
    const before = await lake.catalog.liveFiles('bronze.orders');
    assert.equal(before.length, 6);
    const c0 = await head(lake, 'bronze.orders');
    const s0 = await snapshot(p, 'bronze.orders');

    const result = await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    assert.equal(result.inputFiles, 6);
    assert.equal(result.rows, 60);
    assert.ok(result.commit && result.commit.id > c0);
    assert.equal(result.commit.operation, 'compact');

    const live = await lake.catalog.liveFiles('bronze.orders');
    assert.equal(live.length, 1);
    assert.equal(live[0]?.rows, 60);
    assert.equal(await snapshot(p, 'bronze.orders'), s0);
    // row order inside the compacted file is the order of the inputs (file by file, row by row)
    const order = await lake.engine.all(
      `select id from read_parquet('${lake.storage.uri(live[0]?.path ?? '')}', file_row_number=true, hive_partitioning=false) order by file_row_number`,
    );
    assert.deepEqual(
      order.map((r) => Number(r['id'])),
      perFile.flat(),
    );

    // as of the previous commit the six old files are read, and they are still on disk
    assert.equal(await snapshot(p, 'bronze.orders', { commit: c0 }), s0);
    const old = await lake.catalog.liveFiles('bronze.orders', c0);
    assert.deepEqual(
      old.map((f) => f.path),
      before.map((f) => f.path),
    );
    for (const f of old) assert.ok(existsSync(lake.storage.uri(f.path)), `${f.path} kept for time travel`);

    // nothing left to compact
    const again = await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    assert.equal(again.inputFiles, 0);
    assert.equal(again.commit, undefined);
    // appends after compaction still work
    await p.write('data/9.csv', csv(range(61, 66)));
    await p.runOk();
    assert.equal(await p.num('select sum(id) from bronze.orders'), sum(range(1, 66)));
  });

  it('the compacted file holds exactly the table columns', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/a.csv', csv(range(1, 4)));
    await p.write('data/b.csv', csv(range(4, 9)));
    await p.runOk();
    const lake = await p.lake();
    const original = await directColumns(lake, (await lake.catalog.liveFiles('bronze.orders'))[0]?.path ?? '');
    assert.deepEqual(original, ['id', 'name', '_dip_run_id', '_dip_ingested_at', '_dip_source', '_dip_source_file']);
    await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    const [compacted] = await lake.catalog.liveFiles('bronze.orders');
    assert.deepEqual(await directColumns(lake, compacted?.path ?? ''), original);
  });
});

describe('garbage collection', () => {
  it('deletes orphans and files removed by replace/compact, never a live file', async () => {
    const p = await project({
      orders: { path: 'data/orders/*.csv' },
      products: { path: 'data/products.json', write_disposition: 'replace' },
    });
    await p.write('data/orders/1.csv', csv(range(1, 11)));
    await p.write('data/orders/2.csv', csv(range(11, 21)));
    await p.write('data/products.json', JSON.stringify(range(1, 6).map((id) => ({ id, name: `p${id}` }))));
    await p.runOk();
    const lake = await p.lake();
    const replacedAway = (await lake.catalog.liveFiles('bronze.products')).map((f) => f.path);
    await p.write('data/products.json', JSON.stringify(range(1, 4).map((id) => ({ id, name: `q${id}` }))));
    await p.runOk();
    const compactedAway = (await lake.catalog.liveFiles('bronze.orders')).map((f) => f.path);
    assert.equal(compactedAway.length, 2);
    await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });

    const orphan = 'bronze/src/orders/date=2020-01-01/part-orphan.parquet';
    await mkdir(dirname(lake.storage.uri(orphan)), { recursive: true });
    await lake.engine.run(`COPY (select 1 as id) TO '${lake.storage.uri(orphan)}' (FORMAT parquet)`);
    assert.ok(existsSync(lake.storage.uri(orphan)));

    const tables = await lake.catalog.listTables();
    const counts = async () =>
      Object.fromEntries(await Promise.all(tables.map(async (t) => [t.name, await p.count(t.name)] as const)));
    const countsBefore = await counts();
    assert.deepEqual(countsBefore, {
      'bronze.orders': 20,
      'bronze.products': 3,
      'raw.orders': 20,
      'raw.products': 8,
    });
    const liveBefore = (await Promise.all(tables.map((t) => lake.catalog.liveFiles(t.name)))).flat().map((f) => f.path);
    await sleep(20);

    // dry run: reports the orphan, deletes nothing (with the retention of the real run below:
    // since issue 14 a dry run reports exactly what the real run would delete)
    const dry = await collectGarbage(lake, { retentionMs: 7 * 86_400_000, orphanGraceMs: 0, dryRun: true });
    assert.deepEqual(dry.deleted, [orphan]);
    assert.equal(dry.orphanFiles, 1);
    assert.ok(existsSync(lake.storage.uri(orphan)));

    // default-like retention: removed files are kept for time travel, only the orphan goes
    const kept = await collectGarbage(lake, { retentionMs: 7 * 86_400_000, orphanGraceMs: 0 });
    assert.deepEqual(kept.deleted, [orphan]);
    assert.equal(existsSync(lake.storage.uri(orphan)), false);
    for (const f of [...replacedAway, ...compactedAway])
      assert.ok(existsSync(lake.storage.uri(f)), `${f} kept within retention`);

    // a young orphan is left alone (grace period)
    await lake.engine.run(`COPY (select 1 as id) TO '${lake.storage.uri(orphan)}' (FORMAT parquet)`);
    const young = await collectGarbage(lake, { retentionMs: 7 * 86_400_000, orphanGraceMs: 3_600_000 });
    assert.deepEqual(young.deleted, []);
    assert.ok(existsSync(lake.storage.uri(orphan)));

    // zero retention: removed files expire too
    const full = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
    assert.deepEqual([...full.deleted].sort(), [orphan, ...replacedAway, ...compactedAway].sort());
    assert.equal(full.orphanFiles, 1);
    assert.equal(full.expiredFiles, replacedAway.length + compactedAway.length);
    assert.ok(full.bytesFreed > 0);
    for (const f of full.deleted) assert.equal(existsSync(lake.storage.uri(f)), false, `${f} deleted`);
    for (const f of liveBefore) assert.ok(existsSync(lake.storage.uri(f)), `live file ${f} kept`);
    assert.deepEqual(await counts(), countsBefore);
    assert.equal(await p.num('select sum(id) from bronze.orders'), sum(range(1, 21)));

    // a second pass finds nothing
    const again = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
    assert.deepEqual(again.deleted, []);
    assert.deepEqual(await counts(), countsBefore);
  });
});

/** Everything replay must reproduce: data columns in order, and the run id. */
async function replayView(p: TestProject, table: string, dataColumns: string): Promise<string> {
  const rows = await p.rows(
    `select count(*) as n, md5(string_agg(row(${dataColumns}, _dip_run_id, _dip_source, _dip_source_file)::VARCHAR, '|' order by id, _dip_run_id)) as h from ${table}`,
  );
  return `${String(rows[0]?.['n'])}:${String(rows[0]?.['h'])}`;
}

const ORDER_COLUMNS = 'id, customer, qty, price, ordered_on, ordered_at, paid, coupon';
const CUSTOMER_COLUMNS = 'id, name, address, tags, score';

function ordersCsv(ids: number[], withCoupon: boolean, bad = false): string {
  const header = [
    'id',
    'customer',
    'qty',
    'price',
    'ordered_on',
    'ordered_at',
    'paid',
    ...(withCoupon ? ['coupon'] : []),
  ];
  const lines = ids.map((i) => {
    const f = [
      String(i),
      `"C, ${i % 7}"`,
      String(i % 5),
      (i * 1.5).toFixed(2),
      `2026-03-${String((i % 28) + 1).padStart(2, '0')}`,
      `2026-03-01 10:${String(i % 60).padStart(2, '0')}:00`,
      i % 2 ? 'true' : 'false',
    ];
    if (withCoupon) f.push(i % 3 ? `K${i}` : '');
    return f.join(',');
  });
  if (bad) lines.push(`9999,"C, x",three,1.00,2026-03-01,2026-03-01 10:00:00,true${withCoupon ? ',' : ''}`);
  return `${[header.join(','), ...lines].join('\n')}\n`;
}

function customersNdjson(ids: number[]): string {
  return `${ids
    .map((id) =>
      JSON.stringify({
        id,
        name: `Cust ${id}`,
        address: { city: ['Lyon', 'Osaka'][id % 2], zip: `Z${id}` },
        tags: range(0, id % 3).map((t) => `t${t}`),
        score: id / 4,
      }),
    )
    .join('\n')}\n`;
}

describe('replay', () => {
  it('rebuilds bronze from the raw zone with identical data, also after the sources are deleted', async () => {
    const p = await project({ orders: { path: 'data/orders/*.csv' }, customers: { path: 'data/customers/*.ndjson' } });
    await p.write('data/orders/1.csv', ordersCsv(range(1, 31), false));
    await p.write('data/customers/1.ndjson', customersNdjson(range(1, 21)));
    await p.runOk();
    await p.write('data/orders/2.csv', ordersCsv(range(31, 51), true, true));
    await p.write('data/customers/2.ndjson', customersNdjson(range(21, 26)));
    const second = await p.runOk();
    assert.equal(second.stats.streams['src.orders']?.rows, 20);
    assert.equal(second.stats.streams['src.orders']?.quarantined, 1);
    const lake = await p.lake();
    assert.equal(await p.count('bronze.orders'), 50);
    assert.equal(await p.count('quarantine.orders'), 1);
    const orders0 = await replayView(p, 'bronze.orders', ORDER_COLUMNS);
    const customers0 = await replayView(p, 'bronze.customers', CUSTOMER_COLUMNS);
    const ordersHead = await head(lake, 'bronze.orders');

    const r1 = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'orders'), {}, 'replay_test_1');
    assert.equal(r1.table, 'bronze.orders');
    assert.equal(r1.rawFiles, 2);
    assert.equal(r1.removedFiles, 2);
    assert.equal(r1.rows, 50, 'the quarantined record stays out');
    assert.equal(r1.commit?.operation, 'replay');
    assert.ok((r1.commit?.id ?? 0) > ordersHead);
    assert.equal(await replayView(p, 'bronze.orders', ORDER_COLUMNS), orders0);
    const live = await lake.catalog.liveFiles('bronze.orders');
    assert.equal(live.length, 2);
    assert.ok(live.every((f) => typeof f.meta['replayed_from'] === 'string'));
    // before the replay commit the original files are still what is read
    assert.equal(
      await replayView(p, 'bronze.orders', ORDER_COLUMNS),
      await replayViewAsOf(p, 'bronze.orders', ORDER_COLUMNS, ordersHead),
    );

    const r2 = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'customers'), {}, 'replay_test_1');
    assert.equal(r2.rows, 25);
    assert.equal(await replayView(p, 'bronze.customers', CUSTOMER_COLUMNS), customers0);
    assert.equal(
      await p.num(`select count(*) from bronze.customers where address.city = 'Osaka'`),
      range(1, 26).filter((i) => i % 2).length,
    );

    // the sources are gone: replay needs only the raw zone
    await rm(p.path('data'), { recursive: true });
    const r3 = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'orders'), {}, 'replay_test_2');
    assert.equal(r3.rows, 50);
    assert.equal(await replayView(p, 'bronze.orders', ORDER_COLUMNS), orders0);
    const r4 = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'customers'), {}, 'replay_test_2');
    assert.equal(r4.rows, 25);
    assert.equal(await replayView(p, 'bronze.customers', CUSTOMER_COLUMNS), customers0);
    // a regular run afterwards finds nothing to read (the globs match no files) and keeps the replayed data
    const after = await p.runOk();
    assert.equal(after.stats.streams['src.orders']?.files, 0);
    assert.equal(await p.count('bronze.orders'), 50);
  });

  it('keeps CSV rows whose date and timestamp formats were sniffed (day-first)', async () => {
    const p = await project({ d: { path: 'data/d.csv' } });
    const days = range(1, 21).map((i) => ({
      id: i,
      day: `${String((i % 28) + 1).padStart(2, '0')}/03/2026`,
      at: `${String((i % 28) + 1).padStart(2, '0')}/03/2026 10:${String(i).padStart(2, '0')}:00`,
    }));
    await p.write('data/d.csv', `id,day,at\n${days.map((d) => `${d.id},${d.day},${d.at}`).join('\n')}\n`);
    await p.runOk();
    const types = await p.rows(
      `select column_name as c, column_type as t from (describe bronze.d) where column_name in ('day', 'at') order by 1`,
    );
    assert.deepEqual(types, [
      { c: 'at', t: 'TIMESTAMP' },
      { c: 'day', t: 'DATE' },
    ]);
    const v0 = await replayView(p, 'bronze.d', 'id, day, "at"');
    assert.match(v0, /^20:/);
    const lake = await p.lake();
    const r = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'd'), {}, 'replay_dates');
    assert.equal(r.rows, 20, 'every row typed again with the sniffed formats');
    assert.equal(await replayView(p, 'bronze.d', 'id, day, "at"'), v0);
  });

  it('replays only the raw files ingested within from/to', async (t) => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    t.after(() => mock.timers.reset());
    const days = ['2026-01-10', '2026-01-11', '2026-01-12'];
    const ids = [range(1, 11), range(11, 26), range(26, 31)];
    mock.timers.enable({ apis: ['Date'], now: new Date(`${days[0]}T12:00:00Z`) });
    for (const [i, day] of days.entries()) {
      mock.timers.setTime(new Date(`${day}T12:00:00Z`).getTime());
      await p.write(`data/${i}.csv`, csv(ids[i] ?? []));
      await p.runOk();
    }
    mock.timers.reset();
    const lake = await p.lake();
    const dates = (await lake.catalog.liveFiles('raw.orders')).map((f) => f.meta['ingest_date']);
    assert.deepEqual(dates, days);
    const v0 = await replayView(p, 'bronze.orders', 'id, name');

    const mid = await replayStream(
      lake,
      'p',
      'src',
      streamSpec(p, lake, 'orders'),
      { from: days[1], to: days[1] },
      'replay_range',
    );
    assert.equal(mid.rawFiles, 1);
    assert.equal(mid.removedFiles, 1);
    assert.equal(mid.rows, 15);
    assert.equal(await replayView(p, 'bronze.orders', 'id, name'), v0);
    const live = await lake.catalog.liveFiles('bronze.orders');
    assert.equal(live.length, 3);
    assert.deepEqual(
      live.filter((f) => f.meta['replayed_from'] !== undefined).map((f) => f.meta['source_file']),
      [p.path('data/1.csv')],
    );

    const open = await replayStream(
      lake,
      'p',
      'src',
      streamSpec(p, lake, 'orders'),
      { from: days[1] },
      'replay_range_2',
    );
    assert.equal(open.rawFiles, 2);
    assert.equal(open.rows, 20);
    assert.equal(await replayView(p, 'bronze.orders', 'id, name'), v0);

    const upto = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'orders'), { to: days[0] }, 'replay_range_3');
    assert.equal(upto.rawFiles, 1);
    assert.equal(upto.rows, 10);
    assert.equal(await replayView(p, 'bronze.orders', 'id, name'), v0);
    assert.equal(await p.num('select sum(id) from bronze.orders'), sum(range(1, 31)));
  });
});

async function replayViewAsOf(p: TestProject, table: string, cols: string, commit: number): Promise<string> {
  const rows = await p.rows(
    `select count(*) as n, md5(string_agg(row(${cols}, _dip_run_id, _dip_source, _dip_source_file)::VARCHAR, '|' order by id, _dip_run_id)) as h from ${table}`,
    { commit },
  );
  return `${String(rows[0]?.['n'])}:${String(rows[0]?.['h'])}`;
}

describe('changed inputs and lineage', () => {
  it('a changed (or merely touched) input replaces its earlier rows instead of adding to them', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/a.csv', csv(range(1, 11)));
    await p.write('data/b.csv', csv(range(11, 21)));
    await p.runOk();
    await p.touch('data/a.csv');
    const touched = await p.runOk();
    assert.equal(touched.stats.streams['src.orders']?.files, 1);
    assert.deepEqual(
      await p.rows('select count(*)::INT as n, count(distinct id)::INT as d, sum(id)::INT as s from bronze.orders'),
      [{ n: 20, d: 20, s: sum(range(1, 21)) }],
    );
    assert.equal(await p.num('select count(*) from raw.orders'), 20);
    await p.write('data/a.csv', csv(range(1, 6), 'v2'));
    await p.runOk();
    assert.deepEqual(
      await p.rows(
        "select count(*)::INT as n, sum(id)::INT as s, count(*) filter (where name like 'v2%')::INT as v2 from bronze.orders",
      ),
      [{ n: 15, s: sum(range(1, 6)) + sum(range(11, 21)), v2: 5 }],
    );
  });

  it('a changed input inside a compacted file is rewritten out of it; the other inputs stay', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/a.csv', csv(range(1, 11)));
    await p.write('data/b.csv', csv(range(11, 21)));
    await p.runOk();
    const lake = await p.lake();
    await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    assert.equal((await lake.catalog.getTable('bronze.orders'))?.files, 1);
    await p.write('data/b.csv', csv(range(11, 14), 'v2'));
    await p.runOk();
    assert.deepEqual(await p.rows('select count(*)::INT as n, sum(id)::INT as s from bronze.orders'), [
      { n: 13, s: sum(range(1, 14)) },
    ]);
  });

  it('replay after compaction rebuilds each row once', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/a.csv', csv(range(1, 4)));
    await p.write('data/b.csv', csv(range(4, 7)));
    await p.runOk();
    const lake = await p.lake();
    await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    const before = await snapshot(p, 'bronze.orders');
    const r = await replayStream(lake, 'p', 'src', streamSpec(p, lake, 'orders'), {}, 'replay_after_compact');
    assert.equal(r.removedFiles, 1);
    assert.equal(await p.num('select count(*) from bronze.orders'), 6);
    assert.equal(await snapshot(p, 'bronze.orders'), before);
  });
});

describe('history horizon', () => {
  it('after gc expires removed files, time travel and rollback to older commits are refused, newer ones work', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write('data/a.csv', csv(range(1, 4)));
    await p.runOk();
    await p.write('data/b.csv', csv(range(4, 7)));
    await p.runOk();
    const lake = await p.lake();
    const beforeCompact = await head(lake, 'bronze.orders');
    const compacted = await compactTable(lake, 'bronze.orders', { smallFileBytes: 64 * 1024 * 1024 });
    await sleep(5);
    const gc = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
    assert.equal(gc.expiredFiles, 2);
    assert.equal(await lake.catalog.historyHorizon(), compacted.commit?.id);
    await assert.rejects(
      p.rows('select count(*) from bronze.orders', { commit: beforeCompact }),
      /older than the kept history/,
    );
    await assert.rejects(rollbackTable(lake, 'bronze.orders', beforeCompact), /older than the kept history/);
    assert.equal(await p.num('select count(*) from bronze.orders'), 6);
    assert.deepEqual(await p.rows('select count(*)::INT as n from bronze.orders', { commit: compacted.commit?.id }), [
      { n: 6 },
    ]);
  });
});
