/**
 * The MySQL source against a throwaway MariaDB: full extracts in primary-key chunks, every
 * supported type landing exactly, incremental reads with cursor ties and late commits, and
 * config mistakes that name what the database has.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execMariadb, type MariadbServer, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { projectWithSources, TestProject } from './support/project.js';
import { sleep } from './support/service.js';

describe('mysql source', mariadbTestOptions(), () => {
  let server: MariadbServer | undefined;
  const projects: TestProject[] = [];

  before(async () => {
    server = await startMariadb();
  });

  after(async () => {
    for (const p of projects) await p.dispose();
    await server?.stop();
  });

  const url = () => (server as MariadbServer).url;

  const exec = (...statements: string[]) => execMariadb(url(), ...statements);

  const mysqlSource = (source: Record<string, unknown>) => ({
    db: { type: 'mysql', connection: { url: url() }, ...source },
  });

  const project = async (source: Record<string, unknown>) => {
    const p = await TestProject.withSources(mysqlSource(source));
    projects.push(p);
    return p;
  };

  it('reads a table in primary-key chunks from one snapshot, every row once', async () => {
    await exec(
      'CREATE TABLE big (id INT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, name VARCHAR(40))',
      // Inserted out of key order, so chunk order comes from ORDER BY, not from insertion.
      "INSERT INTO big SELECT seq, ROUND(seq * 1.37 - 5000, 2), CONCAT('name ', seq) FROM seq_5001_to_10050",
      "INSERT INTO big SELECT seq, ROUND(seq * 1.37 - 5000, 2), IF(seq % 10 = 0, NULL, CONCAT('name \"', seq, '\", x')) FROM seq_1_to_5000",
    );
    const [expected] = await exec(
      'SELECT COUNT(*) AS n, CAST(SUM(id) AS CHAR) AS ids, CAST(SUM(amount) AS CHAR) AS amounts, SUM(name IS NULL) AS nulls FROM big',
    );
    const p = await project({
      tables: ['big'],
      extract: { chunk_rows: 1000 },
      queries: { small: { sql: 'SELECT id, amount FROM big WHERE id <= 100' } },
    });
    const r = await p.runOk();
    assert.equal(r.stats.streams['db.big']?.files, 11, '10,050 rows in chunks of 1,000');
    assert.equal(r.stats.streams['db.big']?.rows, 10_050);
    assert.equal(r.stats.streams['db.big']?.quarantined, 0);
    const [lake] = await p.rows(
      'select count(*)::VARCHAR as n, count(distinct id)::VARCHAR as d, sum(id)::VARCHAR as ids, sum(amount)::VARCHAR as amounts, count(*) filter (where name is null)::VARCHAR as nulls from bronze.big',
    );
    assert.deepEqual(lake, {
      n: String(expected?.['n']),
      d: '10050',
      ids: expected?.['ids'],
      amounts: expected?.['amounts'],
      nulls: String(expected?.['nulls']),
    });
    assert.deepEqual(await p.rows('select name from bronze.big where id in (7, 7001) order by id'), [
      { name: 'name "7", x' },
      { name: 'name 7001' },
    ]);
    assert.equal(await p.count('bronze.small'), 100);
    assert.equal(await p.num('select sum(id) from bronze.small'), 5050);

    // A second full run replaces, never appends.
    await exec('DELETE FROM big WHERE id > 10000');
    await p.runOk();
    assert.equal(await p.count('bronze.big'), 10_000);
  });

  it('lands every supported type exactly', async () => {
    await exec(
      `CREATE TABLE types (
        id INT PRIMARY KEY,
        b TINYINT(1), ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
        i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
        d DECIMAL(12,2), d38 DECIMAL(38,10), d65 DECIMAL(65,30), f FLOAT, dbl DOUBLE,
        c CHAR(5), vc VARCHAR(200), t TEXT, e ENUM('a','b','c'), st SET('x','y','z'), j JSON,
        dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3), yr YEAR,
        bin BINARY(4), vb VARBINARY(10), bl BLOB, bt BIT(10), u UUID, g POINT
      )`,
      "SET SESSION sql_mode = ''",
      `INSERT INTO types VALUES
        (1, 1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
         1234567890.12, -1234567890123456789012345678.0123456789, -12345678901234567890123456789012345.123456789012345678901234567891,
         1.1, 0.1e0 + 0.2e0,
         'ab', 'he said "hi", then\nleft; ''quoted''\r\nÜnïcödé ☃ 😀', 'a,b', 'b', 'x,z', '{"a": [1, 2.50, "x"], "b": null}',
         '2024-02-29', '2024-02-29 23:59:59.123456', '2024-01-02 03:04:05.654321', '838:59:59.500', 2155,
         X'00FF0102', X'00FF', X'00FF222C0A5C', b'1010101010', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', POINT(1, 2)),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, 0, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
         -0.01, 0.0000000001, 0.000000000000000000000000000001, -3.4028235e38, -1e300,
         '', '', '', 'a', '', '[]',
         '0000-00-00', '0000-00-00 00:00:00', '1970-01-01 00:00:01', '-01:00:00', 1901,
         X'00000000', X'', X'', b'0', '00000000-0000-0000-0000-000000000000', POINT(-0.5, 1e10)),
        (4, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         ' ', ' x ', '"', 'c', 'x,y,z', '"\\\\u00fc"',
         '2020-00-00', '2020-01-00 10:00:00', NULL, '00:00:00', 2000,
         NULL, X'FF', X'FF', b'1111111111', NULL, NULL)`,
    );
    const p = await project({ tables: ['types'] });
    const r = await p.runOk();
    assert.equal(r.stats.streams['db.types']?.quarantined, 0);
    const described = await p.rows('describe bronze.types');
    assert.deepEqual(
      Object.fromEntries(
        described
          .filter((c) => !String(c['column_name']).startsWith('_dip_'))
          .map((c) => [c['column_name'], c['column_type']]),
      ),
      {
        id: 'INTEGER',
        b: 'BOOLEAN',
        ti: 'TINYINT',
        tiu: 'SMALLINT',
        si: 'SMALLINT',
        siu: 'INTEGER',
        mi: 'INTEGER',
        miu: 'INTEGER',
        i: 'INTEGER',
        iu: 'BIGINT',
        bi: 'BIGINT',
        biu: 'UBIGINT',
        d: 'DECIMAL(12,2)',
        d38: 'DECIMAL(38,10)',
        d65: 'VARCHAR',
        f: 'FLOAT',
        dbl: 'DOUBLE',
        c: 'VARCHAR',
        vc: 'VARCHAR',
        t: 'VARCHAR',
        e: 'VARCHAR',
        st: 'VARCHAR',
        j: 'JSON',
        dt: 'DATE',
        dtm: 'TIMESTAMP',
        ts: 'TIMESTAMP WITH TIME ZONE',
        tm: 'VARCHAR',
        yr: 'SMALLINT',
        bin: 'BLOB',
        vb: 'BLOB',
        bl: 'BLOB',
        bt: 'UBIGINT',
        u: 'UUID',
        g: 'VARCHAR',
      },
    );
    const rows = await p.rows(`
      select id, b::VARCHAR b, ti::VARCHAR ti, tiu::VARCHAR tiu, si::VARCHAR si, siu::VARCHAR siu, mi::VARCHAR mi, miu::VARCHAR miu,
        i::VARCHAR i, iu::VARCHAR iu, bi::VARCHAR bi, biu::VARCHAR biu, d::VARCHAR d, d38::VARCHAR d38, d65,
        f::VARCHAR f, (f = -3.4028235e38::FLOAT) f_min, dbl::VARCHAR dbl, c, vc, t, e, st, j::VARCHAR j,
        dt::VARCHAR dt, dtm::VARCHAR dtm, (ts AT TIME ZONE 'UTC')::VARCHAR ts, tm, yr::VARCHAR yr,
        hex(bin) bin, hex(vb) vb, hex(bl) bl, octet_length(bl)::VARCHAR bl_len, bt::VARCHAR bt, u::VARCHAR u, g
      from bronze.types order by id`);
    const nulls = Object.fromEntries(
      Object.keys(rows[0] ?? {})
        .filter((k) => k !== 'id' && k !== 'f_min')
        .map((k) => [k, null]),
    );
    assert.deepEqual(rows[0], {
      id: 1,
      b: 'true',
      ti: '127',
      tiu: '255',
      si: '32767',
      siu: '65535',
      mi: '8388607',
      miu: '16777215',
      i: '2147483647',
      iu: '4294967295',
      bi: '9223372036854775807',
      biu: '18446744073709551615',
      d: '1234567890.12',
      d38: '-1234567890123456789012345678.0123456789',
      d65: '-12345678901234567890123456789012345.123456789012345678901234567891',
      f: '1.1',
      f_min: false,
      dbl: '0.30000000000000004',
      c: 'ab',
      vc: 'he said "hi", then\nleft; \'quoted\'\r\nÜnïcödé ☃ 😀',
      t: 'a,b',
      e: 'b',
      st: 'x,z',
      j: '{"a": [1, 2.50, "x"], "b": null}',
      dt: '2024-02-29',
      dtm: '2024-02-29 23:59:59.123456',
      ts: '2024-01-02 03:04:05.654321',
      tm: '838:59:59.500',
      yr: '2155',
      bin: '00FF0102',
      vb: '00FF',
      bl: '00FF222C0A5C',
      bl_len: '6',
      bt: '682',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      g: 'POINT(1 2)',
    });
    assert.deepEqual(rows[1], { id: 2, ...nulls, f_min: null });
    assert.deepEqual(rows[2], {
      id: 3,
      b: 'false',
      ti: '-128',
      tiu: '0',
      si: '-32768',
      siu: '0',
      mi: '-8388608',
      miu: '0',
      i: '-2147483648',
      iu: '0',
      bi: '-9223372036854775808',
      biu: '0',
      d: '-0.01',
      d38: '0.0000000001',
      d65: '0.000000000000000000000000000001',
      f: '-3.4028235e+38',
      f_min: true,
      dbl: '-1e+300',
      c: '',
      vc: '',
      t: '',
      e: 'a',
      st: '',
      j: '[]',
      // Zero dates have no DuckDB value: NULL, not a rejected row.
      dt: null,
      dtm: null,
      ts: '1970-01-01 00:00:01',
      tm: '-01:00:00.000',
      yr: '1901',
      bin: '00000000',
      vb: '',
      bl: '',
      bl_len: '0',
      bt: '0',
      u: '00000000-0000-0000-0000-000000000000',
      g: 'POINT(-0.5 10000000000)',
    });
    assert.deepEqual(
      {
        b: rows[3]?.['b'],
        c: rows[3]?.['c'],
        vc: rows[3]?.['vc'],
        t: rows[3]?.['t'],
        st: rows[3]?.['st'],
        j: rows[3]?.['j'],
        dt: rows[3]?.['dt'],
        dtm: rows[3]?.['dtm'],
        bt: rows[3]?.['bt'],
        bl: rows[3]?.['bl'],
      },
      // tinyint(1) is BOOLEAN: any non-zero value is true, as in MySQL conditions.
      // CHAR drops trailing spaces (MySQL's own reading of CHAR); VARCHAR keeps them.
      { b: 'true', c: '', vc: ' x ', t: '"', st: 'x,y,z', j: '"\\u00fc"', dt: null, dtm: null, bt: '1023', bl: 'FF' },
    );
  });

  it('reads incrementally: cursor ties across chunks, late commits within lag, nothing missed or doubled', async () => {
    await exec(
      'CREATE TABLE events (id INT PRIMARY KEY, v INT NOT NULL, updated_at DATETIME(6) NOT NULL, KEY by_cursor (updated_at, id))',
      // 40 rows share one cursor value across chunks of 7; distinct older ones; another tie group.
      "INSERT INTO events SELECT seq, 0, '2024-01-01 10:00:00' FROM seq_1_to_40",
      "INSERT INTO events SELECT seq, 0, TIMESTAMP'2024-01-01 09:00:00' + INTERVAL seq MINUTE FROM seq_41_to_50",
      "INSERT INTO events SELECT seq, 0, '2024-01-02 00:00:00.000001' FROM seq_51_to_65",
      // Inside the lag window: left for the next run.
      'INSERT INTO events VALUES (66, 0, UTC_TIMESTAMP(6))',
      'CREATE TABLE audit (id INT PRIMARY KEY, version INT NOT NULL, updated_at DATETIME(6) NOT NULL)',
      "INSERT INTO audit SELECT seq, 1, '2024-03-01 00:00:00' FROM seq_1_to_30",
    );
    const source = {
      tables: [
        { name: 'events', mode: 'incremental', cursor: 'updated_at', lag: '3s', chunk_rows: 7 },
        { name: 'audit', mode: 'incremental', cursor: 'updated_at', write_disposition: 'append', chunk_rows: 7 },
      ],
      queries: {
        events_q: {
          sql: 'SELECT id, v, updated_at FROM events',
          mode: 'incremental',
          cursor: 'updated_at',
          primary_key: ['id'],
          lag: '3s',
          chunk_rows: 7,
        },
      },
    };
    const p = await project(source);
    const ids = async (table: string) =>
      (await p.rows(`select id from bronze.${table} order by id`)).map((r) => Number(r['id']));
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

    const first = await p.runOk();
    assert.deepEqual(await ids('events'), range(1, 65), 'row 66 is younger than the lag');
    assert.deepEqual(await ids('events_q'), range(1, 65), 'a query stream pages the same way');
    assert.ok(
      (first.stats.streams['db.events']?.files ?? 0) >= 9,
      `events read in chunks of about 7 rows (${first.stats.streams['db.events']?.files} units)`,
    );
    assert.deepEqual(await ids('audit'), range(1, 30));
    assert.equal(first.stats.streams['db.audit']?.files, 5, '30 tied rows in chunks of 7, split by the key');

    await exec(
      'SET @t = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND',
      // A transaction that commits late, with a cursor value older than row 66's.
      'INSERT INTO events VALUES (67, 0, @t)',
      'INSERT INTO events SELECT seq, 0, @t FROM seq_68_to_80',
      'UPDATE events SET v = 1, updated_at = @t WHERE id IN (5, 45, 60)',
      // Ties with the last position read, after it in key order; and an update.
      "INSERT INTO audit SELECT seq, 1, '2024-03-01 00:00:00' FROM seq_31_to_45",
      "UPDATE audit SET version = 2, updated_at = '2024-03-02 00:00:00' WHERE id = 3",
      "INSERT INTO audit SELECT seq, 1, '2024-03-02 00:00:00' FROM seq_46_to_50",
    );
    await sleep(3_200);
    const second = await p.runOk();
    assert.equal(second.stats.streams['db.events']?.rows, 18, 'rows 66-80 and the 3 updated ones');
    assert.deepEqual(await ids('events'), range(1, 80));
    assert.deepEqual(await ids('events_q'), range(1, 80));
    assert.deepEqual(await p.rows('select id, v from bronze.events where v <> 0 order by id'), [
      { id: 5, v: 1 },
      { id: 45, v: 1 },
      { id: 60, v: 1 },
    ]);
    const versions = async () =>
      (await p.rows("select concat(id, ':', version) as k from bronze.audit order by id, version")).map((r) =>
        String(r['k']),
      );
    const expected = [...range(1, 50).map((i) => `${i}:1`), '3:2'].sort(
      (a, b) => Number(a.split(':')[0]) - Number(b.split(':')[0]) || a.localeCompare(b),
    );
    assert.deepEqual(await versions(), expected, 'append keeps each version exactly once');

    const third = await p.runOk();
    assert.deepEqual([third.stats.streams['db.events']?.rows, third.stats.streams['db.audit']?.rows], [0, 0]);
    assert.equal(await p.count('bronze.events'), 80);
    assert.deepEqual(await versions(), expected);

    // A different cursor makes the saved position meaningless: the stream says so.
    await p.write(
      'dip.yaml',
      `${JSON.stringify(projectWithSources(mysqlSource({ tables: [{ ...source.tables[0], cursor: 'id', lag: undefined }] })), null, 2)}\n`,
    );
    await p.reopen();
    const changed = await p.run();
    assert.equal(changed.status, 'failed');
    assert.match(changed.errors[0]?.message ?? '', /cursor changed from updated_at to id/);
  });

  it('explains config mistakes with what the database has, and selects tables by pattern', async () => {
    await exec(
      'CREATE TABLE orders (id INT PRIMARY KEY)',
      'CREATE TABLE order_items (id INT PRIMARY KEY, order_id INT NOT NULL)',
      'CREATE TABLE order_lines (order_id INT NOT NULL, line INT NOT NULL, note VARCHAR(20), PRIMARY KEY (order_id, line))',
      'CREATE VIEW order_totals AS SELECT order_id, COUNT(*) AS n FROM order_lines GROUP BY order_id',
      'INSERT INTO orders SELECT seq FROM seq_1_to_5',
      'INSERT INTO order_items SELECT seq, seq % 5 + 1 FROM seq_1_to_12',
      "INSERT INTO order_lines SELECT seq DIV 4 + 1, seq % 4, CONCAT('l', seq) FROM seq_0_to_22",
    );
    // A missing table fails its own stream (issue 21: a dropped table must not stop the others).
    const unknownTable = await project({ tables: ['order', 'orders'] });
    const unknown = await unknownTable.run();
    assert.equal(unknown.status, 'failed');
    assert.deepEqual(
      unknown.errors.map((e) => [e.stream, e.exitCode]),
      [['db.order', 2]],
    );
    for (const err of unknown.errors) {
      assert.match(err.message, /db\.tables\[0\]: no table or view dip\.order in the database/);
      assert.match(err.message, /\(in dip: .*order_items, order_lines, order_totals, orders/);
    }
    assert.equal(unknown.stats.streams['db.orders']?.rows, 5);

    const unknownColumn = await project({
      tables: [{ name: 'order_lines', mode: 'incremental', cursor: 'updated_at' }],
    });
    await assert.rejects(
      unknownColumn.run(),
      /db\.tables\[0\]\.cursor: no column "updated_at" \(columns: order_id, line, note\)/,
    );

    const refused = await TestProject.withSources({
      db: { type: 'mysql', connection: { url: 'mysql://root:hunter2@127.0.0.1:1/dip' }, tables: ['orders'] },
    });
    projects.push(refused);
    await assert.rejects(refused.run(), (err: Error) => {
      assert.match(err.message, /^db: cannot connect to MySQL at 127\.0\.0\.1:1: /);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });

    const pattern = await project({
      tables: [{ pattern: 'order_*', exclude: ['*_totals'] }],
      extract: { chunk_rows: 5 },
    });
    const r = await pattern.runOk();
    assert.deepEqual(Object.keys(r.stats.streams).sort(), ['db.order_items', 'db.order_lines']);
    assert.equal(await pattern.count('bronze.order_items'), 12);
    assert.equal(await pattern.count('bronze.order_lines'), 23);
    assert.equal(r.stats.streams['db.order_lines']?.files, 5, 'a composite primary key pages too');
    assert.equal(await pattern.num("select count(distinct concat(order_id, '/', line)) from bronze.order_lines"), 23);

    const view = await project({ tables: ['order_totals'] });
    await view.runOk();
    assert.equal(await view.num('select sum(n) from bronze.order_totals'), 23);
  });
});
