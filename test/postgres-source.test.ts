/**
 * The PostgreSQL source against a throwaway server: full extracts (parallel ctid ranges from
 * one snapshot), type mapping with exact values, incremental reads with ties and late
 * commits, and change data capture (snapshot, inserts, updates, key changes, deletes, truncate).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { spawnSync } from 'node:child_process';
import { compactTable } from '../src/lake/maintenance.js';
import { CLI, TestProject } from './support/project.js';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';

function dipCli(dir: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, '-p', dir, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `dip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('postgres source', postgresTestOptions(), () => {
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

  const source = (extra: Record<string, unknown>) => ({
    db: { type: 'postgres', connection: { url: server.url }, ...extra },
  });

  it('full extract: parallel ranges from one snapshot land every row once', async () => {
    await db.query(
      `CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), created timestamptz)`,
    );
    await db.query(
      `INSERT INTO orders SELECT i, 'c' || (i % 97), (i * 1.25)::numeric(12,2), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' FROM generate_series(1, 20000) i`,
    );
    await db.query('ANALYZE orders');
    const p = await TestProject.withSources(source({ tables: ['orders'], extract: { chunk_rows: 3000, parallel: 2 } }));
    try {
      const r = await p.runOk();
      const stats = r.stats.streams['db.orders'];
      assert.ok((stats?.files ?? 0) >= 6, `expected several units, got ${stats?.files}`);
      assert.equal(stats?.rows, 20000);
      const lake = (
        await p.rows(
          `SELECT count(*)::BIGINT AS n, sum(id)::BIGINT AS ids, sum(amount)::VARCHAR AS amount, max(created)::VARCHAR AS last FROM bronze.orders`,
        )
      )[0];
      const src = (await db.query(`SELECT count(*) AS n, sum(id) AS ids, sum(amount)::text AS amount FROM orders`))
        .rows[0];
      assert.equal(String(lake?.['n']), src.n);
      assert.equal(String(lake?.['ids']), src.ids);
      assert.equal(lake?.['amount'], src.amount);
      assert.equal(lake?.['last'], '2024-01-14 21:20:00+00');
      // replace: a second run swaps the table for the source's current rows
      await db.query('DELETE FROM orders WHERE id > 15000');
      await p.runOk();
      assert.equal(await p.count('bronze.orders'), 15000);
    } finally {
      await p.dispose();
    }
  });

  it('maps every type to the lake with exact values', async () => {
    await db.query(`CREATE TYPE mood AS ENUM ('sad', 'happy')`);
    await db.query(`CREATE TABLE typed (
      id int PRIMARY KEY, b boolean, i2 smallint, i8 bigint, n numeric(38,10), nbig numeric, f4 real, f8 double precision,
      t text, vc varchar(10), ch char(3), u uuid, j json, jb jsonb, d date, ts timestamp, tstz timestamptz, tm time, iv interval,
      bin bytea, ai int[], at text[], an numeric(6,2)[], m mood, ip inet)`);
    await db.query(`INSERT INTO typed VALUES
      (1, true, -32768, 9223372036854775807, -1234567890123456789012345678.0123456789, 12345678901234567890123456789012345678901234567890.123456789,
       3.14159, 2.718281828459045, 'comma, "quote"' || E'\\nnew line', 'ünï', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}',
       '2024-02-29', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30', '13:45:01.5', '1 year 2 months 3 days 04:05:06.5',
       '\\x00ff10', '{1,NULL,3}', '{"a,b","c\\"d",NULL,""}', '{1.50,-2.25}', 'happy', '192.168.0.1/24'),
      (2, NULL, NULL, NULL, NULL, NULL, 'NaN', '-Infinity', '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\\x', '{}', NULL, NULL, NULL, NULL)`);
    const p = await TestProject.withSources(source({ tables: ['typed'] }));
    try {
      await p.runOk();
      const cols = await p.rows(`SELECT column_name, column_type AS data_type FROM (DESCRIBE bronze.typed)`);
      const types = Object.fromEntries(cols.map((c) => [c['column_name'], c['data_type']]));
      assert.deepEqual(
        {
          b: types['b'],
          i2: types['i2'],
          i8: types['i8'],
          n: types['n'],
          nbig: types['nbig'],
          f4: types['f4'],
          f8: types['f8'],
          u: types['u'],
          j: types['j'],
          jb: types['jb'],
          d: types['d'],
          ts: types['ts'],
          tstz: types['tstz'],
          tm: types['tm'],
          iv: types['iv'],
          bin: types['bin'],
          ai: types['ai'],
          at: types['at'],
          an: types['an'],
          m: types['m'],
        },
        {
          b: 'BOOLEAN',
          i2: 'SMALLINT',
          i8: 'BIGINT',
          n: 'DECIMAL(38,10)',
          nbig: 'VARCHAR',
          f4: 'FLOAT',
          f8: 'DOUBLE',
          u: 'UUID',
          j: 'JSON',
          jb: 'JSON',
          d: 'DATE',
          ts: 'TIMESTAMP',
          tstz: 'TIMESTAMP WITH TIME ZONE',
          tm: 'TIME',
          iv: 'INTERVAL',
          bin: 'BLOB',
          ai: 'INTEGER[]',
          at: 'VARCHAR[]',
          an: 'DECIMAL(6,2)[]',
          m: 'VARCHAR',
        },
      );
      const [one, two] =
        await p.rows(`SELECT b, i2, i8::VARCHAR AS i8, n::VARCHAR AS n, nbig, f4, f8, t, vc, ch, u::VARCHAR AS u, j::VARCHAR AS j, jb::VARCHAR AS jb,
          d::VARCHAR AS d, ts::VARCHAR AS ts, tstz::VARCHAR AS tstz, tm::VARCHAR AS tm, iv::VARCHAR AS iv, hex(bin) AS bin, octet_length(bin) AS bylen,
          ai::VARCHAR AS ai, len("at") AS atn, "at"[1] AS at1, "at"[2] AS at2, "at"[3] IS NULL AS at3null, "at"[4] AS at4, an::VARCHAR AS an, m, ip
        FROM bronze.typed ORDER BY id`);
      assert.deepEqual(
        { ...one, f4: Number(one?.['f4']).toFixed(5), bylen: Number(one?.['bylen']), atn: Number(one?.['atn']) },
        {
          b: true,
          i2: -32768,
          i8: '9223372036854775807',
          n: '-1234567890123456789012345678.0123456789',
          nbig: '12345678901234567890123456789012345678901234567890.123456789',
          f4: '3.14159',
          f8: 2.718281828459045,
          t: 'comma, "quote"\nnew line',
          vc: 'ünï',
          ch: 'ab ',
          u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
          j: '{"a": [1, 2]}',
          jb: '{"b": {"c": null}}',
          d: '2024-02-29',
          ts: '2024-02-29 23:59:59.123456',
          tstz: '2024-02-29 18:29:59.123456+00',
          tm: '13:45:01.5',
          iv: '1 year 2 months 3 days 04:05:06.5',
          bin: '00FF10',
          bylen: 3,
          ai: '[1, NULL, 3]',
          atn: 4,
          at1: 'a,b',
          at2: 'c"d',
          at3null: true,
          at4: '',
          an: '[1.50, -2.25]',
          m: 'happy',
          ip: '192.168.0.1/24',
        },
      );
      assert.equal(two?.['b'], null);
      assert.ok(Number.isNaN(Number(two?.['f4'])));
      assert.equal(Number(two?.['f8']), -Infinity);
      assert.equal(two?.['t'], ''); // an empty string stays empty, NULL stays NULL
      assert.equal(two?.['vc'], null);
      assert.equal(Number(two?.['bylen']), 0);
      assert.equal(two?.['ai'], '[]');
    } finally {
      await p.dispose();
    }
  });

  it('incremental: ties on the cursor across chunk boundaries and late commits, nothing missed or duplicated', async () => {
    await db.query(`CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz NOT NULL, v int)`);
    // 25 rows share one cursor value: every chunk boundary (7 rows) falls inside the tie
    await db.query(
      `INSERT INTO events SELECT i, timestamptz '2024-01-01 00:00:00+00' + (CASE WHEN i <= 25 THEN 0 ELSE i END) * interval '1 second', i FROM generate_series(1, 40) i`,
    );
    const p = await TestProject.withSources(
      source({
        mode: 'incremental',
        tables: [
          { name: 'events', cursor: 'updated_at', chunk_rows: 7, lag: '1h' },
          {
            name: 'events',
            stream: 'events_log',
            write_disposition: 'append',
            cursor: 'updated_at',
            chunk_rows: 7,
            lag: '1h',
          },
        ],
      }),
    );
    try {
      const first = await p.runOk();
      assert.equal(first.stats.streams['db.events']?.rows, 40);
      assert.ok((first.stats.streams['db.events_log']?.commits ?? 0) >= 6);
      // A transaction that stamped its rows earlier commits only now (inside the lag window the
      // rows are not read yet), others update and insert rows.
      const now = `now() - interval '2 hours'`;
      await db.query(`UPDATE events SET v = -v, updated_at = ${now} WHERE id IN (3, 30)`);
      await db.query(`INSERT INTO events VALUES (41, ${now}, 41), (42, ${now}, 42), (43, now(), 43)`);
      const second = await p.runOk();
      // 43 is newer than now() - lag: it waits for a later run
      assert.equal(second.stats.streams['db.events']?.rows, 4);
      assert.deepEqual((await p.rows(`SELECT list(id ORDER BY id) AS ids FROM bronze.events`))[0]?.['ids'], [
        ...Array.from({ length: 42 }, (_, i) => i + 1),
      ]);
      assert.deepEqual(
        (await p.rows(`SELECT v FROM bronze.events WHERE id IN (3, 30) ORDER BY id`)).map((r) => r['v']),
        [-3, -30],
      );
      assert.equal(await p.count('bronze.events_log'), 44); // 40 first reads + 2 updated + 2 new, each once
      assert.equal(
        await p.num(`SELECT count(*) FROM (SELECT id, v FROM bronze.events_log GROUP BY 1, 2 HAVING count(*) > 1)`),
        0,
      );
      const third = await p.runOk();
      assert.equal(third.stats.streams['db.events']?.rows, 0);
      // dip state shows the saved position; --reset makes the next run read from the start
      const shown = JSON.parse(dipCli(p.dir, 'state', 'p', '--stream', 'events', '--json')) as {
        stream: string;
        value: { cursor_column: string; last: string[] };
      }[];
      assert.equal(shown[0]?.value.cursor_column, 'updated_at');
      assert.equal(shown[0]?.value.last[1], '42');
      dipCli(p.dir, 'state', 'p', '--stream', 'events', '--reset');
      await p.reopen();
      const fourth = await p.runOk();
      assert.equal(fourth.stats.streams['db.events']?.rows, 42);
      assert.equal(fourth.stats.streams['db.events_log']?.rows, 0);
      assert.equal(await p.count('bronze.events'), 42);
    } finally {
      await p.dispose();
    }
  });

  it('cdc: snapshot then changes (insert, update, key change, delete, truncate) keep the current table equal to the source', async () => {
    await db.query(
      `CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), tags text[], note bytea)`,
    );
    await db.query(
      `INSERT INTO accounts SELECT i, 'owner ' || i, i * 10, ARRAY['t' || i], '\\x0102' FROM generate_series(1, 500) i`,
    );
    await db.query(`CREATE TABLE audit (seq bigserial PRIMARY KEY, what text)`);
    const p = await TestProject.withSources(
      source({ mode: 'cdc', tables: ['accounts', 'audit'], cdc: { flush_interval: '200ms', idle_timeout: '2s' } }),
    );
    const checksum = async () => {
      const src = (
        await db.query(
          `SELECT count(*)::text AS n, coalesce(sum(hashtext(id || '|' || owner || '|' || balance::text || '|' || coalesce(array_to_string(tags, ','), '~') || '|' || encode(note, 'hex'))::bigint), 0)::text AS h FROM accounts`,
        )
      ).rows[0];
      return src as { n: string; h: string };
    };
    try {
      const first = await p.runOk();
      assert.equal(first.stats.streams['db.accounts']?.rows, 500);
      assert.equal(await p.count('bronze.accounts'), 500);
      assert.equal(await p.num(`SELECT count(*) FROM bronze.accounts_changes WHERE _cdc_op = 'r'`), 500);
      await db.query(`INSERT INTO accounts VALUES (501, 'new', 1.5, '{a,b}', '\\xff')`);
      await db.query(`UPDATE accounts SET balance = balance + 0.01, tags = '{x,"y z"}' WHERE id <= 10`);
      await db.query(`UPDATE accounts SET id = 1000 WHERE id = 20`);
      await db.query(`DELETE FROM accounts WHERE id BETWEEN 30 AND 39`);
      await db.query(`INSERT INTO audit (what) VALUES ('a'), ('b')`);
      const second = await p.runOk();
      assert.equal(second.status, 'succeeded');
      assert.equal(await p.count('bronze.accounts'), 491);
      assert.deepEqual(
        (
          await p.rows(
            `SELECT _cdc_op AS op, count(*)::INTEGER AS n FROM bronze.accounts_changes WHERE _cdc_op <> 'r' GROUP BY 1 ORDER BY 1`,
          )
        ).map((r) => [r['op'], r['n']]),
        [
          ['c', 2],
          ['d', 11],
          ['u', 10],
        ],
      );
      const lake = (
        await p.rows(
          `SELECT count(*)::VARCHAR AS n, coalesce(sum(hash_pg), 0)::VARCHAR AS h FROM (SELECT id, owner, balance, tags, note, 0 AS hash_pg FROM bronze.accounts)`,
        )
      )[0];
      assert.equal(lake?.['n'], (await checksum()).n);
      const rows = await p.rows(
        `SELECT id, owner, balance::VARCHAR AS balance, array_to_string(tags, ',') AS tags, hex(note) AS note FROM bronze.accounts ORDER BY id`,
      );
      const src = (
        await db.query(
          `SELECT id, owner, balance::text AS balance, array_to_string(tags, ',') AS tags, upper(encode(note, 'hex')) AS note FROM accounts ORDER BY id`,
        )
      ).rows;
      assert.deepEqual(rows, src);
      assert.equal(await p.count('bronze.audit'), 2);
      // the slot's confirmed position moved past what the lake holds
      const slot = (
        await db.query(
          `SELECT confirmed_flush_lsn >= pg_current_wal_lsn() - 100000 AS ok FROM pg_replication_slots WHERE slot_name = 'dip_p_db'`,
        )
      ).rows[0];
      assert.equal(slot?.ok, true);
      await db.query(`TRUNCATE accounts`);
      await db.query(`INSERT INTO accounts VALUES (7, 'after truncate', 7, NULL, '\\x')`);
      await p.runOk();
      assert.deepEqual(await p.rows(`SELECT id, owner FROM bronze.accounts`), [{ id: 7, owner: 'after truncate' }]);
      assert.equal(await p.num(`SELECT count(*) FROM bronze.accounts_changes WHERE _cdc_op = 't'`), 1);
    } finally {
      await p.dispose();
    }
  });

  it('cdc: deltas are merged among themselves and into the base without changing what readers see', async () => {
    await db.query(`CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`);
    await db.query(`INSERT INTO counters SELECT i, 0 FROM generate_series(1, 100) i`);
    const p = await TestProject.withSources(
      source({
        mode: 'cdc',
        tables: ['counters'],
        cdc: { slot: 'dip_counters', publication: 'dip_counters', idle_timeout: '2s' },
      }),
    );
    try {
      await p.runOk();
      const lake = await p.lake();
      for (let round = 1; round <= 40; round++) {
        await db.query(`UPDATE counters SET n = n + 1 WHERE id % 10 = $1`, [round % 10]);
        if (round % 7 === 0) await db.query(`DELETE FROM counters WHERE id = $1`, [round]);
        if (round % 9 === 0) await db.query(`INSERT INTO counters VALUES ($1, $2)`, [1000 + round, round]);
        await p.runOk();
        const files = await lake.catalog.liveFiles('bronze.counters');
        assert.ok(files.length <= 32, `round ${round}: ${files.length} live files`);
      }
      const deltas = (await lake.catalog.liveFiles('bronze.counters')).filter((f) => f.meta['cdc'] === 'delta');
      assert.ok(deltas.length < 40, `deltas were merged (${deltas.length} left)`);
      const rows = await p.rows(`SELECT id, n FROM bronze.counters ORDER BY id`);
      const src = (await db.query(`SELECT id, n FROM counters ORDER BY id`)).rows;
      assert.deepEqual(rows, src);
      // dip tables counts the rows readers see, and the changes not yet merged
      const listed = (
        JSON.parse(dipCli(p.dir, 'tables', '--json')) as { name: string; rows: number; pendingChanges?: number }[]
      ).find((t) => t.name === 'bronze.counters');
      assert.equal(listed?.rows, src.length);
      assert.equal(
        listed?.pendingChanges,
        deltas.reduce((n, f) => n + f.rows, 0),
      );
      // dip compact joins the files into one; readers still see one row per key
      const compacted = await compactTable(lake, 'bronze.counters', { smallFileBytes: 1 << 30 });
      assert.ok(compacted.inputFiles >= 2);
      assert.deepEqual(await p.rows(`SELECT id, n FROM bronze.counters ORDER BY id`), src);
    } finally {
      await p.dispose();
    }
  });

  it('copies rows of any size, quarantines a value the lake type cannot hold, and reports a failing query', async () => {
    await db.query(`CREATE TABLE wide (id int PRIMARY KEY, price numeric(10,2), body text)`);
    // rows far larger than a network chunk, between ordinary ones
    await db.query(
      `INSERT INTO wide SELECT i, i / 4.0, CASE WHEN i % 50 = 0 THEN repeat(md5(i::text), 40000) ELSE 'x' || i END FROM generate_series(1, 400) i`,
    );
    await db.query(`UPDATE wide SET price = 'NaN' WHERE id = 7`);
    const p = await TestProject.withSources(source({ tables: ['wide'] }));
    try {
      const r = await p.runOk();
      assert.equal(r.stats.streams['db.wide']?.rows, 399);
      assert.equal(r.stats.streams['db.wide']?.quarantined, 1);
      const lake = (
        await p.rows(
          `SELECT sum(length(body))::BIGINT AS n, md5(string_agg(body, '' ORDER BY id)) AS h FROM bronze.wide`,
        )
      )[0];
      const src = (
        await db.query(
          `SELECT sum(length(body))::bigint::text AS n, md5(string_agg(body, '' ORDER BY id)) AS h FROM wide WHERE id <> 7`,
        )
      ).rows[0];
      assert.deepEqual({ n: String(lake?.['n']), h: lake?.['h'] }, src);
      const q = await p.rows(`SELECT column_name, raw FROM quarantine.wide`);
      assert.equal(q.length, 1);
      assert.equal(q[0]?.['column_name'], 'price');
      assert.match(String(q[0]?.['raw']), /^"?7"?,"?NaN"?,/);
    } finally {
      await p.dispose();
    }
    const failing = await TestProject.withSources(source({ tables: [{ name: 'wide', where: '1 / (id - 200) <> 0' }] }));
    try {
      const r = await failing.run();
      assert.equal(r.status, 'failed');
      assert.match(r.errors[0]?.message ?? '', /division by zero/);
    } finally {
      await failing.dispose();
    }
  });

  it('explains bad configuration against what the database holds', async () => {
    await db.query(`CREATE TABLE nokey (a int, b text)`);
    await db.query(`CREATE TABLE keyed (id int PRIMARY KEY, n int)`);
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ tables: ['missing_table'] }, /no table or view public\.missing_table .*keyed/],
      [{ mode: 'incremental', tables: ['keyed'] }, /mode incremental needs cursor/],
      [
        { tables: [{ name: 'keyed', mode: 'incremental', cursor: 'nope' }] },
        /cursor: no column "nope" \(columns: id, n\)/,
      ],
      [
        { tables: [{ name: 'keyed', mode: 'incremental', cursor: 'n', lag: '5m' }] },
        /lag applies to a date or timestamp cursor; n is integer/,
      ],
      [{ mode: 'cdc', tables: ['nokey'] }, /needs a primary key .*REPLICA IDENTITY FULL/],
      [{ tables: [{ pattern: 'zz_*' }] }, /pattern "zz_\*" matches no table/],
    ];
    for (const [extra, expected] of cases) {
      const p = await TestProject.withSources(source(extra));
      try {
        const r = await p.run();
        assert.equal(r.status, 'failed');
        // A missing table fails its own stream (issue 21), not the whole run.
        if (r.errors.some((e) => expected.test(e.message) && e.exitCode === 2)) continue;
      } catch (err) {
        assert.match(String((err as Error).message), expected);
        assert.equal((err as { exitCode?: number }).exitCode, 2);
        continue;
      } finally {
        await p.dispose();
      }
      assert.fail(`expected a configuration error matching ${expected}`);
    }
  });
});
