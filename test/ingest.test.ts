/**
 * Ingestion end to end through runPipeline: every input format lands in bronze with the same
 * rows as the input, the raw zone keeps one envelope per record, the ledger skips unchanged
 * files, write dispositions, quarantine and schema evolution.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { TestProject, type StreamYaml } from './support/project.js';

const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
});

async function project(streams: Record<string, StreamYaml>, extra: { raw?: boolean } = {}): Promise<TestProject> {
  const p = await TestProject.create(streams, extra);
  projects.push(p);
  return p;
}

const md5 = (s: string) => createHash('md5').update(s, 'utf8').digest('hex');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const ndjson = (records: unknown[]) => `${records.map((r) => JSON.stringify(r)).join('\n')}\n`;

/** md5 over `id:name` ordered by id, computed the same way in DuckDB. */
const CHECKSUM_SQL = (table: string, cols = `id::VARCHAR || ':' || coalesce(name, '∅')`) =>
  `select md5(string_agg(${cols}, '|' order by id)) as h from ${table}`;

async function checksum(p: TestProject, table: string, cols?: string): Promise<string> {
  const rows = await p.rows(CHECKSUM_SQL(table, cols));
  return String(rows[0]?.['h']);
}

async function assertAuditColumns(
  p: TestProject,
  table: string,
  runId: string,
  stream: string,
  files: string[],
  rows: number,
): Promise<void> {
  const [a] = await p.rows(`select count(*) as n,
      count(*) filter (where _dip_run_id = '${runId}') as run,
      count(*) filter (where _dip_source = 'p.src.${stream}') as src,
      count(*) filter (where _dip_ingested_at is not null) as at,
      list(distinct _dip_source_file order by _dip_source_file) as files
    from ${table}`);
  assert.ok(a);
  assert.equal(Number(a['n']), rows);
  assert.equal(Number(a['run']), rows, '_dip_run_id is the run id on every row');
  assert.equal(Number(a['src']), rows, '_dip_source is pipeline.source.stream on every row');
  assert.equal(Number(a['at']), rows, '_dip_ingested_at is set on every row');
  assert.deepEqual(a['files'], [...files].sort());
}

/** Raw zone: one envelope per record, seq 1..n per file, the run id and the source file. */
async function assertRawEnvelopes(
  p: TestProject,
  table: string,
  runId: string,
  perFile: Record<string, number>,
): Promise<void> {
  const rows =
    await p.rows(`select position->>'file' as file, count(*) as n, sum(seq) as seqsum, min(seq) as lo, max(seq) as hi,
      count(*) filter (where run_id = '${runId}') as run, count(*) filter (where payload is not null) as payloads,
      count(distinct position->>'record') as records
    from raw.${table} group by 1 order by 1`);
  const expected = Object.entries(perFile).sort(([a], [b]) => (a < b ? -1 : 1));
  assert.deepEqual(
    rows.map((r) => [
      r['file'],
      Number(r['n']),
      Number(r['seqsum']),
      Number(r['lo']),
      Number(r['hi']),
      Number(r['run']),
      Number(r['payloads']),
      Number(r['records']),
    ]),
    expected.map(([f, n]) => [f, n, (n * (n + 1)) / 2, 1, n, n, n, n]),
  );
}

describe('formats', () => {
  it('CSV: custom delimiter, quoted commas and newlines, header, latin-1, null_values', async () => {
    const p = await project({
      people: {
        path: 'data/people.csv',
        csv: { delimiter: ';', header: true, encoding: 'latin-1', null_values: ['NA', 'n/a'] },
      },
    });
    const names = ['Café Müller', 'Smith, John', 'Ñoño; "Jr"', 'Zoë', 'plain'];
    const records = range(1, 61).map((id) => ({
      id,
      name: names[id % names.length] as string,
      amount: id % 7 === 0 ? null : id * 3,
      note: id % 5 === 0 ? `first line ${id}\nsecond, line` : id % 11 === 0 ? null : `note ${id}`,
    }));
    const quote = (s: string) => `"${s.replaceAll('"', '""')}"`;
    const lines = [
      'id;name;amount;note',
      ...records.map((r) =>
        [
          r.id,
          quote(r.name),
          r.amount === null ? (r.id % 2 ? 'NA' : 'n/a') : r.amount,
          r.note === null ? 'NA' : quote(r.note),
        ].join(';'),
      ),
    ];
    const file = await p.write('data/people.csv', Buffer.from(`${lines.join('\n')}\n`, 'latin1'));

    const result = await p.runOk();
    assert.equal(result.stats.streams['src.people']?.rows, 60);
    assert.equal(result.stats.streams['src.people']?.quarantined, 0);
    assert.equal(await p.count('bronze.people'), 60);
    assert.equal(await p.num('select sum(id) from bronze.people'), sum(records.map((r) => r.id)));
    assert.equal(await p.num('select sum(amount) from bronze.people'), sum(records.map((r) => r.amount ?? 0)));
    assert.equal(
      await p.num('select count(amount) from bronze.people'),
      records.filter((r) => r.amount !== null).length,
    );
    assert.equal(await p.num('select count(note) from bronze.people'), records.filter((r) => r.note !== null).length);
    assert.equal(
      await checksum(p, 'bronze.people', `id::VARCHAR || ':' || name || ':' || coalesce(note, '∅')`),
      md5(records.map((r) => `${r.id}:${r.name}:${r.note ?? '∅'}`).join('|')),
    );
    // latin-1 decoded, quoted separators and newlines kept inside the field
    const [five] = await p.rows(`select name, note from bronze.people where id = 5`);
    assert.deepEqual(five, { name: 'Café Müller', note: 'first line 5\nsecond, line' });
    const [twelve] = await p.rows(`select name from bronze.people where id = 12`);
    assert.deepEqual(twelve, { name: 'Ñoño; "Jr"' });
    const types = Object.fromEntries(
      (await p.rows(`select column_name, column_type as data_type from (describe bronze.people)`)).map((r) => [
        r['column_name'],
        r['data_type'],
      ]),
    );
    assert.equal(types['id'], 'BIGINT');
    assert.equal(types['amount'], 'BIGINT');
    assert.equal(types['name'], 'VARCHAR');

    await assertAuditColumns(p, 'bronze.people', result.runId, 'people', [file], 60);
    await assertRawEnvelopes(p, 'people', result.runId, { [file]: 60 });
    // CSV payloads keep the text as written (after decoding)
    const [raw] = await p.rows(
      `select payload->>'name' as name, payload->>'id' as id, position->>'file' as file from raw.people where seq = 5`,
    );
    assert.deepEqual(raw, { name: 'Café Müller', id: '5', file });
  });

  it('NDJSON: nested objects become STRUCT, arrays become LIST, both queryable', async () => {
    const p = await project({ customers: { path: 'data/customers.ndjson' } });
    const cities = ['Lisbon', 'Porto', 'Berlin'];
    const records = range(1, 101).map((id) => ({
      id,
      name: `Customer ${id}`,
      address: { city: cities[id % 3], zip: String(10000 + id), geo: { lat: id / 10, lon: -id } },
      tags: range(0, id % 4).map((t) => `t${t}`),
      scores: [id, id * 2],
    }));
    const file = await p.write('data/customers.ndjson', ndjson(records));
    const result = await p.runOk();
    assert.equal(result.stats.streams['src.customers']?.rows, 100);
    assert.equal(await p.count('bronze.customers'), 100);
    assert.equal(await p.num('select sum(id) from bronze.customers'), 5050);
    assert.equal(await checksum(p, 'bronze.customers'), md5(records.map((r) => `${r.id}:${r.name}`).join('|')));

    const types = Object.fromEntries(
      (await p.rows(`select column_name, column_type as data_type from (describe bronze.customers)`)).map((r) => [
        r['column_name'],
        String(r['data_type']),
      ]),
    );
    assert.match(types['address'] ?? '', /^STRUCT\(/);
    assert.match(types['address'] ?? '', /city VARCHAR/);
    assert.equal(types['tags'], 'VARCHAR[]');
    assert.equal(types['scores'], 'BIGINT[]');

    const byCity = await p.rows(
      `select address.city as city, count(*) as n from bronze.customers group by 1 order by 1`,
    );
    const expectedByCity = cities
      .map((c) => [c, records.filter((r) => r.address.city === c).length] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual(
      byCity.map((r) => [r['city'], Number(r['n'])]),
      expectedByCity,
    );
    assert.equal(await p.num('select sum(len(tags)) from bronze.customers'), sum(records.map((r) => r.tags.length)));
    assert.equal(await p.num('select sum(scores[2]) from bronze.customers'), sum(records.map((r) => r.id * 2)));
    assert.equal(await p.num('select sum(address.geo.lon) from bronze.customers'), -5050);
    assert.equal(
      await p.num(`select count(*) from bronze.customers where list_contains(tags, 't2')`),
      records.filter((r) => r.tags.includes('t2')).length,
    );

    await assertAuditColumns(p, 'bronze.customers', result.runId, 'customers', [file], 100);
    await assertRawEnvelopes(p, 'customers', result.runId, { [file]: 100 });
    const [raw] = await p.rows(
      `select payload->'address'->>'city' as city, (payload->>'id')::INT as id from raw.customers where seq = 7`,
    );
    assert.deepEqual(raw, { city: records[6]?.address.city, id: 7 });
  });

  it('JSON array file', async () => {
    const p = await project({ products: { path: 'data/products.json' } });
    const records = range(1, 41).map((id) => ({ id, name: `Product ${id}`, price: id * 1.25, active: id % 3 !== 0 }));
    const file = await p.write('data/products.json', JSON.stringify(records, null, 2));
    const result = await p.runOk();
    assert.equal(result.stats.streams['src.products']?.rows, 40);
    assert.equal(await p.count('bronze.products'), 40);
    assert.equal(await p.num('select sum(id) from bronze.products'), 820);
    assert.equal(await p.num('select sum(price) from bronze.products'), sum(records.map((r) => r.price)));
    assert.equal(
      await p.num('select count(*) from bronze.products where active'),
      records.filter((r) => r.active).length,
    );
    assert.equal(await checksum(p, 'bronze.products'), md5(records.map((r) => `${r.id}:${r.name}`).join('|')));
    await assertAuditColumns(p, 'bronze.products', result.runId, 'products', [file], 40);
    await assertRawEnvelopes(p, 'products', result.runId, { [file]: 40 });
  });

  it('Parquet file written by DuckDB', async () => {
    const p = await project({ events: { path: 'data/events.parquet' } });
    const file = p.path('data/events.parquet');
    await p.write('data/.keep', '');
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    await conn.run(
      `COPY (SELECT i AS id, 'event ' || i AS name, (i % 9)::INTEGER AS kind, DATE '2026-01-01' + (i % 30)::INTEGER AS day
       FROM range(1, 501) t(i)) TO '${file}' (FORMAT parquet)`,
    );
    conn.closeSync();
    db.closeSync();

    const result = await p.runOk();
    assert.equal(result.stats.streams['src.events']?.rows, 500);
    assert.equal(await p.count('bronze.events'), 500);
    assert.equal(await p.num('select sum(id) from bronze.events'), 125250);
    assert.equal(await p.num('select sum(kind) from bronze.events'), sum(range(1, 501).map((i) => i % 9)));
    assert.equal(await p.num('select count(distinct day) from bronze.events'), 30);
    assert.equal(
      await checksum(p, 'bronze.events'),
      md5(
        range(1, 501)
          .map((i) => `${i}:event ${i}`)
          .join('|'),
      ),
    );
    await assertAuditColumns(p, 'bronze.events', result.runId, 'events', [file], 500);
    await assertRawEnvelopes(p, 'events', result.runId, { [file]: 500 });
  });
});

describe('bronze columns', () => {
  it('bronze exposes exactly the source columns plus the audit columns', async () => {
    const p = await project({ t: { path: 'data/t.csv' } });
    await p.write('data/t.csv', 'id,name\n1,a\n2,b\n');
    await p.runOk();
    const cols = (await p.rows('select column_name from (describe bronze.t)')).map((r) => r['column_name']);
    assert.deepEqual(cols, ['id', 'name', '_dip_run_id', '_dip_ingested_at', '_dip_source', '_dip_source_file']);
  });

  it('a source column named "date" keeps its values when queried', async () => {
    const p = await project({ ev: { path: 'data/ev.csv' } });
    await p.write('data/ev.csv', 'id,date,amount\n1,2020-01-05,10\n2,2019-03-04,20\n');
    await p.runOk();
    const ev = await p.rows(`select id::INT as id, date::VARCHAR as d from bronze.ev order by id`);
    assert.deepEqual(ev, [
      { id: 1, d: '2020-01-05' },
      { id: 2, d: '2019-03-04' },
    ]);
  });

  it('merge writes the source "date" values (not the partition date) into the merged file', async () => {
    const p = await project({ m: { path: 'data/m.ndjson', write_disposition: 'merge', primary_key: ['id'] } });
    await p.write(
      'data/m.ndjson',
      ndjson([
        { id: 1, date: '2020-01-05' },
        { id: 2, date: '2019-03-04' },
      ]),
    );
    await p.runOk();
    const lake = await p.lake();
    const files = await lake.catalog.liveFiles('bronze.m');
    assert.equal(files.length, 1);
    // read the stored file itself, without hive partition columns
    const stored = await lake.engine.all(
      `select id::INT as id, date::VARCHAR as d from read_parquet('${lake.storage.uri(files[0]?.path ?? '')}', hive_partitioning=false) order by id`,
    );
    assert.deepEqual(stored, [
      { id: 1, d: '2020-01-05' },
      { id: 2, d: '2019-03-04' },
    ]);
  });
});

describe('glob and ledger', () => {
  it('skips unchanged files; a touched or added file is the only one read', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    const csv = (ids: number[]) => `id,name\n${ids.map((i) => `${i},n${i}`).join('\n')}\n`;
    await p.write('data/a.csv', csv(range(1, 11)));
    await p.write('data/b.csv', csv(range(11, 31)));
    await p.write('data/c.csv', csv(range(31, 61)));
    await p.write('data/ignored.txt', 'not matched by the glob\n');

    const first = await p.runOk();
    assert.deepEqual(pick(first.stats.streams['src.orders']), { files: 3, skippedFiles: 0, rows: 60, commits: 3 });
    assert.equal(await p.num('select sum(id) from bronze.orders'), sum(range(1, 61)));

    const second = await p.runOk();
    assert.deepEqual(pick(second.stats.streams['src.orders']), { files: 0, skippedFiles: 3, rows: 0, commits: 0 });
    assert.equal(await p.count('bronze.orders'), 60);

    await p.touch('data/b.csv');
    const third = await p.runOk();
    assert.deepEqual(pick(third.stats.streams['src.orders']), { files: 1, skippedFiles: 2, rows: 20, commits: 1 });
    const [reread] = await p.rows(
      `select list(distinct _dip_source_file) as f from bronze.orders where _dip_run_id = '${third.runId}'`,
    );
    assert.deepEqual(reread?.['f'], [p.path('data/b.csv')]);
    // append: the changed file's new rows replace its earlier ones (no duplicates)
    assert.equal(await p.count('bronze.orders'), 60);
    assert.equal(await p.num('select count(distinct id) from bronze.orders'), 60);

    await p.write('data/d.csv', csv(range(61, 66)));
    const fourth = await p.runOk();
    assert.deepEqual(pick(fourth.stats.streams['src.orders']), { files: 1, skippedFiles: 3, rows: 5, commits: 1 });
    assert.equal(await p.count('bronze.orders'), 65);
    assert.equal(
      await p.num(`select sum(id) from bronze.orders where _dip_run_id = '${fourth.runId}'`),
      sum(range(61, 66)),
    );

    const fifth = await p.runOk();
    assert.deepEqual(pick(fifth.stats.streams['src.orders']), { files: 0, skippedFiles: 4, rows: 0, commits: 0 });
  });
});

function pick(s: { files: number; skippedFiles: number; rows: number; commits: number } | undefined) {
  assert.ok(s, 'stream stats present');
  return { files: s.files, skippedFiles: s.skippedFiles, rows: s.rows, commits: s.commits };
}

describe('write dispositions', () => {
  it('replace: the table equals the latest inputs', async () => {
    const p = await project({ products: { path: 'data/*.json', write_disposition: 'replace' } });
    const recs = (ids: number[], tag: string) => JSON.stringify(ids.map((id) => ({ id, name: `${tag}${id}` })));
    await p.write('data/a.json', recs(range(1, 21), 'a'));
    await p.write('data/b.json', recs(range(21, 31), 'b'));
    await p.runOk();
    assert.equal(await p.count('bronze.products'), 30);
    assert.equal(await p.num('select sum(id) from bronze.products'), sum(range(1, 31)));

    // unchanged inputs: replace re-reads them and the table stays the same (no duplicates)
    const again = await p.runOk();
    assert.equal(again.stats.streams['src.products']?.files, 2);
    assert.equal(await p.count('bronze.products'), 30);

    await rm(p.path('data/b.json'));
    await p.write('data/a.json', recs(range(100, 105), 'new'));
    await p.runOk();
    assert.equal(await p.count('bronze.products'), 5);
    assert.equal(
      await checksum(p, 'bronze.products'),
      md5(
        range(100, 105)
          .map((i) => `${i}:new${i}`)
          .join('|'),
      ),
    );
    assert.equal(await p.num('select count(distinct _dip_source_file) from bronze.products'), 1);

    // no inputs left: nothing is committed and the table keeps its rows (an empty glob is
    // more likely a missing mount than a wish to empty the table)
    await rm(p.path('data/a.json'));
    const empty = await p.runOk();
    assert.equal(empty.stats.streams['src.products']?.files, 0);
    assert.equal(empty.stats.streams['src.products']?.commits, 0);
    assert.equal(await p.count('bronze.products'), 5);
  });

  it('merge: upserts by primary key, latest wins within a batch, deleted_column removes keys', async () => {
    const p = await project({
      customers: { path: 'data/*.ndjson', write_disposition: 'merge', primary_key: ['id'], deleted_column: 'deleted' },
    });
    await p.write('data/1.ndjson', ndjson(range(1, 11).map((id) => ({ id, name: `v1-${id}`, deleted: false }))));
    await p.runOk();
    assert.equal(await p.count('bronze.customers'), 10);

    // one batch of two files: 2.ndjson updates 3 twice (the second wins), deletes 5, adds 11;
    // 3.ndjson (read after 2) updates 4 again and re-adds... nothing for 5
    await p.write(
      'data/2.ndjson',
      ndjson([
        { id: 3, name: 'v2-3-first', deleted: false },
        { id: 4, name: 'v2-4', deleted: false },
        { id: 3, name: 'v2-3-second', deleted: false },
        { id: 5, name: 'gone', deleted: true },
        { id: 11, name: 'v2-11', deleted: false },
        { id: 12, name: 'v2-12', deleted: false },
      ]),
    );
    await p.write(
      'data/3.ndjson',
      ndjson([
        { id: 4, name: 'v3-4', deleted: false },
        { id: 12, name: 'v3-12-deleted', deleted: true },
      ]),
    );
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.customers']?.files, 2);
    assert.equal(r.stats.streams['src.customers']?.skippedFiles, 1);
    assert.equal(r.stats.streams['src.customers']?.commits, 1);

    const expected = new Map<number, string>(range(1, 11).map((id) => [id, `v1-${id}`]));
    expected.set(3, 'v2-3-second');
    expected.set(4, 'v3-4');
    expected.delete(5);
    expected.set(11, 'v2-11');
    const ids = [...expected.keys()].sort((a, b) => a - b);
    assert.equal(await p.count('bronze.customers'), 10);
    assert.equal(await p.num('select count(distinct id) from bronze.customers'), 10);
    assert.equal(await p.num('select sum(id) from bronze.customers'), sum(ids));
    assert.equal(await checksum(p, 'bronze.customers'), md5(ids.map((id) => `${id}:${expected.get(id)}`).join('|')));
    assert.equal(await p.num('select count(*) from bronze.customers where deleted'), 0);
  });

  it('merge: a missing primary key is a clear error', async () => {
    const p = await project({
      nokey: { path: 'data/nokey.ndjson', write_disposition: 'merge' },
      wrongkey: { path: 'data/wrongkey.ndjson', write_disposition: 'merge', primary_key: ['customer_id'] },
      nullkey: { path: 'data/nullkey.ndjson', write_disposition: 'merge', primary_key: ['id'] },
    });
    await p.write('data/nokey.ndjson', ndjson([{ id: 1, name: 'a' }]));
    await p.write('data/wrongkey.ndjson', ndjson([{ id: 1, name: 'a' }]));
    await p.write(
      'data/nullkey.ndjson',
      ndjson([{ id: 1, name: 'a' }, { name: 'no id' }, { id: null, name: 'null id' }]),
    );
    const r = await p.run();
    assert.equal(r.status, 'failed');
    const byStream = Object.fromEntries(r.errors.map((e) => [e.stream, e]));
    assert.deepEqual(Object.keys(byStream).sort(), ['src.nokey', 'src.nullkey', 'src.wrongkey']);
    assert.match(byStream['src.nokey']?.message ?? '', /bronze\.nokey: write_disposition merge needs primary_key/);
    assert.match(
      byStream['src.wrongkey']?.message ?? '',
      /bronze\.wrongkey: merge column "customer_id" is not a column of the data \(columns: id, name\b/,
    );
    assert.match(
      byStream['src.nullkey']?.message ?? '',
      /bronze\.nullkey: 2 incoming records have no value for primary key \(id\)/,
    );
    // nothing committed for any of them
    const lake = await p.lake();
    for (const t of ['bronze.nokey', 'bronze.wrongkey', 'bronze.nullkey'])
      assert.equal(await lake.catalog.getTable(t), undefined, `${t} not created`);
  });
});

describe('quarantine', () => {
  it('malformed CSV rows go to quarantine with file, line, error type and reason; good rows land', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    const good = (ids: number[]) => ids.map((i) => `${i},item ${i},${i % 5}`);
    await p.write('data/1.csv', ['id,item,qty', ...good(range(1, 51))].join('\n') + '\n');
    const bad = [
      'id,item,qty',
      ...good(range(51, 61)), // lines 2..11
      '61,item 61,three', // line 12: bad integer
      ...good(range(62, 71)), // lines 13..21
      '71,item 71,1,unexpected', // line 22: too many columns
      ...good(range(72, 81)), // lines 23..31
    ];
    const badFile = await p.write('data/2.csv', bad.join('\n') + '\n');
    const r = await p.runOk();
    const stats = r.stats.streams['src.orders'];
    assert.equal(stats?.rows, 78);
    assert.equal(stats?.quarantined, 2);

    const goodIds = [...range(1, 61), ...range(62, 71), ...range(72, 81)];
    assert.equal(goodIds.length, 78);
    assert.equal(await p.count('bronze.orders'), 78);
    assert.equal(await p.num('select sum(id) from bronze.orders'), sum(goodIds));
    assert.equal(await p.num('select sum(qty) from bronze.orders'), sum(goodIds.map((i) => i % 5)));

    const q = await p.rows(
      `select _dip_source_file as file, line, error_type, reason, raw, _dip_run_id as run from quarantine.orders order by line`,
    );
    assert.equal(q.length, 2);
    assert.deepEqual(
      q.map((x) => [x['file'], Number(x['line']), x['error_type'], x['run']]),
      [
        [badFile, 12, 'CAST', r.runId],
        [badFile, 22, 'TOO MANY COLUMNS', r.runId],
      ],
    );
    assert.match(String(q[0]?.['reason']), /qty/);
    assert.match(String(q[0]?.['reason']), /three/);
    assert.match(String(q[1]?.['reason']), /Expected Number of Columns: 3 Found: 4/);
    assert.match(String(q[0]?.['raw']), /61,item 61,three/);
  });

  it('declared column types quarantine bad values in the first file too', async () => {
    const p = await project({ m: { path: 'data/m.csv', csv: { columns: { qty: 'INTEGER' } } } });
    await p.write('data/m.csv', 'id,qty\n1,10\n2,x\n3,30\n4,\n');
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.m']?.rows, 3);
    assert.equal(r.stats.streams['src.m']?.quarantined, 1);
    assert.deepEqual(
      (await p.rows('select id, qty from bronze.m order by id')).map((x) => [Number(x['id']), x['qty']]),
      [
        [1, 10],
        [3, 30],
        [4, null],
      ],
    );
    const q = await p.rows('select line, error_type, column_name from quarantine.m');
    assert.deepEqual(
      q.map((x) => [Number(x['line']), x['error_type'], x['column_name']]),
      [[3, 'CAST', 'qty']],
    );
  });

  it('a malformed NDJSON line goes to quarantine with its line number', async () => {
    const p = await project({ ev: { path: 'data/ev.ndjson' } });
    const lines = range(1, 31).map((id) => JSON.stringify({ id, name: `e${id}` }));
    lines.splice(9, 0, '{"id": 999, "name": "broken"'); // line 10
    lines.splice(19, 0, 'not json at all'); // line 20
    const file = await p.write('data/ev.ndjson', `${lines.join('\n')}\n`);
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.ev']?.rows, 30);
    assert.equal(r.stats.streams['src.ev']?.quarantined, 2);
    assert.equal(await p.count('bronze.ev'), 30);
    assert.equal(await p.num('select sum(id) from bronze.ev'), 465);
    const q = await p.rows(`select _dip_source_file as file, line, error_type, raw from quarantine.ev order by line`);
    assert.deepEqual(
      q.map((x) => [x['file'], Number(x['line']), x['error_type'], x['raw']]),
      [
        [file, 10, 'MALFORMED JSON', '{"id": 999, "name": "broken"'],
        [file, 20, 'MALFORMED JSON', 'not json at all'],
      ],
    );
  });
});

describe('schema evolution', () => {
  it('a file that adds a column makes schema version 2; old rows read NULL', async () => {
    const p = await project({ orders: { path: 'data/*.csv' } });
    await p.write(
      'data/1.csv',
      `id,name\n${range(1, 21)
        .map((i) => `${i},n${i}`)
        .join('\n')}\n`,
    );
    await p.runOk();
    await p.write(
      'data/2.csv',
      `id,name,coupon\n${range(21, 31)
        .map((i) => `${i},n${i},C${i}`)
        .join('\n')}\n`,
    );
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.orders']?.rows, 10);
    const lake = await p.lake();
    const info = await lake.catalog.getTable('bronze.orders');
    assert.equal(info?.schemaVersion, 2);
    const versions = await lake.catalog.listSchemaVersions('bronze.orders');
    assert.deepEqual(
      versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal(
      versions[0]?.schema.columns.some((c) => c.name === 'coupon'),
      false,
    );
    assert.deepEqual(
      versions[1]?.schema.columns.find((c) => c.name === 'coupon'),
      { name: 'coupon', type: 'VARCHAR' },
    );
    assert.equal(await p.count('bronze.orders'), 30);
    assert.equal(await p.num('select count(*) from bronze.orders where coupon is null'), 20);
    assert.equal(await p.num('select sum(id) from bronze.orders where coupon is null'), sum(range(1, 21)));
    assert.equal(await p.num(`select count(*) from bronze.orders where coupon = 'C' || id::VARCHAR`), 10);
    assert.equal(
      await checksum(p, 'bronze.orders'),
      md5(
        range(1, 31)
          .map((i) => `${i}:n${i}`)
          .join('|'),
      ),
    );
  });

  it('int → double in NDJSON widens the column as a new version', async () => {
    const p = await project({ m: { path: 'data/*.ndjson' } });
    await p.write('data/1.ndjson', ndjson(range(1, 11).map((id) => ({ id, v: id }))));
    await p.runOk();
    await p.write('data/2.ndjson', ndjson(range(11, 21).map((id) => ({ id, v: id + 0.5 }))));
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.m']?.rows, 10);
    const lake = await p.lake();
    const versions = await lake.catalog.listSchemaVersions('bronze.m');
    assert.deepEqual(
      versions.map((v) => [v.version, v.schema.columns.find((c) => c.name === 'v')?.type]),
      [
        [1, 'BIGINT'],
        [2, 'DOUBLE'],
      ],
    );
    const [t] = await p.rows(`select column_type as data_type from (describe bronze.m) where column_name = 'v'`);
    assert.equal(t?.['data_type'], 'DOUBLE');
    assert.equal(await p.count('bronze.m'), 20);
    assert.equal(
      await p.num('select sum(v) from bronze.m'),
      sum(range(1, 11)) + sum(range(11, 21).map((i) => i + 0.5)),
    );
  });

  it('an incompatible type change fails the run, names table, column, types and file, and commits nothing of that file', async () => {
    const p = await project({ m: { path: 'data/*.ndjson' } });
    await p.write('data/1.ndjson', ndjson(range(1, 11).map((id) => ({ id, name: `n${id}` }))));
    await p.runOk();
    const lake = await p.lake();
    const before = await lake.catalog.getTable('bronze.m');
    const file = await p.write('data/2.ndjson', ndjson(range(1, 6).map((i) => ({ id: `abc-${i}`, name: `x${i}` }))));
    const r = await p.run();
    assert.equal(r.status, 'failed');
    assert.equal(r.errors.length, 1);
    const msg = r.errors[0]?.message ?? '';
    assert.match(msg, /bronze\.m/);
    assert.match(msg, /column id/);
    assert.match(msg, /BIGINT/);
    assert.match(msg, /VARCHAR/);
    assert.ok(msg.includes(file), `message names the file: ${msg}`);
    assert.equal(r.errors[0]?.exitCode, 4);
    // nothing of file 2 is committed: bronze, raw and the ledger are as before
    const afterInfo = await lake.catalog.getTable('bronze.m');
    assert.equal(afterInfo?.headCommit, before?.headCommit);
    assert.equal(afterInfo?.schemaVersion, 1);
    assert.equal(await p.count('bronze.m'), 10);
    assert.equal(await p.count('raw.m'), 10);
    assert.equal(await p.num(`select count(*) from raw.m where position->>'file' = '${file}'`), 0);
    const ledger = await lake.catalog.getLedger('p', 'src', 'm');
    assert.equal(ledger.has(file), false);
    // the run is recorded as failed with the message
    const run = await lake.catalog.getRun(r.runId);
    assert.equal(run?.status, 'failed');
    assert.match(run?.error ?? '', /column id/);
    // and the file is tried (and refused) again on the next run
    const again = await p.run();
    assert.equal(again.status, 'failed');
    assert.equal(again.stats.streams['src.m']?.skippedFiles, 1);
  });

  it('schema_contract freeze rejects a new column', async () => {
    const p = await project({ f: { path: 'data/*.csv', schema_contract: 'freeze' } });
    await p.write('data/1.csv', 'id,name\n1,a\n2,b\n');
    await p.runOk();
    const file = await p.write('data/2.csv', 'id,name,extra\n3,c,x\n');
    const r = await p.run();
    assert.equal(r.status, 'failed');
    const msg = r.errors[0]?.message ?? '';
    assert.match(msg, /bronze\.f/);
    assert.match(msg, /column extra: new column of type VARCHAR/);
    assert.match(msg, /schema_contract: freeze/);
    assert.ok(msg.includes(file));
    assert.equal(await p.count('bronze.f'), 2);
    assert.equal((await (await p.lake()).catalog.getTable('bronze.f'))?.schemaVersion, 1);
    // same columns still land under freeze (once the offending file is gone)
    await rm(file);
    await p.write('data/3.csv', 'id,name\n4,d\n');
    const ok = await p.run();
    assert.equal(ok.stats.streams['src.f']?.rows, 1);
    assert.equal(await p.num('select sum(id) from bronze.f'), 7);
  });
});

describe('raw zone fidelity', () => {
  it('keeps JSON records as they arrived: big integers, timestamp text, a key added late', async () => {
    const p = await project({ events: { path: 'data/e.ndjson' } });
    const lines = ['{"id":1,"big":12345678901234567890123,"ts":"2026-11-01T10:00:00Z"}'];
    for (let i = 2; i <= 25_000; i++) lines.push(`{"id":${i},"big":1,"ts":"2026-11-01T10:00:00Z"}`);
    lines.push('{"id":25001,"big":1,"ts":"2026-11-01T10:00:00Z","late":"only here"}');
    await p.write('data/e.ndjson', `${lines.join('\n')}\n`);
    const r = await p.runOk();
    assert.equal(r.stats.streams['src.events']?.rows, 25_001);
    const [first] = await p.rows(`select payload->>'big' as big, payload->>'ts' as ts from raw.events where seq = 1`);
    assert.deepEqual(first, { big: '12345678901234567890123', ts: '2026-11-01T10:00:00Z' });
    assert.equal(await p.num(`select count(late) from bronze.events`), 1);
  });
});
