/**
 * Change data capture from the MySQL/MariaDB binlog against a throwaway MariaDB (row binlog):
 * a snapshot at an exact binlog position, then inserts, updates (key changes, decimal,
 * datetime(6), blob and json values), deletes, TRUNCATE, multi-table transactions; every
 * value reading the same from the snapshot and from the binlog; a follower interrupted and
 * resumed without duplicates or loss; purged binlogs and server settings explained.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunEvent } from '../src/pipeline/events.js';
import { execMariadb, type MariadbServer, mariadbTestOptions, startMariadb, withMariadb } from './support/mariadb.js';
import { TestProject } from './support/project.js';
import { sleep, waitUntil } from './support/service.js';

// TIMESTAMP values must come out in UTC whatever the process's zone (the binlog library
// formats them in local time).
process.env.TZ = 'America/New_York';

type Row = (string | null)[];

describe('mysql cdc', mariadbTestOptions(), () => {
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

  const project = async (source: Record<string, unknown>, connection: Record<string, unknown> = { url: url() }) => {
    const p = await TestProject.withSources({ db: { type: 'mysql', connection, mode: 'cdc', ...source } });
    projects.push(p);
    return p;
  };

  const texts = (rows: Record<string, unknown>[]): Row[] =>
    rows.map((r) => Object.values(r).map((v) => (v === null || v === undefined ? null : String(v))));

  const opCounts = async (p: TestProject, table: string) =>
    Object.fromEntries(
      (
        await p.rows(`SELECT _cdc_op AS op, count(*)::INTEGER AS n FROM bronze.${table}_changes GROUP BY 1 ORDER BY 1`)
      ).map((r) => [r['op'], r['n']]),
    );

  describe('accounts and audit', () => {
    // Every column as exact text, in the source and in the lake (zero dates have no lake value: NULL).
    const SOURCE = `SELECT CAST(id AS CHAR), owner, CAST(balance AS CHAR), CAST(big AS CHAR), NULLIF(DATE_FORMAT(opened, '%Y-%m-%d %H:%i:%s.%f'), '0000-00-00 00:00:00.000000'),
        NULLIF(CAST(CAST(UNIX_TIMESTAMP(seen) * 1000000 AS SIGNED) AS CHAR), '0'), HEX(note), CAST(doc AS CHAR), IF(flag IS NULL, NULL, IF(flag <> 0, 'true', 'false')),
        CAST(CAST(code AS UNSIGNED) AS CHAR), kind, CAST(amount AS CHAR), NULLIF(CAST(born AS CHAR), '0000-00-00')
      FROM accounts ORDER BY id`;
    const LAKE = `SELECT id::VARCHAR, owner, balance::VARCHAR, big, strftime(opened, '%Y-%m-%d %H:%M:%S.%f'), epoch_us(seen)::VARCHAR, hex(note), doc::VARCHAR,
        flag::VARCHAR, code::VARCHAR, kind, amount::VARCHAR, born::VARCHAR
      FROM bronze.accounts ORDER BY id`;
    const assertSame = async (p: TestProject, what: string) => {
      const source = texts(await exec(SOURCE));
      const lake = texts(await p.rows(LAKE));
      assert.equal(lake.length, source.length, `${what}: row count`);
      assert.deepEqual(lake, source, what);
      const audit = texts(await exec('SELECT CAST(seq AS CHAR), what FROM audit ORDER BY seq'));
      assert.deepEqual(
        texts(await p.rows('SELECT seq::VARCHAR, what FROM bronze.audit ORDER BY seq')),
        audit,
        `${what}: audit`,
      );
    };

    let p: TestProject;

    it('snapshots 1,000 rows at an exact binlog position', async () => {
      await exec(
        `CREATE TABLE accounts (
          id INT PRIMARY KEY, owner VARCHAR(40), balance DECIMAL(14,4), big DECIMAL(50,20), opened DATETIME(6), seen TIMESTAMP(6) NULL,
          note BLOB, doc JSON, flag TINYINT(1), code BIT(10), kind ENUM('a','b''s','c,d'), amount BIGINT UNSIGNED, born DATE)`,
        'CREATE TABLE audit (seq BIGINT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))',
        `INSERT INTO accounts SELECT seq, CONCAT('owner ', seq), seq * 1.2345 - 600, CONCAT(seq * 1000000000000, '.', LPAD(seq, 20, '0')),
          TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND, TIMESTAMP '2024-03-10 06:59:00' + INTERVAL seq SECOND + INTERVAL seq * 7 MICROSECOND,
          UNHEX(LPAD(HEX(seq), 6, '0')), JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('x', seq % 3)), seq % 2, seq % 1024, ELT(1 + seq % 3, 'a', 'b''s', 'c,d'),
          18446744073709551615 - seq, DATE '2000-01-01' + INTERVAL seq DAY
        FROM seq_1_to_1000`,
      );
      // idle_timeout is long: a run without --follow ends when it reaches the binlog's end as of its start.
      p = await project({
        tables: ['accounts', 'audit'],
        cdc: { flush_interval: '100ms', idle_timeout: '60s', batch_records: 50 },
      });
      const started = Date.now();
      const first = await p.runOk();
      assert.ok(Date.now() - started < 30_000, 'the run stopped at the end of the binlog, not on idle_timeout');
      assert.equal(first.stats.streams['db.accounts']?.rows, 1000);
      assert.equal(first.stats.streams['db.audit']?.rows, 0);
      assert.deepEqual(await opCounts(p, 'accounts'), { r: 1000 });
      await assertSame(p, 'after the snapshot');
      const types = Object.fromEntries(
        (await p.rows('SELECT column_name, column_type FROM (DESCRIBE bronze.accounts)')).map((r) => [
          r['column_name'],
          r['column_type'],
        ]),
      );
      assert.deepEqual(
        [
          types['balance'],
          types['big'],
          types['opened'],
          types['seen'],
          types['note'],
          types['doc'],
          types['flag'],
          types['code'],
          types['amount'],
        ],
        [
          'DECIMAL(14,4)',
          'VARCHAR',
          'TIMESTAMP',
          'TIMESTAMP WITH TIME ZONE',
          'BLOB',
          'JSON',
          'BOOLEAN',
          'UBIGINT',
          'UBIGINT',
        ],
      );
      const lake = await p.lake();
      const state = (await lake.catalog.getState('p', 'db', 'accounts')) as {
        binlog: string;
        position: number;
        lsn: string;
        snapshot_at: string;
      };
      assert.match(state.binlog, /^binlog\.\d{6}$/);
      assert.equal(BigInt(state.lsn), (BigInt(Number(state.binlog.slice(-6))) << 32n) | BigInt(state.position));
      assert.equal(state.snapshot_at, `${state.binlog}:${state.position}`);
    });

    it('streams inserts, updates (key, decimal, datetime(6), blob, json), deletes and multi-table transactions', async () => {
      await exec(
        `INSERT INTO accounts VALUES (1001, 'new', 1.5, 0.00000000000000000001, '2024-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', x'00ff10', '{"a": [1, 2]}', 1, b'1111111111', 'b''s', 18446744073709551615, '1000-01-01'),
          (1002, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (1003, 'ünï "q", x', -99999.9999, -123456789012345678901234567890.12345678901234567890, '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000001', x'', '[]', 0, b'0', 'c,d', 0, '9999-12-31')`,
        `UPDATE accounts SET balance = balance + 0.0001, big = -big, opened = opened + INTERVAL 1 MICROSECOND, note = CONCAT(note, x'00'), doc = JSON_SET(doc, '$.n', 'changed') WHERE id <= 10`,
        'UPDATE accounts SET id = 5000 WHERE id = 20',
        'DELETE FROM accounts WHERE id BETWEEN 30 AND 39',
        // Zero dates (lax sql_mode) have no lake value: NULL, from the binlog as from the snapshot.
        "SET SESSION sql_mode = ''",
        "INSERT INTO accounts (id, opened, seen, born) VALUES (1004, '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00')",
        'START TRANSACTION',
        "UPDATE accounts SET owner = 'in a transaction' WHERE id = 50",
        "INSERT INTO audit (what) VALUES ('tx 1'), ('tx 2')",
        'COMMIT',
      );
      const r = await p.runOk();
      assert.equal(r.stats.streams['db.audit']?.rows, 2);
      assert.deepEqual(await opCounts(p, 'accounts'), { c: 5, d: 11, r: 1000, u: 11 });
      assert.deepEqual(await opCounts(p, 'audit'), { c: 2 });
      await assertSame(p, 'after inserts, updates and deletes');
      assert.deepEqual(
        texts(
          await p.rows(`SELECT opened::VARCHAR, seen::VARCHAR, born::VARCHAR FROM bronze.accounts WHERE id = 1004`),
        ),
        [[null, null, null]],
      );
      // The key change is a delete of the old key and a create of the new one, in one transaction.
      const moved = await p.rows(
        `SELECT _cdc_op AS op, id, _cdc_lsn::VARCHAR AS lsn, _cdc_before IS NOT NULL AS has_before FROM bronze.accounts_changes WHERE id IN (20, 5000) AND _cdc_op <> 'r' ORDER BY _cdc_seq`,
      );
      assert.deepEqual(
        moved.map((m) => [m['op'], m['id'], m['has_before']]),
        [
          ['d', 20, true],
          ['c', 5000, false],
        ],
      );
      assert.equal(moved[0]?.['lsn'], moved[1]?.['lsn']);
      // The transaction touching both tables commits at one position in both change logs.
      const [tx] = await p.rows(
        `SELECT (SELECT _cdc_lsn FROM bronze.accounts_changes WHERE id = 50 AND _cdc_op = 'u')::VARCHAR AS a, (SELECT min(_cdc_lsn) FROM bronze.audit_changes)::VARCHAR AS b, (SELECT max(_cdc_lsn) FROM bronze.audit_changes)::VARCHAR AS c`,
      );
      assert.ok(tx?.['a'] && tx['a'] === tx['b'] && tx['b'] === tx['c'], JSON.stringify(tx));
      // An update's before image travels with it.
      const [upd] = await p.rows(
        `SELECT _cdc_before->>'$.balance' AS before, balance::VARCHAR AS after FROM bronze.accounts_changes WHERE id = 1 AND _cdc_op = 'u'`,
      );
      assert.deepEqual(upd, { before: '-598.7655', after: '-598.7654' });
      // The state names the commit position of the last transaction in the lake.
      const state = (await (await p.lake()).catalog.getState('p', 'db', 'audit')) as { lsn: string };
      assert.equal(state.lsn, tx?.['b']);

      // Nothing new: a run reads to the end of the binlog and commits nothing.
      const idle = await p.runOk();
      assert.equal(idle.stats.streams['db.accounts']?.rows, 0);
      assert.deepEqual(await opCounts(p, 'accounts'), { c: 5, d: 11, r: 1000, u: 11 });
    });

    it('empties the current table on TRUNCATE, then keeps the rows inserted after it', async () => {
      await exec(
        'TRUNCATE TABLE accounts',
        "INSERT INTO accounts (id, owner, balance) VALUES (7, 'after truncate', 7), (8, 'eight', 8.5)",
        'UPDATE accounts SET balance = 9 WHERE id = 8',
      );
      await p.runOk();
      await assertSame(p, 'after truncate');
      assert.equal(await p.count('bronze.accounts'), 2);
      assert.deepEqual(await opCounts(p, 'accounts'), { c: 7, d: 11, r: 1000, t: 1, u: 12 });
      // A truncate and inserts in separate runs.
      await exec('TRUNCATE accounts');
      await p.runOk();
      assert.equal(await p.count('bronze.accounts'), 0);
      await exec("INSERT INTO accounts (id, owner) VALUES (1, 'one')");
      await p.runOk();
      await assertSame(p, 'after a second truncate');
    });

    it('fails clearly when the saved binlog file was purged, and snapshots again after a state reset', async () => {
      await exec("INSERT INTO accounts (id, owner) VALUES (2, 'two')");
      await p.runOk();
      await exec("INSERT INTO accounts (id, owner) VALUES (3, 'three')", 'FLUSH BINARY LOGS');
      const [current] = await exec('SHOW MASTER STATUS');
      // MariaDB keeps the previous file until its binlog checkpoint has passed: retry the purge.
      await waitUntil(
        async () =>
          (await exec(`PURGE BINARY LOGS TO '${String(current?.['File'])}'`, 'SHOW BINARY LOGS')).length === 1,
        {
          what: 'the older binlog files to be purged',
          timeoutMs: 20_000,
          intervalMs: 200,
        },
      );
      const failed = await p.run();
      assert.equal(failed.status, 'failed');
      assert.match(failed.errors[0]?.message ?? '', /no longer has that binary log file .*dip state p --reset/);
      // What `dip state p --reset` does.
      const lake = await p.lake();
      await lake.catalog.commit({
        runId: 'state-reset',
        operation: 'state',
        tables: [],
        state: ['accounts', 'audit'].map((stream) => ({ pipeline: 'p', source: 'db', stream, value: null })),
        summary: { pipeline: 'p' },
      });
      const again = await p.runOk();
      assert.equal(again.stats.streams['db.accounts']?.rows, 3);
      await assertSame(p, 'after a new snapshot');
    });
  });

  it('reads every type identically from the snapshot and from the binlog', async () => {
    const columns = `d DECIMAL(30,10), d65 DECIMAL(65,30), du DECIMAL(5,0) UNSIGNED, dt DATETIME(6), dt0 DATETIME, dt3 DATETIME(3), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL,
      tm TIME(3), tm0 TIME, tm6 TIME(6), tm1 TIME(1), ch CHAR(5), vc VARCHAR(300), y YEAR, e ENUM('a','it''s','d,e','x\\\\y'), s SET('x','y','z'), bt BIT(12), b1 BIT(1), bl BLOB, tx TEXT, j JSON,
      f FLOAT, dbl DOUBLE, g GEOMETRY, bu BIGINT UNSIGNED, bi BIGINT, bb BINARY(4), vb VARBINARY(10), u UUID, i4 INET4, i6 INET6, bo TINYINT(1), ti TINYINT, tiu TINYINT UNSIGNED,
      mi MEDIUMINT, miu MEDIUMINT UNSIGNED, iu INT UNSIGNED, dd DATE`;
    const names = [...columns.matchAll(/(?:^|,)\s*(\w+) /g)].map((m) => m[1] as string);
    await exec(
      `CREATE TABLE typed (id INT PRIMARY KEY, ${columns})`,
      "SET SESSION sql_mode = ''",
      `INSERT INTO typed VALUES
        (1, -12345678901234567890.0123456789, 1234567890123456789012345678901234.123456789012345678901234567891, 99999, '2024-02-29 23:59:59.123456', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999',
          '2024-02-29 23:59:59.654321', '2038-01-19 03:14:07', '-01:02:03.500', '-838:59:59', '838:59:59.999999', '-00:00:00.1', 'ab', REPEAT('ü', 300), 2024, 'it''s', 'x,z', b'101010101010', b'1',
          x'00ff10', 'héllo\\nwörld "q"', '{"a": [1, 2]}', 3.14159, 2.718281828459045, ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,123456789.123456789 1e-10))'),
          18446744073709551615, -9223372036854775808, x'0102', x'000100', '123e4567-e89b-12d3-a456-426614174000', '1.2.3.4', '::ffff:1.2.3.4', 1, -128, 255, -8388608, 16777215, 4294967295, '2024-02-29'),
        (2, 0.5, -0.000000000000000000000000000001, 0, '0000-00-00 00:00:00', '0000-00-00 00:00:00', NULL, '0000-00-00 00:00:00', NULL, '00:00:00', '-00:00:01', '-00:00:00.000001', '12:00:00.5',
          '', '', 0, '', '', b'0', b'0', x'', '', '[]', -0.0, 1e-300, ST_GeomFromText('POINT(-1.5 1e20)'), 0, 0, x'', x'', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '0.0.0.0', 'fe80::1:0:0:0:1',
          0, 0, 0, 0, 0, 0, '0000-00-00'),
        (3, -1, 0, 1, '2024-01-01 00:00:00.000001', '2024-01-01 00:00:00', '2024-01-01 00:00:00.001', '1970-01-01 00:00:01.000001', '2024-06-01 12:00:00', '-12:00:00.001', '00:00:00', '-00:00:00.5',
          '-01:00:00.0', 'abcde', 'x', 1901, 'x\\\\y', 'x,y,z', b'111111111111', NULL, x'ff', NULL, '{"k": "v"}', 16777217, -1.7976931348623157e308,
          ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))'), 9007199254740993, 9007199254740993, x'ffffffff', x'ff', '6ccd780c-baba-1026-9564-5b8c656024db', '255.255.255.255', '::1',
          5, 127, 1, 8388607, 1, 1, '1000-01-01'),
        (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'zz', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          ST_GeomFromText('MULTIPOINT(1 1,2.5 2)'), NULL, NULL, NULL, NULL, '00000000-0000-1000-8000-000000000000', NULL, '::1.2.3.4', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
          ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))'), NULL, NULL, NULL, NULL, NULL, NULL, '1:2:3:4:5:6:7:8', NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
    );
    const p = await project({ tables: ['typed'], cdc: { flush_interval: '100ms' } });
    await p.runOk();
    // The same values again, now through the binlog: row images of an INSERT … SELECT.
    await exec("SET SESSION sql_mode = ''", `INSERT INTO typed SELECT id + 100, ${names.join(', ')} FROM typed`);
    await p.runOk();
    assert.deepEqual(await opCounts(p, 'typed'), { c: 5, r: 5 });
    const select = names.map((n) => `${n}::VARCHAR AS ${n}`).join(', ');
    const snapshot = await p.rows(`SELECT ${select} FROM bronze.typed WHERE id < 100 ORDER BY id`);
    const streamed = await p.rows(`SELECT ${select} FROM bronze.typed WHERE id > 100 ORDER BY id`);
    assert.equal(streamed.length, 5);
    for (const [i, row] of snapshot.entries()) assert.deepEqual(streamed[i], row, `row ${i + 1}`);
    // …and they are the source's values, exactly.
    const [one] = await p.rows(
      `SELECT d::VARCHAR AS d, d65, dt::VARCHAR AS dt, epoch_us(ts)::VARCHAR AS ts, tm, tm1, e, s, bt::VARCHAR AS bt, hex(bl) AS bl, g, bu::VARCHAR AS bu, u::VARCHAR AS u, i6, y::VARCHAR AS y FROM bronze.typed WHERE id = 101`,
    );
    assert.deepEqual(one, {
      d: '-12345678901234567890.0123456789',
      d65: '1234567890123456789012345678901234.123456789012345678901234567891',
      dt: '2024-02-29 23:59:59.123456',
      ts: '1709251199654321',
      tm: '-01:02:03.500',
      tm1: '-00:00:00.1',
      e: "it's",
      s: 'x,z',
      bt: '2730',
      bl: '00FF10',
      g: 'GEOMETRYCOLLECTION(POINT(1 2),LINESTRING(0 0,123456789.12345679 0.0000000001))',
      bu: '18446744073709551615',
      u: '123e4567-e89b-12d3-a456-426614174000',
      i6: '::ffff:1.2.3.4',
      y: '2024',
    });
    assert.deepEqual(
      texts(await p.rows(`SELECT dt::VARCHAR, ts::VARCHAR, dd::VARCHAR, e FROM bronze.typed WHERE id = 102`)),
      [[null, null, null, '']],
    );
  });

  it('resumes after an interrupted --follow run without duplicates or loss', { timeout: 120_000 }, async () => {
    await exec(
      'CREATE TABLE events (id INT PRIMARY KEY, v INT, note VARCHAR(20))',
      'CREATE TABLE tags (id INT PRIMARY KEY, name VARCHAR(20))',
      "INSERT INTO events SELECT seq, seq, 'start' FROM seq_1_to_200",
    );
    const p = await project({
      tables: ['events', 'tags'],
      cdc: { flush_interval: '100ms', idle_timeout: '60s', batch_records: 7 },
    });
    const committed: number[] = [];
    const controller = new AbortController();
    const onEvent = (e: RunEvent) => {
      if (e.type === 'unit_committed' && e.stream === 'db.events') committed.push(e.rows);
    };
    const following = p.run('p', { follow: true, signal: controller.signal, onEvent });
    following.catch(() => undefined);
    const total = () => committed.reduce((a, b) => a + b, 0);
    await waitUntil(async () => total() >= 200, {
      what: 'the snapshot to be committed',
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    // Changes, each its own transaction, while the follower runs; tags changes only early, so
    // on restart reading resumes from its older position and events skips what it has.
    await exec("INSERT INTO tags VALUES (1, 'one')", 'UPDATE events SET v = 0 WHERE id = 1');
    for (let i = 201; i <= 240; i++) await exec(`INSERT INTO events VALUES (${i}, ${i}, 'followed')`);
    await exec(
      "UPDATE events SET v = -v, note = 'updated' WHERE id <= 20",
      'DELETE FROM events WHERE id BETWEEN 190 AND 199',
    );
    await waitUntil(async () => total() >= 200 + 1 + 40 + 20 + 10, {
      what: 'the changes to be committed',
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    // More changes arrive while it is stopped mid-stream.
    await exec('INSERT INTO events VALUES (241, 241, NULL)');
    await sleep(30);
    controller.abort(new Error('interrupted by the test'));
    await assert.rejects(following);
    const saved = async (stream: string) =>
      BigInt(((await (await p.lake()).catalog.getState('p', 'db', stream)) as { lsn: string }).lsn);
    assert.ok((await saved('tags')) < (await saved('events')), 'tags stopped at an older position than events');
    await exec(
      "INSERT INTO events SELECT seq, seq, 'later' FROM seq_242_to_260",
      "UPDATE events SET note = 'later' WHERE id BETWEEN 100 AND 110",
      'UPDATE events SET id = id + 1000 WHERE id = 150',
      'DELETE FROM events WHERE id = 5',
      "INSERT INTO tags VALUES (2, 'two')",
    );
    await p.reopen();
    await p.runOk();
    const duplicates = await p.num(
      `SELECT count(*) FROM (SELECT id, _cdc_op, _cdc_lsn FROM bronze.events_changes GROUP BY ALL HAVING count(*) > 1)`,
    );
    assert.equal(duplicates, 0, 'no change event twice');
    assert.deepEqual(await opCounts(p, 'events'), { c: 41 + 19 + 1, d: 10 + 1 + 1, r: 200, u: 1 + 20 + 11 });
    assert.deepEqual(await opCounts(p, 'tags'), { c: 2 });
    const source = texts(await exec('SELECT CAST(id AS CHAR), CAST(v AS CHAR), note FROM events ORDER BY id'));
    assert.deepEqual(
      texts(await p.rows('SELECT id::VARCHAR, v::VARCHAR, note FROM bronze.events ORDER BY id')),
      source,
    );
    assert.deepEqual(texts(await p.rows('SELECT id::VARCHAR, name FROM bronze.tags ORDER BY id')), [
      ['1', 'one'],
      ['2', 'two'],
    ]);
    // A run that finds nothing new for a table still moves its position to the end of what it read.
    await exec("INSERT INTO events VALUES (999, 999, 'last')");
    await p.runOk();
    assert.equal(await saved('tags'), await saved('events'));
  });

  it('keeps a transaction larger than its memory buffer whole', async () => {
    await exec('CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(20))');
    const p = await project({ tables: ['bulk'], cdc: { batch_records: 1000 } });
    await p.runOk();
    await exec(
      "INSERT INTO bulk SELECT seq, CONCAT('v', seq) FROM seq_1_to_25000",
      'UPDATE bulk SET v = NULL WHERE id % 1000 = 0',
    );
    const r = await p.runOk();
    assert.equal(r.stats.streams['db.bulk']?.rows, 25_025);
    const [stats] = await p.rows(
      `SELECT count(DISTINCT _cdc_lsn)::INTEGER AS positions, count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS ids FROM bronze.bulk_changes`,
    );
    assert.deepEqual(stats, { positions: 2, n: 25_025, ids: 25_000 });
    assert.equal(await p.num('SELECT count(*) FROM bronze.bulk WHERE v IS NULL'), 25);
    assert.equal(await p.count('bronze.bulk'), 25_000);
  });

  it('stops on changes the binlog cannot tell exactly, and says how to recover', async () => {
    const broken = async (table: string, ...statements: string[]) => {
      await exec(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT)`, `INSERT INTO ${table} VALUES (1, 1)`);
      const p = await project({ tables: [table] });
      await p.runOk();
      if (table === 'altered') {
        // A state from before streams kept their table's shape: an ALTER under unread changes
        // cannot be read past (test/cdc-ddl-mysql.test.ts reads past it with the shape).
        const { shape: _shape, ...old } = (await (await p.lake()).catalog.getState('p', 'db', table)) as Record<
          string,
          unknown
        >;
        await (await p.lake()).catalog.commit({
          runId: 'old-state',
          operation: 'state',
          tables: [],
          state: [{ pipeline: 'p', source: 'db', stream: table, value: old }],
          summary: { pipeline: 'p' },
        });
      }
      await exec(...statements);
      const r = await p.run();
      assert.equal(r.status, 'failed');
      return r.errors.map((e) => e.message).join('\n');
    };
    assert.match(
      await broken('minimal', "SET SESSION binlog_row_image = 'MINIMAL'", 'UPDATE minimal SET v = 2'),
      /logged without every column .*binlog_row_image = MINIMAL.*dip state p --reset/,
    );
    assert.match(
      await broken('statement', "SET SESSION binlog_format = 'STATEMENT'", 'INSERT INTO statement VALUES (2, 2)'),
      /changed by a statement logged as SQL text.*binlog_format = STATEMENT/,
    );
    assert.match(
      await broken('altered', 'UPDATE altered SET v = 3', 'ALTER TABLE altered ADD COLUMN w INT'),
      /row images of dip\.altered in the binlog have 2 columns, the table has 3 now: its structure changed/,
    );
  });

  it('explains what the server or the user lacks', async () => {
    await exec('CREATE TABLE small (id INT PRIMARY KEY)', 'INSERT INTO small VALUES (1)');
    const failure = async (p: TestProject) => {
      const r = await p.run();
      assert.equal(r.status, 'failed');
      return r.errors.map((e) => e.message).join('\n');
    };
    await exec("SET GLOBAL binlog_format = 'STATEMENT'");
    try {
      assert.match(
        await failure(await project({ tables: ['small'] })),
        /binlog_format is STATEMENT\. Set binlog_format = ROW/,
      );
    } finally {
      await exec("SET GLOBAL binlog_format = 'ROW'");
    }
    await exec("SET GLOBAL binlog_row_image = 'MINIMAL'");
    try {
      assert.match(
        await failure(await project({ tables: ['small'] })),
        /binlog_row_image is MINIMAL\. Set binlog_row_image = FULL/,
      );
    } finally {
      await exec("SET GLOBAL binlog_row_image = 'FULL'");
    }
    const port = (server as MariadbServer).port;
    const as = (user: string) => ({ host: '127.0.0.1', port, user, password: 'pw', database: 'dip' });
    await exec("CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON dip.* TO 'reader'@'%'");
    assert.match(
      await failure(await project({ tables: ['small'] }, as('reader'))),
      /SHOW BINARY LOGS was refused: change data capture needs the REPLICATION CLIENT and REPLICATION SLAVE privileges/,
    );
    await exec(
      "CREATE USER 'monitor'@'%' IDENTIFIED BY 'pw'",
      "GRANT SELECT ON dip.* TO 'monitor'@'%'",
      "GRANT BINLOG MONITOR ON *.* TO 'monitor'@'%'",
    );
    assert.match(
      await failure(await project({ tables: ['small'] }, as('monitor'))),
      /refused to stream its binary log: change data capture needs the REPLICATION SLAVE/,
    );

    const off = await startMariadb({ settings: { 'skip-log-bin': 1 } });
    try {
      await withMariadb(off.url, (conn) => conn.query('CREATE TABLE small (id INT PRIMARY KEY)'));
      const p = await project({ tables: ['small'] }, { url: off.url });
      assert.match(
        await failure(p),
        /binary logging is off on this server \(log_bin = OFF\)\. Enable log_bin .*binlog_format = ROW and binlog_row_image = FULL/,
      );
    } finally {
      await off.stop();
    }
  });
});
