/**
 * Silver standardization SQL builders against a real DuckDB: naming, trim / empty / case / map,
 * typed conversions with quarantine conditions and reasons, and UTC timestamps that do not depend
 * on the session TimeZone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SilverColumnConfig } from '../src/config/silver.js';
import { ConfigError } from '../src/core/errors.js';
import { Engine } from '../src/lake/engine.js';
import { lit } from '../src/lake/sql.js';
import { outputNames, snakeCase } from '../src/transform/naming.js';
import { duckdbTimeZones, standardizeColumn, type StandardizeDefaults } from '../src/transform/standardize.js';

const DEFAULTS: StandardizeDefaults = { trim: true, emptyAsNull: false, timezone: 'UTC' };

let engine: Engine;
before(async () => {
  engine = Engine.start({ threads: 2 });
  // Far from UTC and from every zone used below: results must not depend on it.
  await engine.run("SET TimeZone = 'Asia/Tokyo'");
});
after(async () => {
  await engine.close();
});

interface Out {
  out: unknown;
  fail: boolean;
  reason: string | null;
  off?: string | null;
}

/** Timestamps shown as UTC ISO text (independent of the session zone), everything else as DuckDB returns it. */
function show(expr: string, type: string): string {
  return type === 'TIMESTAMP WITH TIME ZONE' ? `strftime(timezone('UTC', ${expr}), '%Y-%m-%dT%H:%M:%S.%fZ')` : expr;
}

/** Runs one standardized column over values (as `inputType`), returning value, failure and reason per row. */
async function apply(
  values: readonly (string | null)[],
  inputType: string,
  cfg: SilverColumnConfig | undefined,
  defaults: StandardizeDefaults = DEFAULTS,
  name = 'c',
): Promise<Out[]> {
  const s = standardizeColumn(name, 'b.v', inputType, cfg, defaults);
  const rows = values.map((v, i) => `(${i}, ${v === null ? 'NULL' : lit(v)})`).join(', ');
  const input = `(SELECT i, CAST(v AS ${inputType}) AS v FROM (VALUES ${rows}) t(i, v))`;
  const described = await engine.describe(`SELECT ${s.expr} AS out FROM ${input} AS b`);
  assert.equal(described[0]?.type, s.type, `declared type of ${s.expr}`);
  const cols = [
    `${show(s.expr, s.type)} AS out`,
    `coalesce(${s.failSql ?? 'false'}, false) AS fail`,
    `CASE WHEN ${s.failSql ?? 'false'} THEN ${s.reasonSql ?? 'NULL'} END AS reason`,
    ...(s.offset ? [`${s.offset.expr} AS off`] : []),
  ];
  const out = await engine.all(`SELECT ${cols.join(', ')} FROM ${input} AS b ORDER BY i`);
  return out.map((r) => {
    const o: Out = { out: r['out'], fail: r['fail'] as boolean, reason: r['reason'] as string | null };
    if (s.offset) o.off = r['off'] as string | null;
    return o;
  });
}

const values = (rows: Out[]) => rows.map((r) => r.out);

describe('naming', () => {
  it('snake_case', () => {
    const cases: [string, string][] = [
      ['userId', 'user_id'],
      ['HTTPStatus', 'http_status'],
      ['First Name', 'first_name'],
      ['already_snake', 'already_snake'],
      ['a.b-c', 'a_b_c'],
      ['2fa', '_2fa'],
      ['userID', 'user_id'],
      ['getHTTPResponseCode', 'get_http_response_code'],
      ['ISO8601Date', 'iso8601_date'],
      ['address2Line', 'address2_line'],
      ['__meta__', 'meta'],
      ['a__b', 'a_b'],
      ['  spaced  out ', 'spaced_out'],
      ['Straße', 'straße'],
      ['ID', 'id'],
      ['!!!', 'column'],
      ['', 'column'],
    ];
    for (const [input, want] of cases) assert.equal(snakeCase(input), want, JSON.stringify(input));
  });

  it('output names are unique, case-insensitively, in input order', () => {
    assert.deepEqual(outputNames(['userId', 'user_id', 'UserID', 'user_id_2'], 'snake_case'), [
      'user_id',
      'user_id_3',
      'user_id_4',
      'user_id_2',
    ]);
    assert.deepEqual(outputNames(['Id', 'id', 'name'], 'keep'), ['Id', 'id_2', 'name']);
    assert.deepEqual(outputNames(['First Name', 'first_name'], 'snake_case'), ['first_name', 'first_name_2']);
  });
});

describe('text standardization', () => {
  it('trims by default and emits the simplest expression', async () => {
    assert.equal(standardizeColumn('c', 'x', 'VARCHAR', undefined, DEFAULTS).expr, 'trim(x)');
    assert.equal(standardizeColumn('c', 'x', 'VARCHAR', undefined, { ...DEFAULTS, trim: false }).expr, 'x');
    assert.equal(standardizeColumn('c', 'x', 'BIGINT', undefined, DEFAULTS).expr, 'x');
    assert.equal(standardizeColumn('c', 'x', 'VARCHAR', { trim: false }, DEFAULTS).expr, 'x');
    assert.deepEqual(values(await apply(['  a b  ', '', ' ', null], 'VARCHAR', undefined)), ['a b', '', '', null]);
  });

  it('empty as null, case', async () => {
    assert.deepEqual(values(await apply([' x ', '', '   ', null], 'VARCHAR', { empty_as_null: true })), [
      'x',
      null,
      null,
      null,
    ]);
    assert.deepEqual(values(await apply([' x ', ''], 'VARCHAR', undefined, { ...DEFAULTS, emptyAsNull: true })), [
      'x',
      null,
    ]);
    assert.deepEqual(values(await apply([' MiXed '], 'VARCHAR', { case: 'lower' })), ['mixed']);
    assert.deepEqual(values(await apply([' MiXed '], 'VARCHAR', { case: 'upper', trim: false })), [' MIXED ']);
    // non-text inputs: trim / empty / case do not apply
    assert.deepEqual(values(await apply(['12'], 'INTEGER', { case: 'upper', empty_as_null: true })), [12]);
  });

  it('map: keys compared after trim and case; unmapped values kept; null values', async () => {
    const cfg: SilverColumnConfig = { map: { A: 'active', I: 'inactive', X: null } };
    assert.deepEqual(values(await apply([' A ', 'I', 'X', 'P', null], 'VARCHAR', cfg)), [
      'active',
      'inactive',
      null,
      'P',
      null,
    ]);
    // with case: lower the keys are folded too
    assert.deepEqual(
      values(await apply([' a ', 'I', 'Pending'], 'VARCHAR', { case: 'lower', map: { A: 'active', I: 'inactive' } })),
      ['active', 'inactive', 'pending'],
    );
    const s = standardizeColumn('c', 'x', 'VARCHAR', cfg, DEFAULTS);
    assert.equal(
      s.expr,
      "CASE trim(x) WHEN 'A' THEN 'active' WHEN 'I' THEN 'inactive' WHEN 'X' THEN NULL ELSE trim(x) END",
    );
    assert.equal(s.type, 'VARCHAR');
    assert.equal(s.failSql, undefined);
  });

  it('map with number or boolean values gives that type; unconvertible leftovers fail', async () => {
    const rows = await apply(
      ['low', 'high', 'unknown', '7'],
      'VARCHAR',
      { map: { low: 1, high: 3 } },
      DEFAULTS,
      'level',
    );
    assert.deepEqual(rows, [
      { out: '1', fail: false, reason: null },
      { out: '3', fail: false, reason: null },
      { out: null, fail: true, reason: 'level: "unknown" is not a valid BIGINT' },
      { out: '7', fail: false, reason: null },
    ]);
    assert.deepEqual(values(await apply(['Y', 'N', null], 'VARCHAR', { map: { Y: true, N: false } })), [
      true,
      false,
      null,
    ]);
    assert.deepEqual(values(await apply(['0.5', 'half'], 'VARCHAR', { map: { half: 0.5 } })), [0.5, 0.5]);
  });

  it('map on non-text inputs: typed lookup', async () => {
    const s = standardizeColumn('c', 'x', 'INTEGER', { map: { '0': 'inactive', '1': 'active' } }, DEFAULTS);
    assert.equal(s.expr, "CASE x WHEN 0 THEN 'inactive' WHEN 1 THEN 'active' ELSE CAST(x AS VARCHAR) END");
    assert.deepEqual(
      values(await apply(['0', '1', '2', null], 'INTEGER', { map: { '0': 'inactive', '1': 'active' } })),
      ['inactive', 'active', '2', null],
    );
    // sentinel to null keeps the input type
    assert.deepEqual(values(await apply(['-1', '5'], 'INTEGER', { map: { '-1': null } })), [null, 5]);
    assert.deepEqual(values(await apply(['true', 'false'], 'BOOLEAN', { map: { true: 'yes', false: 'no' } })), [
      'yes',
      'no',
    ]);
  });

  it('JSON scalars are read as text when mapped or converted', async () => {
    assert.deepEqual(values(await apply(['"A"', '"B"', '12'], 'JSON', { map: { A: 'active' } })), [
      'active',
      'B',
      '12',
    ]);
    assert.deepEqual(values(await apply(['12', '"13"', '{"a":1}'], 'JSON', { type: 'INTEGER' })), [12, 13, null]);
    assert.deepEqual(values(await apply(['{"a": 1}'], 'JSON', undefined)), ['{"a": 1}']);
  });
});

describe('typed conversions', () => {
  it('TRY_CAST with failures and exact reasons', async () => {
    const rows = await apply([' 12.345 ', 'abc', '', null], 'VARCHAR', { type: 'DECIMAL(12,2)' }, DEFAULTS, 'amount');
    assert.deepEqual(rows, [
      { out: '12.35', fail: false, reason: null },
      { out: null, fail: true, reason: 'amount: "abc" is not a valid DECIMAL(12,2)' },
      { out: null, fail: true, reason: 'amount: "" is not a valid DECIMAL(12,2)' },
      { out: null, fail: false, reason: null },
    ]);
    // with empty_as_null an empty value is missing, not invalid
    assert.deepEqual(await apply(['', '3'], 'VARCHAR', { type: 'int', empty_as_null: true }), [
      { out: null, fail: false, reason: null },
      { out: 3, fail: false, reason: null },
    ]);
    assert.deepEqual(values(await apply(['true', 'no', 'T'], 'VARCHAR', { type: 'BOOLEAN' })), [true, false, true]);
  });

  it('casts between types: widening cannot fail, narrowing can', async () => {
    const widen = standardizeColumn('n', 'x', 'INTEGER', { type: 'BIGINT' }, DEFAULTS);
    assert.equal(widen.expr, 'CAST(x AS BIGINT)');
    assert.equal(widen.failSql, undefined);
    assert.equal(standardizeColumn('n', 'x', 'BIGINT', { type: 'int8' }, DEFAULTS).expr, 'x');
    const rows = await apply(['300', '5'], 'INTEGER', { type: 'TINYINT' }, DEFAULTS, 'n');
    assert.deepEqual(rows, [
      { out: null, fail: true, reason: 'n: "300" is not a valid TINYINT' },
      { out: 5, fail: false, reason: null },
    ]);
  });

  it('dates with a format, including impossible dates', async () => {
    const rows = await apply(
      ['10/03/2024', '31/02/2024', '2024-03-10', null],
      'VARCHAR',
      { type: 'DATE', format: '%d/%m/%Y' },
      DEFAULTS,
      'created_at',
    );
    assert.deepEqual(rows, [
      { out: '2024-03-10', fail: false, reason: null },
      { out: null, fail: true, reason: 'created_at: "31/02/2024" does not match format %d/%m/%Y' },
      { out: null, fail: true, reason: 'created_at: "2024-03-10" does not match format %d/%m/%Y' },
      { out: null, fail: false, reason: null },
    ]);
    assert.deepEqual(values(await apply(['2024-03-10', 'soon'], 'VARCHAR', { type: 'DATE' })), ['2024-03-10', null]);
    // numbers need a format to become dates; with one they parse as text
    assert.deepEqual(values(await apply(['20240131'], 'BIGINT', { type: 'DATE', format: '%Y%m%d' })), ['2024-01-31']);
    assert.throws(
      () => standardizeColumn('d', 'x', 'BIGINT', { type: 'DATE' }, DEFAULTS),
      (e: unknown) =>
        e instanceof ConfigError && /columns\.d: a BIGINT column cannot become DATE without a format/.test(e.message),
    );
  });

  it('format without a temporal type is a config error', () => {
    assert.throws(
      () => standardizeColumn('x', 'x', 'VARCHAR', { format: '%Y' }, DEFAULTS),
      (e: unknown) => e instanceof ConfigError && /columns\.x\.format needs type DATE/.test(e.message),
    );
    assert.throws(
      () => standardizeColumn('x', 'x', 'VARCHAR', { type: 'INTEGER', format: '%Y' }, DEFAULTS),
      ConfigError,
    );
    assert.throws(
      () => standardizeColumn('x', 'x', 'VARCHAR', { type: 'INTEGER); DROP TABLE t; --' }, DEFAULTS),
      ConfigError,
    );
  });

  it('ISO-looking text without a declared type stays VARCHAR', async () => {
    const s = standardizeColumn('c', 'x', 'VARCHAR', undefined, DEFAULTS);
    assert.equal(s.type, 'VARCHAR');
    assert.deepEqual(values(await apply(['2024-03-10T09:00:00Z'], 'VARCHAR', undefined)), ['2024-03-10T09:00:00Z']);
  });
});

describe('timestamps', () => {
  const NY = 'America/New_York';

  it('naive text in America/New_York across the DST change → exact UTC', async () => {
    const rows = await apply(
      ['2024-03-10 01:30:00', '2024-03-10T03:30:00', '2024-01-15 12:00:00.250', '2024-07-01', 'not a time'],
      'VARCHAR',
      { type: 'TIMESTAMP', timezone: NY },
      DEFAULTS,
      'ts',
    );
    assert.deepEqual(rows, [
      { out: '2024-03-10T06:30:00.000000Z', fail: false, reason: null },
      { out: '2024-03-10T07:30:00.000000Z', fail: false, reason: null },
      { out: '2024-01-15T17:00:00.250000Z', fail: false, reason: null },
      { out: '2024-07-01T04:00:00.000000Z', fail: false, reason: null },
      { out: null, fail: true, reason: 'ts: "not a time" is not a valid TIMESTAMP' },
    ]);
  });

  it('text with offsets is that instant, in any declared timestamp type and zone', async () => {
    const input = [
      '2024-03-10T09:00:00+02:00',
      '2024-03-10T09:00:00Z',
      '2024-03-10 09:00:00-0500',
      '2024-03-10 09:00:00.5-05',
      '2024-03-10 09:00:00 UTC',
    ];
    const want = [
      '2024-03-10T07:00:00.000000Z',
      '2024-03-10T09:00:00.000000Z',
      '2024-03-10T14:00:00.000000Z',
      '2024-03-10T14:00:00.500000Z',
      '2024-03-10T09:00:00.000000Z',
    ];
    for (const type of ['TIMESTAMPTZ', 'TIMESTAMP']) {
      for (const timezone of [NY, 'UTC', 'Asia/Tokyo']) {
        assert.deepEqual(values(await apply(input, 'VARCHAR', { type, timezone })), want, `${type} in ${timezone}`);
      }
    }
  });

  it('the session TimeZone does not change results (fast path when it equals the column zone)', async () => {
    const input = ['2024-03-10 01:30:00', '2024-03-10 03:30:00', '2024-03-10T09:00:00+02:00', '2024-11-03 01:30:00'];
    // 2024-11-03 01:30 happens twice in New York: ICU takes the later one (EST, -05:00)
    const want = [
      '2024-03-10T06:30:00.000000Z',
      '2024-03-10T07:30:00.000000Z',
      '2024-03-10T07:00:00.000000Z',
      '2024-11-03T06:30:00.000000Z',
    ];
    try {
      for (const session of ['Asia/Tokyo', NY, 'UTC', 'Europe/Paris']) {
        await engine.run(`SET TimeZone = ${lit(session)}`);
        assert.deepEqual(
          values(await apply(input, 'VARCHAR', { type: 'TIMESTAMPTZ', timezone: NY })),
          want,
          `session ${session}`,
        );
        assert.deepEqual(
          values(await apply(['2024-03-10 01:30:00', '2024-03-10T09:00:00+02:00'], 'VARCHAR', { type: 'TIMESTAMPTZ' })),
          ['2024-03-10T01:30:00.000000Z', '2024-03-10T07:00:00.000000Z'],
          `UTC column, session ${session}`,
        );
      }
    } finally {
      await engine.run("SET TimeZone = 'Asia/Tokyo'");
    }
  });

  it('when the session zone is the column zone the offset test is folded away', async () => {
    const s = standardizeColumn('ts', 'b.v', 'VARCHAR', { type: 'TIMESTAMPTZ', timezone: NY }, DEFAULTS);
    const plan = async () =>
      JSON.stringify(
        await engine.all(`EXPLAIN SELECT ${s.expr} FROM (SELECT CAST(range AS VARCHAR) AS v FROM range(3)) b`),
      );
    try {
      assert.match(await plan(), /regexp/);
      await engine.run(`SET TimeZone = ${lit(NY)}`);
      assert.doesNotMatch(await plan(), /regexp|CASE/);
    } finally {
      await engine.run("SET TimeZone = 'Asia/Tokyo'");
    }
  });

  it('formats: naive formats read in the zone, %z formats carry the offset', async () => {
    assert.deepEqual(
      await apply(
        ['10/03/2024 01:30', '10/03/2024 03:30', '31/02/2024 10:00'],
        'VARCHAR',
        { type: 'TIMESTAMP', format: '%d/%m/%Y %H:%M', timezone: NY },
        DEFAULTS,
        'created_at',
      ),
      [
        { out: '2024-03-10T06:30:00.000000Z', fail: false, reason: null },
        { out: '2024-03-10T07:30:00.000000Z', fail: false, reason: null },
        { out: null, fail: true, reason: 'created_at: "31/02/2024 10:00" does not match format %d/%m/%Y %H:%M' },
      ],
    );
    assert.deepEqual(
      values(
        await apply(['10/03/2024 09:00 +0200', '10/03/2024 09:00 -05:30'], 'VARCHAR', {
          type: 'TIMESTAMPTZ',
          format: '%d/%m/%Y %H:%M %z',
          timezone: NY,
        }),
      ),
      ['2024-03-10T07:00:00.000000Z', '2024-03-10T14:30:00.000000Z'],
    );
  });

  it('typed inputs: naive TIMESTAMP → UTC in the zone; TIMESTAMPTZ unchanged', async () => {
    const naive = standardizeColumn('t', 'x', 'TIMESTAMP', undefined, DEFAULTS);
    assert.equal(naive.type, 'TIMESTAMP WITH TIME ZONE');
    assert.equal(naive.expr, 'make_timestamptz(epoch_us(x))');
    assert.equal(naive.failSql, undefined);
    assert.deepEqual(
      values(
        await apply(['2024-03-10 01:30:00', '2024-03-10 03:30:00'], 'TIMESTAMP', undefined, {
          ...DEFAULTS,
          timezone: NY,
        }),
      ),
      ['2024-03-10T06:30:00.000000Z', '2024-03-10T07:30:00.000000Z'],
    );
    assert.deepEqual(values(await apply(['2024-03-10 01:30:00'], 'TIMESTAMP', undefined)), [
      '2024-03-10T01:30:00.000000Z',
    ]);
    const tz = standardizeColumn('t', 'x', 'TIMESTAMP WITH TIME ZONE', { type: 'TIMESTAMP' }, DEFAULTS);
    assert.equal(tz.expr, 'x');
    assert.deepEqual(values(await apply(['2024-03-10 09:00:00+02'], 'TIMESTAMPTZ', undefined)), [
      '2024-03-10T07:00:00.000000Z',
    ]);
    // an instant's date is its date in the column zone
    assert.deepEqual(values(await apply(['2024-03-10 03:00:00+00'], 'TIMESTAMPTZ', { type: 'DATE', timezone: NY })), [
      '2024-03-09',
    ]);
    // and as text it is printed in UTC whatever the session zone
    assert.deepEqual(values(await apply(['2024-03-10 09:00:00+02'], 'TIMESTAMPTZ', { type: 'VARCHAR' })), [
      '2024-03-10 07:00:00+00',
    ]);
  });

  it('keep_offset: the written offset, or the zone offset at that instant', async () => {
    const rows = await apply(
      [
        '2024-03-10T09:00:00+02:00',
        '2024-03-10T09:00:00Z',
        '2024-03-10 09:00:00-0530',
        '2024-01-15 12:00:00',
        '2024-07-01 12:00:00',
        null,
        'bad',
      ],
      'VARCHAR',
      { type: 'TIMESTAMPTZ', timezone: NY, keep_offset: true },
      DEFAULTS,
      'ts',
    );
    assert.deepEqual(
      rows.map((r) => [r.out, r.off]),
      [
        ['2024-03-10T07:00:00.000000Z', '+02:00'],
        ['2024-03-10T09:00:00.000000Z', '+00:00'],
        ['2024-03-10T14:30:00.000000Z', '-05:30'],
        ['2024-01-15T17:00:00.000000Z', '-05:00'],
        ['2024-07-01T16:00:00.000000Z', '-04:00'],
        [null, null],
        [null, null],
      ],
    );
    const s = standardizeColumn('ts', 'x', 'VARCHAR', { type: 'TIMESTAMPTZ', keep_offset: true }, DEFAULTS);
    assert.equal(s.offset?.name, 'ts_offset');
    // naive values in UTC, typed inputs, %z formats
    assert.deepEqual(
      (await apply(['2024-01-15 12:00:00'], 'VARCHAR', { type: 'TIMESTAMP', keep_offset: true })).map((r) => r.off),
      ['+00:00'],
    );
    assert.deepEqual(
      (
        await apply(['2024-01-15 12:00:00', '2024-07-01 12:00:00'], 'TIMESTAMP', {
          keep_offset: true,
          timezone: 'Europe/Paris',
        })
      ).map((r) => r.off),
      ['+01:00', '+02:00'],
    );
    assert.deepEqual(
      (await apply(['2024-01-15 12:00:00+05'], 'TIMESTAMPTZ', { keep_offset: true })).map((r) => r.off),
      ['+00:00'],
    );
    assert.deepEqual(
      (
        await apply(['10-03-2024 09:00 +0200', '10-03-2024 09:00 -0330'], 'VARCHAR', {
          type: 'TIMESTAMPTZ',
          format: '%d-%m-%Y %H:%M %z',
          keep_offset: true,
        })
      ).map((r) => [r.out, r.off]),
      [
        ['2024-03-10T07:00:00.000000Z', '+02:00'],
        ['2024-03-10T12:30:00.000000Z', '-03:30'],
      ],
    );
    assert.deepEqual(
      (
        await apply(['10-03-2024 01:30', '10-03-2024 09:00'], 'VARCHAR', {
          type: 'TIMESTAMP',
          format: '%d-%m-%Y %H:%M',
          timezone: NY,
          keep_offset: true,
        })
      ).map((r) => r.off),
      ['-05:00', '-04:00'],
    );
    assert.throws(
      () => standardizeColumn('n', 'x', 'VARCHAR', { type: 'INTEGER', keep_offset: true }, DEFAULTS),
      (e: unknown) => e instanceof ConfigError && /columns\.n\.keep_offset applies to timestamps/.test(e.message),
    );
  });

  it('invalid zones are config errors naming the column', async () => {
    assert.throws(
      () => standardizeColumn('created_at', 'x', 'VARCHAR', { type: 'TIMESTAMP', timezone: 'Mars/Olympus' }, DEFAULTS),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith('columns.created_at.timezone: unknown time zone "Mars/Olympus"'),
    );
    assert.throws(
      () =>
        standardizeColumn('created_at', 'x', 'VARCHAR', { type: 'TIMESTAMP' }, { ...DEFAULTS, timezone: 'Nowhere' }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith('timezone (used by column created_at): unknown time zone "Nowhere"'),
    );
    // the table zone only matters to columns that use it
    assert.equal(
      standardizeColumn('n', 'x', 'VARCHAR', undefined, { ...DEFAULTS, timezone: 'Nowhere' }).expr,
      'trim(x)',
    );
    // the zones accepted here are zones DuckDB knows
    const zones = await duckdbTimeZones(engine);
    for (const z of ['America/New_York', 'Europe/Paris', 'Asia/Kolkata', 'Etc/GMT-2', 'UTC'])
      assert.ok(zones.has(z), z);
    // checked against DuckDB's list when given
    assert.equal(
      standardizeColumn('t', 'x', 'VARCHAR', { type: 'TIMESTAMP', timezone: 'Europe/Paris' }, { ...DEFAULTS, zones })
        .type,
      'TIMESTAMP WITH TIME ZONE',
    );
    assert.throws(
      () =>
        standardizeColumn(
          't',
          'x',
          'VARCHAR',
          { type: 'TIMESTAMP', timezone: 'Europe/Paris' },
          { ...DEFAULTS, zones: new Set(['UTC']) },
        ),
      ConfigError,
    );
  });
});
