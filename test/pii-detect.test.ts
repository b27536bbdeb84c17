/**
 * PII detection against a real DuckDB: columns of e-mails, phones, Luhn-valid cards, SSNs and
 * IP addresses are found with exact counts and redacted examples; 16-digit numbers failing
 * Luhn, names, identifiers and mixed columns are not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../src/lake/engine.js';
import { lit } from '../src/lake/sql.js';
import { classifyValue, detectPii, luhnValid, redactValue } from '../src/transform/pii-detect.js';

let engine: Engine;
before(() => {
  engine = Engine.start({ threads: 2 });
});
after(async () => {
  await engine.close();
});

const EMAILS = [
  'john.doe@example.com',
  'a.b+tag@mail.example.org',
  'Zoe_99@sub.domain.co.uk',
  'x@y.io',
  'first-last@company.de',
];
const PHONES = ['+1 (555) 123-4567', '+44 20 7946 0958', '+14155552671', '(555) 123-4567', '555-123-4567'];
const CARDS = ['4111111111111111', '5500 0055 5555 5559', '378282246310005', '6011-1111-1111-1117', '4012888888881881'];
const NOT_CARDS = ['4111111111111112', '1234567812345679', '5500005555555550', '6011111111111110', '4012888888881882'];
const SSNS = ['123-45-6789', '987-65-4321', '001-01-0001', '555-12-3456', '078-05-1120'];
const IPS = ['192.168.1.10', '10.0.0.255', '2001:db8::8a2e:370:7334', '::1', '255.255.255.255'];
const NAMES = ['Alice Martin', 'José Ñúñez', 'Bob', 'Li Wei', 'Zoë Kowalski'];
const IDS = ['A-1001', 'A-1002', 'B-2001', 'B-2002', 'C-3001'];
const MIXED = ['john.doe@example.com', 'x@y.io', 'Alice', 'Bob', '555-123-4567'];
const BAD_IPS = ['256.1.1.1', '1.2.3', '300.1.1.1', '1.2.3.4.5', 'abc.def.ghi.jkl'];

async function table(name: string, columns: Record<string, readonly (string | null)[]>): Promise<void> {
  const names = Object.keys(columns);
  const n = Math.max(...Object.values(columns).map((v) => v.length));
  const rows = Array.from(
    { length: n },
    (_, i) => `(${names.map((c) => (columns[c]?.[i] == null ? 'NULL' : lit(columns[c]?.[i] as string))).join(', ')})`,
  );
  await engine.run(`CREATE OR REPLACE TABLE ${name} (${names.map((c) => `"${c}" VARCHAR`).join(', ')})`);
  await engine.run(`INSERT INTO ${name} VALUES ${rows.join(', ')}`);
}

describe('luhnValid', () => {
  it('accepts card numbers with a valid checksum and rejects the rest', () => {
    for (const c of CARDS) assert.equal(luhnValid(c.replace(/\D/g, '')), true, c);
    for (const c of NOT_CARDS) assert.equal(luhnValid(c), false, c);
    assert.equal(luhnValid('79927398713'), true);
    assert.equal(luhnValid('79927398710'), false);
    assert.equal(luhnValid(''), false);
    assert.equal(luhnValid('4111 1111 1111 1111'), false, 'digits only');
  });
});

describe('classifyValue', () => {
  it('names the kinds a value looks like', () => {
    assert.deepEqual(classifyValue('john.doe@example.com'), ['email']);
    assert.deepEqual(classifyValue('123-45-6789'), ['ssn']);
    assert.deepEqual(classifyValue('192.168.1.10'), ['ip']);
    assert.deepEqual(
      classifyValue('192.168.100.200'),
      ['ip', 'phone'],
      'an IP with 12 digits also looks like a dotted phone; column scoring prefers ip',
    );
    assert.deepEqual(classifyValue('4111111111111111'), ['card']);
    assert.deepEqual(classifyValue('4111 1111 1111 111'), ['phone'], '15 digits failing Luhn');
    assert.deepEqual(classifyValue('+14155552671'), ['phone']);
    assert.deepEqual(classifyValue('4155552671'), [], 'plain digits without + are identifiers, not phones');
    assert.deepEqual(classifyValue('1234567890.55'), [], 'plain decimal');
    assert.deepEqual(classifyValue('+1 (555 123-4567'), [], 'unbalanced parenthesis');
    assert.deepEqual(classifyValue('2024-01-15'), []);
    assert.deepEqual(classifyValue('not an email@'), []);
    for (const ip of BAD_IPS) assert.deepEqual(classifyValue(ip), [], ip);
  });

  it('redacts examples the way the redact mask does', () => {
    assert.equal(redactValue('John.Doe@Example.com 42'), 'Xxxx.Xxx@Xxxxxxx.xxx 99');
    assert.equal(redactValue('José ǅemal 日本 ٣'), 'Xxxx Xxxxx xx 9');
  });
});

describe('detectPii', () => {
  it('reports each PII column with its kind, counts and redacted examples', async () => {
    await table('people', {
      email: EMAILS,
      phone: PHONES,
      card: CARDS,
      not_card: NOT_CARDS,
      ssn: SSNS,
      ip: IPS,
      name: NAMES,
      id: IDS,
      mixed: MIXED,
      bad_ip: BAD_IPS,
    });
    const columns = await engine.describe('SELECT * FROM people');
    const findings = await detectPii(engine, 'people', [...columns, { name: 'n', type: 'BIGINT' }]);
    assert.deepEqual(findings, [
      {
        column: 'email',
        kind: 'email',
        matched: 5,
        sampled: 5,
        examples: ['Xxx_99@xxx.xxxxxx.xx.xx', 'x.x+xxx@xxxx.xxxxxxx.xxx', 'x@x.xx'],
      },
      {
        column: 'phone',
        kind: 'phone',
        matched: 5,
        sampled: 5,
        examples: ['(999) 999-9999', '+9 (999) 999-9999', '+99 99 9999 9999'],
      },
      {
        column: 'card',
        kind: 'card',
        matched: 5,
        sampled: 5,
        examples: ['9999 9999 9999 9999', '9999-9999-9999-9999', '999999999999999'],
      },
      { column: 'ssn', kind: 'ssn', matched: 5, sampled: 5, examples: ['999-99-9999'] },
      { column: 'ip', kind: 'ip', matched: 5, sampled: 5, examples: ['99.9.9.999', '999.999.9.99', '999.999.999.999'] },
    ]);
  });

  it('uses the threshold, skips nulls and blanks, and reads a query relation', async () => {
    // 4 e-mails of 5 non-empty values: 0.8 reaches the default threshold, 0.9 does not.
    await table('contacts', {
      contact: ['a@example.com', null, 'b@example.com', '  ', 'c@example.com', '', 'd@example.com', 'Bob'],
    });
    const columns = [{ name: 'contact', type: 'VARCHAR' }];
    assert.deepEqual(await detectPii(engine, 'SELECT * FROM contacts', columns), [
      { column: 'contact', kind: 'email', matched: 4, sampled: 5, examples: ['x@xxxxxxx.xxx'] },
    ]);
    assert.deepEqual(await detectPii(engine, 'SELECT * FROM contacts', columns, { threshold: 0.9 }), []);
  });

  it('a column of Luhn-valid numbers written as phones is a card; Luhn-failing ones are phones', async () => {
    // 15 digits with spaces: phone-shaped; those passing Luhn are cards (card wins the tie).
    await table('numbers', {
      amex: ['3782 822463 10005', '3714 496353 98431', '3787 344936 71000'],
      other: ['3782 822463 10006', '3714 496353 98432', '3787 344936 71001'],
    });
    const findings = await detectPii(engine, 'numbers', [
      { name: 'amex', type: 'VARCHAR' },
      { name: 'other', type: 'VARCHAR' },
    ]);
    assert.deepEqual(
      findings.map((f) => [f.column, f.kind, f.matched]),
      [
        ['amex', 'card', 3],
        ['other', 'phone', 3],
      ],
    );
  });

  it('samples at most `sample` values per column, cheaply on a large table', async () => {
    await engine.run(`CREATE OR REPLACE TABLE big AS
      SELECT 'user' || i || '@example.com' AS email,
             CASE WHEN i >= 4990000 THEN '10.0.' || (i % 250) || '.' || (i % 200) END AS sparse_ip,
             'name ' || i AS name
      FROM range(5000000) r(i)`);
    const columns = await engine.describe('SELECT * FROM big');
    let elapsed = Infinity;
    let findings: Awaited<ReturnType<typeof detectPii>> = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      findings = await detectPii(engine, 'big', columns, { sample: 200 });
      elapsed = Math.min(elapsed, performance.now() - started);
    }
    assert.deepEqual(
      findings.map((f) => [f.column, f.kind, f.matched, f.sampled]),
      [
        ['email', 'email', 200, 200],
        ['sparse_ip', 'ip', 200, 200],
      ],
    );
    assert.ok(elapsed < 2000, `detectPii over 5M rows took ${elapsed.toFixed(0)} ms`);
    console.log(`# detectPii over 5M rows: ${elapsed.toFixed(0)} ms`);
  });
});
