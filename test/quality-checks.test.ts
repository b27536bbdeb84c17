/**
 * Data quality checks on real DuckDB: each check kind compiled and evaluated over small tables
 * with exact counts, mostly thresholds, warn/error status, the volume anomaly rule, config errors
 * and the text report.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { checkSchema, type CheckConfig } from '../src/config/silver.js';
import { ConfigError } from '../src/core/errors.js';
import { Engine } from '../src/lake/engine.js';
import { volumeAnomaly } from '../src/quality/anomaly.js';
import {
  anyFailureSql,
  compileChecks,
  evaluateRowChecks,
  evaluateTableChecks,
  failuresSql,
  typeMatches,
  validateRowChecks,
  type CompiledChecks,
  type SilverColumn,
} from '../src/quality/checks.js';
import { formatReport, summarize, type CheckResult } from '../src/quality/report.js';

let engine: Engine;
before(() => {
  engine = Engine.start({ threads: 2 });
});
after(async () => {
  await engine.close();
});

const parse = (checks: unknown[]): CheckConfig[] => checks.map((c) => checkSchema.parse(c));
type Refs = (table: string, field: string) => Promise<string>;
const noRefs: Refs = async (table) => {
  throw new Error(`unexpected reference to ${table}`);
};

async function columnsOf(table: string): Promise<SilverColumn[]> {
  return engine.describe(table);
}

async function compile(table: string, checks: unknown[], refs: Refs = noRefs): Promise<CompiledChecks> {
  return compileChecks(`silver.${table}`, parse(checks), await columnsOf(table), refs);
}

async function rowResults(table: string, checks: unknown[], refs: Refs = noRefs): Promise<CheckResult[]> {
  const compiled = await compile(table, checks, refs);
  assert.equal(compiled.table.length, 0);
  return evaluateRowChecks(engine, table, compiled.row);
}

const NOW = new Date('2024-03-10T12:00:00Z');

async function tableResults(
  table: string,
  checks: unknown[],
  ctx: { newRows?: number; history?: number[]; now?: Date } = {},
): Promise<CheckResult[]> {
  const compiled = await compile(table, checks);
  assert.equal(compiled.row.length, 0);
  return evaluateTableChecks(engine, table, compiled.table, {
    now: ctx.now ?? NOW,
    newRows: ctx.newRows ?? 0,
    history: ctx.history ?? [],
    columns: await columnsOf(table),
  });
}

function only(results: CheckResult[], name: string): CheckResult {
  const r = results.find((x) => x.name === name);
  assert.ok(r, `result ${name} among ${results.map((x) => x.name).join(', ')}`);
  return r;
}

describe('row checks', () => {
  before(async () => {
    await engine.run(`CREATE TABLE people AS SELECT * FROM (VALUES
      (1, 'ann@example.com', '+1 (555) 123-4567', 'active', 10, DATE '2024-01-05', 'A-100'),
      (2, NULL, NULL, 'inactive', -3, DATE '2023-12-31', 'A-101'),
      (3, 'bob@', '12', 'banned', 0, DATE '2024-02-01', 'B-1'),
      (4, 'cy@mail.example.org', '555.123.4567', NULL, 250, NULL, NULL),
      (5, 'dee@example.com', NULL, 'x', NULL, DATE '2024-06-30', 'a-102')
    ) AS t(id, email, phone, status, views, joined, code)`);
  });

  it('not_null: one column, and several columns as one check naming the null ones', async () => {
    const results = await rowResults('people', [
      { type: 'not_null', column: 'email' },
      { type: 'not_null', columns: ['email', 'phone'] },
    ]);
    const one = only(results, 'not_null_email');
    assert.equal(one.evaluated, 5);
    assert.equal(one.failed, 1);
    assert.deepEqual(one.samples, ['email is null']);
    assert.equal(one.passed, false);
    assert.equal(one.percent, 20);
    assert.equal(one.message, 'silver.people: not_null_email failed 1 of 5 rows (20.00%, mostly 1): email is null');
    const both = only(results, 'not_null_email_phone');
    assert.equal(both.failed, 2);
    assert.deepEqual([...both.samples].sort(), ['email is null, phone is null', 'phone is null']);
  });

  it('accepted_values: values outside the list fail, nulls pass; numbers on a numeric column', async () => {
    const results = await rowResults('people', [
      { type: 'accepted_values', column: 'status', values: ['active', 'inactive', 'banned'] },
      { type: 'accepted_values', column: 'views', values: [10, 0, '250'], name: 'views_known' },
    ]);
    const status = only(results, 'accepted_values_status');
    assert.equal(status.failed, 1);
    assert.deepEqual(status.samples, ["status = 'x' is not one of 'active', 'inactive', 'banned'"]);
    const views = only(results, 'views_known');
    assert.equal(views.failed, 1, 'only -3 (null passes)');
    assert.deepEqual(views.samples, ["views = -3 is not one of 10, 0, '250'"]);
  });

  it('range: numbers, exclusive bounds, dates as ISO text', async () => {
    const results = await rowResults('people', [
      { type: 'range', column: 'views', min: 0 },
      { type: 'range', column: 'views', min: 0, max: 100, exclusive: true, name: 'views_open' },
      { type: 'range', column: 'joined', min: '2024-01-01', max: '2024-03-31' },
    ]);
    const min = only(results, 'range_views');
    assert.equal(min.failed, 1);
    assert.deepEqual(min.samples, ['views = -3 is below min 0']);
    assert.equal(
      min.message,
      'silver.people: range_views failed 1 of 5 rows (20.00%, mostly 1): views = -3 is below min 0',
    );
    const open = only(results, 'views_open');
    assert.equal(open.failed, 3, '-3, 0 (bound itself) and 250');
    assert.deepEqual([...open.samples].sort(), [
      'views = -3 is not above exclusive min 0',
      'views = 0 is not above exclusive min 0',
      'views = 250 is not below exclusive max 100',
    ]);
    const dates = only(results, 'range_joined');
    assert.equal(dates.failed, 2);
    assert.deepEqual([...dates.samples].sort(), [
      'joined = 2023-12-31 is below min 2024-01-01',
      'joined = 2024-06-30 is above max 2024-03-31',
    ]);
  });

  it('format and regex: nulls pass, offending values quoted in the reason', async () => {
    const results = await rowResults('people', [
      { type: 'format', column: 'email', format: 'email' },
      { type: 'format', column: 'phone', format: 'phone', severity: 'warn' },
      { type: 'regex', column: 'code', pattern: '[A-Z]-[0-9]{3}' },
    ]);
    const email = only(results, 'format_email');
    assert.equal(email.failed, 1);
    assert.deepEqual(email.samples, ["email = 'bob@' is not an email address"]);
    const phone = only(results, 'format_phone');
    assert.equal(phone.failed, 1);
    assert.equal(phone.severity, 'warn');
    assert.deepEqual(phone.samples, ["phone = '12' is not a phone number (7 to 15 digits)"]);
    const code = only(results, 'regex_code');
    assert.equal(code.failed, 2);
    assert.deepEqual([...code.samples].sort(), [
      "code = 'B-1' does not match [A-Z]-[0-9]{3}",
      "code = 'a-102' does not match [A-Z]-[0-9]{3}",
    ]);
  });

  it('format: every well-known format accepts and rejects what it should', async () => {
    const cases: Record<string, { good: string[]; bad: string[] }> = {
      email: {
        good: ['a.b+c@example.co.uk', "o'hara@x.io"],
        bad: ['a@b', 'a b@example.com', '@example.com', 'a@-x.com'],
      },
      url: {
        good: ['https://example.com', 'http://localhost:8080/a?b=c#d', 'HTTPS://x.y/z', 'http://[::1]:80/'],
        bad: ['ftp://x.com', 'example.com', 'http://', 'https://a b.com'],
      },
      uuid: {
        good: ['123e4567-e89b-12d3-a456-426614174000', '123E4567-E89B-12D3-A456-426614174000'],
        bad: ['123e4567e89b12d3a456426614174000', '123e4567-e89b-12d3-a456-42661417400g'],
      },
      ipv4: {
        good: ['0.0.0.0', '192.168.1.255', '255.255.255.255'],
        bad: ['256.1.1.1', '1.2.3', '01.2.3.4x', '1.2.3.4.5'],
      },
      ipv6: {
        good: [
          '::1',
          '2001:db8::8a2e:370:7334',
          '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
          '::ffff:192.0.2.128',
          'fe80::1%eth0',
          '::',
        ],
        bad: ['2001:db8:::1', '1:2:3:4:5:6:7:8:9', 'g::1', '192.168.0.1'],
      },
      phone: {
        good: ['+44 20 7946 0958', '(555) 123-4567', '5551234567', '+1-555-123-4567'],
        bad: ['123456', '+1 555 abc 4567', '1234567890123456', 'call me'],
      },
      iso_date: {
        good: ['2024-02-29', '1999-12-31'],
        bad: ['2023-02-29', '2024-13-01', '24-01-01', '2024-01-01T00:00:00Z'],
      },
      iso_timestamp: {
        good: [
          '2024-01-01T10:00:00Z',
          '2024-01-01 10:00',
          '2024-01-01T10:00:00.123456+05:30',
          '2024-01-01T23:59:59-0800',
        ],
        bad: ['2024-01-01', '2024-01-01T24:00:00Z', '2024-02-30T10:00:00Z', '2024-01-01T10:00:00+5'],
      },
    };
    for (const [format, { good, bad }] of Object.entries(cases)) {
      const values = [...good, ...bad].map((v) => `(${`'${v.replaceAll("'", "''")}'`})`).join(', ');
      await engine.run(`CREATE OR REPLACE TABLE fmt AS SELECT * FROM (VALUES ${values}, (NULL)) AS t(v)`);
      const [r] = await rowResults('fmt', [{ type: 'format', column: 'v', format }]);
      assert.ok(r);
      const offenders = r.samples.map((s) => /^v = '(.*)' is not /.exec(s)?.[1]);
      assert.equal(
        r.failed,
        bad.length,
        `${format}: failed ${r.failed}, expected the ${bad.length} bad ones; samples ${JSON.stringify(r.samples)}`,
      );
      assert.deepEqual([...offenders].sort(), [...bad].sort().slice(0, 5), format);
    }
  });

  it('relationships: missing keys fail, nulls pass; the lookup is a hash (mark) join', async () => {
    await engine.run(`CREATE TABLE authors AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (NULL, 'c')) AS t(id, name)`);
    await engine.run(
      `CREATE TABLE posts AS SELECT * FROM (VALUES (10, 1), (11, 2), (12, 3), (13, NULL), (14, 3), (15, 7)) AS t(post_id, author_id)`,
    );
    const asked: string[] = [];
    const refs = async (table: string, field: string) => {
      asked.push(`${table}.${field}`);
      return 'authors';
    };
    const compiled = await compile(
      'posts',
      [{ type: 'relationships', column: 'author_id', to: 'silver.authors', field: 'id' }],
      refs,
    );
    assert.deepEqual(asked, ['silver.authors.id']);
    const [r] = await evaluateRowChecks(engine, 'posts', compiled.row);
    assert.ok(r);
    assert.equal(r.name, 'relationships_author_id');
    assert.equal(r.evaluated, 6);
    assert.equal(r.failed, 3, 'author 3 twice and 7; null passes although authors.id holds a NULL');
    assert.deepEqual(r.samples, [
      'author_id = 3 is not in silver.authors.id',
      'author_id = 7 is not in silver.authors.id',
    ]);
    const check = compiled.row[0];
    assert.ok(check);
    const plan = await engine.all(`EXPLAIN SELECT count_if(${check.failSql}) FROM posts`);
    const text = plan.map((p) => String(p['explain_value'])).join('\n');
    assert.match(text, /HASH_JOIN/);
    assert.match(text, /MARK/);
    assert.doesNotMatch(text, /NESTED_LOOP|PIECEWISE|BLOCKWISE/);

    // A text key referencing an integer key (and the other way round) compares by the column type.
    await engine.run(`CREATE TABLE tagged AS SELECT * FROM (VALUES ('1'), ('2'), ('x'), ('9')) AS t(author_code)`);
    const text2int = await rowResults(
      'tagged',
      [{ type: 'relationships', column: 'author_code', to: 'silver.authors', field: 'id' }],
      async () => 'authors',
    );
    assert.equal(text2int[0]?.failed, 2);
    await engine.run(`CREATE TABLE codes AS SELECT * FROM (VALUES ('1'), ('x')) AS t(code)`);
    const int2text = await rowResults(
      'posts',
      [{ type: 'relationships', column: 'author_id', to: 'silver.codes', field: 'code' }],
      async () => 'codes',
    );
    assert.equal(int2text[0]?.failed, 4, 'only author 1 is among the codes');
  });

  it('expression: FALSE fails, NULL passes (SQL CHECK semantics); the reason shows the values', async () => {
    await engine.run(
      `CREATE TABLE stats AS SELECT * FROM (VALUES (1, 5, 10), (2, 12, 3), (3, NULL, 4), (4, 7, 7)) AS t(id, likes, views)`,
    );
    const compiled = await compile('stats', [
      { type: 'expression', expression: 'likes <= views' },
      { type: 'expression', expression: "likes < views OR 'x' = 'y'" },
    ]);
    assert.deepEqual(
      compiled.row.map((c) => c.name),
      ['expression_1', 'expression_2'],
    );
    assert.deepEqual(compiled.row[0]?.columns, ['likes', 'views']);
    const [le, lt] = await evaluateRowChecks(engine, 'stats', compiled.row);
    assert.ok(le && lt);
    assert.equal(le.failed, 1);
    assert.deepEqual(le.samples, ['not met: likes <= views (likes = 12, views = 3)']);
    assert.equal(lt.failed, 2);
  });

  it('mostly: 1 of 200 failing passes 0.99, 2 of 200 is exactly 0.99, 3 of 200 fails', async () => {
    await engine.run(`CREATE TABLE m AS SELECT i AS id, CASE WHEN i < 1 THEN -1 ELSE i END AS a, CASE WHEN i < 2 THEN -1 ELSE i END AS b,
      CASE WHEN i < 3 THEN -1 ELSE i END AS c FROM range(200) r(i)`);
    const results = await rowResults('m', [
      { type: 'range', column: 'a', min: 0, mostly: 0.99 },
      { type: 'range', column: 'b', min: 0, mostly: 0.99 },
      { type: 'range', column: 'c', min: 0, mostly: 0.99 },
    ]);
    const [a, b, c] = results;
    assert.ok(a && b && c);
    assert.deepEqual([a.failed, b.failed, c.failed], [1, 2, 3]);
    assert.deepEqual([a.passed, b.passed, c.passed], [true, true, false]);
    assert.equal(a.percent, 0.5);
    assert.equal(c.percent, 1.5);
    assert.equal(
      a.message,
      'silver.m: range_a passed: 1 of 200 rows failed (0.50%, mostly 0.99): a = -1 is below min 0',
    );
    assert.equal(c.message, 'silver.m: range_c failed 3 of 200 rows (1.50%, mostly 0.99): c = -1 is below min 0; …');
  });

  it('no rows: evaluated 0 passes', async () => {
    await engine.run(`CREATE TABLE empty_t (id INTEGER, v VARCHAR)`);
    const [r] = await rowResults('empty_t', [{ type: 'not_null', column: 'v' }]);
    assert.ok(r);
    assert.deepEqual([r.evaluated, r.failed, r.percent, r.passed], [0, 0, 0, true]);
  });

  it('anyFailureSql and failuresSql mark rows for quarantine', async () => {
    const compiled = await compile('people', [
      { type: 'not_null', column: 'email' },
      { type: 'range', column: 'views', min: 0 },
      { type: 'format', column: 'email', format: 'email', severity: 'warn' },
    ]);
    const errors = compiled.row.filter((c) => c.severity === 'error');
    const rows = await engine.all(
      `SELECT id, ${anyFailureSql(errors)} AS q, ${failuresSql(compiled.row)} AS f FROM people ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => r['q']),
      [false, true, false, false, false],
    );
    assert.deepEqual(rows[1]?.['f'], [
      { check: 'not_null_email', reason: 'email is null' },
      { check: 'range_views', reason: 'views = -3 is below min 0' },
    ]);
    assert.deepEqual(rows[2]?.['f'], [{ check: 'format_email', reason: "email = 'bob@' is not an email address" }]);
    assert.deepEqual(rows[0]?.['f'], []);
    assert.equal(anyFailureSql([]), 'false');
  });
});

describe('table checks', () => {
  before(async () => {
    await engine.run(`CREATE TABLE events AS SELECT * FROM (VALUES
      (1, 'a', TIMESTAMPTZ '2024-03-09 08:00:00+00', DATE '2024-03-08'),
      (2, 'b', TIMESTAMPTZ '2024-03-10 09:30:00+00', DATE '2024-03-09'),
      (2, 'b', TIMESTAMPTZ '2024-03-01 00:00:00+00', DATE '2024-03-01'),
      (3, 'c', NULL, NULL),
      (3, 'd', NULL, NULL),
      (3, 'c', NULL, NULL),
      (NULL, 'e', NULL, NULL),
      (NULL, 'e', NULL, NULL)
    ) AS t(id, k, "at", day)`);
  });

  it('unique: rows of duplicated groups fail, NULL keys never duplicate; several columns', async () => {
    const results = await tableResults('events', [
      { type: 'unique', column: 'id' },
      { type: 'unique', columns: ['id', 'k'] },
      { type: 'unique', column: 'k', severity: 'warn', mostly: 0.5 },
    ]);
    const id = only(results, 'unique_id');
    assert.equal(id.level, 'table');
    assert.equal(id.evaluated, 8);
    assert.equal(id.failed, 5, 'id 2 twice, id 3 three times');
    assert.deepEqual(id.samples, ['id = 3 (3 rows)', 'id = 2 (2 rows)']);
    assert.equal(
      id.message,
      'silver.events: unique_id failed 5 of 8 rows (62.50%, mostly 1): 2 duplicated values: id = 3 (3 rows); id = 2 (2 rows)',
    );
    const pair = only(results, 'unique_id_k');
    assert.equal(pair.failed, 4);
    assert.deepEqual([...pair.samples].sort(), ['(id, k) = (2, b) (2 rows)', '(id, k) = (3, c) (2 rows)']);
    const k = only(results, 'unique_k');
    assert.equal(k.failed, 6, 'b, c, e twice each');
    assert.equal(k.passed, false, '2 of 8 pass < 0.5');
  });

  it('row_count: bounds in the message', async () => {
    const results = await tableResults('events', [
      { type: 'row_count', min: 1, max: 5 },
      { type: 'row_count', min: 8 },
      { type: 'row_count', max: 7, severity: 'warn' },
    ]);
    assert.deepEqual(
      results.map((r) => r.name),
      ['row_count', 'row_count_2', 'row_count_3'],
    );
    const [a, b, c] = results;
    assert.ok(a && b && c);
    assert.deepEqual([a.evaluated, a.failed, a.passed], [1, 1, false]);
    assert.equal(a.message, 'silver.events: row_count failed: 8 rows, expected between 1 and 5');
    assert.deepEqual([b.failed, b.passed], [0, true]);
    assert.equal(b.message, 'silver.events: row_count_2 passed: 8 rows, expected at least 8');
    assert.equal(c.message, 'silver.events: row_count_3 failed: 8 rows, expected at most 7');
  });

  it('freshness: newest value against an injected clock, TIMESTAMPTZ and DATE', async () => {
    const results = await tableResults('events', [
      { type: 'freshness', column: 'at', max_age: '6h' },
      { type: 'freshness', column: 'at', max_age: '1h', name: 'at_1h' },
      { type: 'freshness', column: 'day', max_age: '1d' },
      { type: 'freshness', column: 'day', max_age: '2d', name: 'day_2d' },
    ]);
    const at = only(results, 'freshness_at');
    assert.deepEqual([at.evaluated, at.failed, at.passed], [1, 0, true]);
    assert.equal(
      at.message,
      'silver.events: freshness_at passed: newest at = 2024-03-10 09:30:00+00 is 2h 30m old at 2024-03-10T12:00:00.000Z (max_age 6h)',
    );
    const at1 = only(results, 'at_1h');
    assert.deepEqual([at1.failed, at1.passed], [1, false]);
    assert.match(at1.message, /failed: newest at = 2024-03-10 09:30:00\+00 is 2h 30m old .*\(max_age 1h\)/);
    const day = only(results, 'freshness_day');
    assert.equal(day.failed, 1, 'DATE counts as midnight UTC: 2024-03-09 is 1d 12h old');
    assert.match(day.message, /newest day = 2024-03-09 is 1d 12h old/);
    assert.equal(only(results, 'day_2d').failed, 0);

    await engine.run(`CREATE TABLE no_times ("at" TIMESTAMP)`);
    const [none] = await tableResults('no_times', [{ type: 'freshness', column: 'at', max_age: '1d' }]);
    assert.ok(none);
    assert.equal(none.failed, 1);
    assert.equal(none.message, 'silver.no_times: freshness_at failed: at has no values (max_age 1d)');
  });

  it('schema: types case-insensitive with aliases, any, missing, wrong type, exact ignores _dip_ columns', async () => {
    await engine.run(
      `CREATE TABLE shaped (id BIGINT, name VARCHAR, price DECIMAL(12,2), "at" TIMESTAMPTZ, _dip_run_id VARCHAR, extra INTEGER)`,
    );
    const results = await tableResults('shaped', [
      {
        type: 'schema',
        columns: { id: 'bigint', NAME: 'text', price: 'decimal', at: 'timestamp with time zone' },
        name: 'loose',
      },
      {
        type: 'schema',
        columns: { id: 'int8', name: 'any', price: 'DECIMAL(12, 2)', at: 'TIMESTAMPTZ', extra: 'int' },
        exact: true,
        name: 'exact_ok',
      },
      {
        type: 'schema',
        columns: { id: 'INTEGER', missing: 'VARCHAR', price: 'DECIMAL(10,2)' },
        exact: true,
        name: 'bad',
        severity: 'warn',
      },
    ]);
    const loose = only(results, 'loose');
    assert.deepEqual([loose.evaluated, loose.failed, loose.passed], [4, 0, true]);
    assert.equal(only(results, 'exact_ok').failed, 0);
    const bad = only(results, 'bad');
    assert.equal(bad.evaluated, 6, '3 required + 3 unexpected (name, at, extra)');
    assert.equal(bad.failed, 6);
    assert.deepEqual(bad.samples, [
      'id is BIGINT, expected INTEGER',
      'missing column missing (VARCHAR)',
      'price is DECIMAL(12,2), expected DECIMAL(10,2)',
      'unexpected column name (VARCHAR)',
      'unexpected column at (TIMESTAMP WITH TIME ZONE)',
    ]);
    assert.match(
      bad.message,
      /^silver\.shaped: bad failed 6 of 6 columns \(100\.00%, mostly 1\): id is BIGINT, expected INTEGER; missing column missing/,
    );
    assert.match(bad.message, /unexpected column extra \(INTEGER\)$/);
    assert.ok(typeMatches('VARCHAR', 'VARCHAR(20)'));
    assert.ok(!typeMatches('DATE', 'TIMESTAMP'));
    assert.ok(typeMatches('integer[]', 'INTEGER[]'));
  });

  it('volume_anomaly: z-score against the history window', async () => {
    const history = [100, 102, 98, 101, 99];
    const check = [{ type: 'volume_anomaly' }];
    const [spike] = await tableResults('events', check, { newRows: 500, history });
    assert.ok(spike);
    assert.deepEqual([spike.evaluated, spike.failed, spike.passed], [1, 1, false]);
    assert.equal(
      spike.message,
      'silver.events: volume_anomaly failed: 500 new rows is an anomaly: z = 252.98 against the last 5 runs (mean 100.00, stddev 1.58, max_z 3)',
    );
    const [normal] = await tableResults('events', check, { newRows: 100, history });
    assert.ok(normal);
    assert.deepEqual([normal.failed, normal.passed], [0, true]);
    assert.match(normal.message, /100 new rows is within range: z = 0\.00/);
    const [young] = await tableResults('events', check, { newRows: 500, history: [100, 102] });
    assert.ok(young);
    assert.deepEqual([young.evaluated, young.failed, young.passed], [0, 0, true]);
    assert.equal(
      young.message,
      'silver.events: volume_anomaly passed: not enough history (2 of 5 runs): 500 new rows not judged',
    );
  });

  it('volume anomaly rule: window, constant history and the 10% guard', () => {
    const opts = { max_z: 3, min_history: 5, window: 5 };
    // Only the last 5 runs count: the old 10,000s are outside the window.
    const windowed = volumeAnomaly(100, [10_000, 10_000, 100, 102, 98, 101, 99], opts);
    assert.equal(windowed.baseline, 5);
    assert.equal(windowed.mean, 100);
    assert.equal(windowed.passed, true);
    // Constant history: stddev 0; within max(1, 10% of mean) passes, beyond fails.
    const flat = [100, 100, 100, 100, 100];
    assert.equal(volumeAnomaly(100, flat, opts).z, 0);
    assert.equal(volumeAnomaly(110, flat, opts).passed, true);
    const jump = volumeAnomaly(111, flat, opts);
    assert.equal(jump.passed, false);
    assert.equal(jump.z, Infinity);
    assert.match(jump.message, /z = \+∞/);
    // Very steady history: |z| > max_z but a 2-row change is noise.
    const steady = volumeAnomaly(102, [100, 100, 100, 100, 101], opts);
    assert.ok(Math.abs(steady.z) > 3);
    assert.equal(steady.passed, true);
    assert.match(steady.message, /within max\(1, 10% of the mean\)/);
    // Zero history and zero rows: the 1-row floor.
    assert.equal(volumeAnomaly(1, [0, 0, 0, 0, 0], opts).passed, true);
    assert.equal(volumeAnomaly(2, [0, 0, 0, 0, 0], opts).passed, false);
    // A drop is an anomaly too.
    assert.equal(volumeAnomaly(0, [100, 102, 98, 101, 99], opts).passed, false);
  });
});

describe('compile errors and names', () => {
  before(async () => {
    await engine.run(`CREATE TABLE items AS SELECT * FROM (VALUES (1, 'x', DATE '2024-01-01')) AS t(id, label, day)`);
  });

  it('an unknown column is a ConfigError naming table, check and column, listing the columns', async () => {
    await assert.rejects(compile('items', [{ type: 'range', column: 'viewz', min: 0 }]), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, 'silver.items: check range_viewz: unknown column "viewz" (columns: id, label, day)');
      assert.equal(err.details['column'], 'viewz');
      return true;
    });
    await assert.rejects(
      compile('items', [{ type: 'unique', columns: ['id', 'nope'], name: 'pk' }]),
      /silver\.items: check pk: unknown column "nope"/,
    );
  });

  it('bounds and types that do not fit are ConfigErrors', async () => {
    await assert.rejects(
      compile('items', [{ type: 'range', column: 'id', min: 'abc' }]),
      /check range_id: min "abc" is not a number, but column id is INTEGER/,
    );
    await assert.rejects(
      compile('items', [{ type: 'range', column: 'day', max: 5 }]),
      /check range_day: max 5 is a number, but column day is DATE/,
    );
    await assert.rejects(
      compile('items', [{ type: 'range', column: 'day', min: 'yesterday' }]),
      /min "yesterday" is not an ISO date/,
    );
    await assert.rejects(compile('items', [{ type: 'range', column: 'id' }]), /check range_id: set min, max or both/);
    await assert.rejects(
      compile('items', [{ type: 'freshness', column: 'label', max_age: '1d' }]),
      /check freshness_label: column label is VARCHAR; freshness needs a DATE, TIMESTAMP or TIMESTAMPTZ column/,
    );
    await assert.rejects(
      compile('items', [{ type: 'accepted_values', column: 'id', values: ['one'] }]),
      /value 'one' is not a number, but column id is INTEGER/,
    );
    await assert.rejects(
      compile('items', [{ type: 'volume_anomaly', window: 3 }]),
      /window 3 is smaller than min_history 5/,
    );
    await assert.rejects(compile('items', [{ type: 'row_count' }]), /check row_count: set min, max or both/);
    await assert.rejects(
      compile('items', [
        { type: 'not_null', column: 'id', name: 'a' },
        { type: 'unique', column: 'id', name: 'a' },
      ]),
      /two checks are named "a"/,
    );
  });

  it('validateRowChecks turns SQL that does not bind into a ConfigError naming the check', async () => {
    const ok = await compile('items', [
      { type: 'expression', expression: 'id > 0' },
      { type: 'regex', column: 'label', pattern: '[a-z]+' },
    ]);
    await validateRowChecks(engine, 'items', ok.row);
    const typo = await compile('items', [{ type: 'expression', expression: 'idd > 0', name: 'positive' }]);
    await assert.rejects(validateRowChecks(engine, 'items', typo.row), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /^silver\.items: check positive \(expression\) is not valid SQL over the table: Binder Error: Referenced column "idd" not found/,
      );
      return true;
    });
    const badRegex = await compile('items', [{ type: 'regex', column: 'label', pattern: '(' }]);
    await assert.rejects(
      validateRowChecks(engine, 'items', badRegex.row),
      /check regex_label \(regex\) is not valid SQL over the table: .*missing \)/,
    );
  });

  it('default names: <type>_<columns>, suffixes on clashes, explicit names reserved first', async () => {
    const compiled = await compile('items', [
      { type: 'not_null', column: 'id' },
      { type: 'not_null', column: 'id' },
      { type: 'not_null', column: 'label', name: 'not_null_id_3' },
      { type: 'not_null', column: 'id' },
      { type: 'unique', columns: ['id', 'label'] },
      { type: 'schema', columns: { id: 'any' } },
    ]);
    assert.deepEqual(
      compiled.row.map((c) => c.name),
      ['not_null_id', 'not_null_id_2', 'not_null_id_3', 'not_null_id_4'],
    );
    assert.deepEqual(
      compiled.table.map((c) => [c.name, c.columns]),
      [
        ['unique_id_label', ['id', 'label']],
        ['schema', []],
      ],
    );
  });
});

describe('report', () => {
  const result = (over: Partial<CheckResult>): CheckResult => ({
    name: 'c',
    type: 'not_null',
    level: 'row',
    severity: 'error',
    mostly: 1,
    evaluated: 1000,
    failed: 0,
    percent: 0,
    passed: true,
    message: 'ok',
    samples: [],
    ...over,
  });

  it('status: failed with an error check breached, warned with only warn ones, else passed', () => {
    const at = new Date('2024-03-10T12:00:00Z');
    const ok = result({ name: 'ok' });
    const warn = result({ name: 'w', severity: 'warn', failed: 3, percent: 0.3, passed: false });
    const err = result({ name: 'e', failed: 3, percent: 0.3, passed: false });
    assert.equal(summarize('silver.t', 'r1', at, 1000, [ok]).status, 'passed');
    assert.equal(summarize('silver.t', 'r1', at, 1000, [ok, warn]).status, 'warned');
    assert.equal(summarize('silver.t', 'r1', at, 1000, [ok, warn, err]).status, 'failed');
    const passedWithFailures = result({ name: 'p', failed: 2, percent: 0.2, passed: true, mostly: 0.99 });
    const report = summarize('silver.t', 'r1', at, 1000, [passedWithFailures]);
    assert.equal(report.status, 'passed');
    assert.equal(report.at, '2024-03-10T12:00:00.000Z');
  });

  it('formatReport lists every check with its numbers and a status line', async () => {
    await engine.run(
      `CREATE TABLE rep AS SELECT i AS id, CASE WHEN i % 400 = 7 THEN -i ELSE i END AS views FROM range(1200) r(i)`,
    );
    const compiled = await compile('rep', [
      { type: 'range', column: 'views', min: 0 },
      { type: 'not_null', column: 'id', severity: 'warn' },
      { type: 'row_count', min: 2000, severity: 'warn' },
    ]);
    const rows = await evaluateRowChecks(engine, 'rep', compiled.row);
    const table = await evaluateTableChecks(engine, 'rep', compiled.table, {
      now: NOW,
      newRows: 1200,
      history: [],
      columns: await columnsOf('rep'),
    });
    const report = summarize('silver.rep', 'run-42', NOW, 1200, [...rows, ...table]);
    assert.equal(report.status, 'failed');
    const text = formatReport(report);
    const lines = text.split('\n');
    assert.equal(lines[0], 'silver.rep: quality of run run-42 at 2024-03-10T12:00:00.000Z (1,200 rows)');
    assert.match(text, /check\s+type\s+severity\s+evaluated\s+failed\s+%\s+result\s+samples/);
    const range = lines.find((l) => l.startsWith('range_views'));
    assert.ok(range, text);
    assert.match(
      range,
      /^range_views\s+range\s+error\s+1,200\s+3\s+0\.25%\s+FAIL\s+views = -(7|407|807) is below min 0/,
    );
    assert.match(text, /^not_null_id\s+not_null\s+warn\s+1,200\s+0\s+0\.00%\s+pass\s*$/m);
    assert.match(text, /^row_count\s+row_count\s+warn\s+1\s+1\s+100\.00%\s+WARN\s+1,200 rows$/m);
    assert.match(
      text,
      /^error\s+silver\.rep: range_views failed 3 of 1,200 rows \(0\.25%, mostly 1\): views = -\d+ is below min 0; views = -\d+ is below min 0; views = -\d+ is below min 0$/m,
    );
    assert.match(text, /^warn\s+silver\.rep: row_count failed: 1,200 rows, expected at least 2,000$/m);
    assert.equal(lines.at(-1), 'status: failed (3 checks: 1 passed, 1 failed, 1 warned)');
  });
});
