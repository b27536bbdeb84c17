/**
 * Issue 14, silver items: a value that does not convert follows the column's contract instead
 * of failing the build (8); `mostly` thresholds take min_rows and are judged over the table, so
 * a full build and incremental builds of the same rows reach the same verdict (8); quarantine
 * rows of masked columns hold no clear PII anywhere in the project (15c); a Luhn-valid card
 * number in an undeclared column fails the build by default, naming table, column and detector
 * but never the value (15d).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { replayQuarantine } from '../src/transform/silver.js';
import { newId } from '../src/core/ids.js';
import { projectConfig, runCli, TestProject, type StreamYaml } from './support/project.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const SALT = 'hardening-salt-0123456789';

async function silverProject(
  streams: Record<string, StreamYaml>,
  silver: Record<string, unknown>,
  privacy: Record<string, unknown> = {},
  raw = false,
): Promise<TestProject> {
  const p = await TestProject.create(streams, { raw });
  cleanups.push(() => p.dispose());
  const config = projectConfig(streams, { raw });
  const pipelines = config['pipelines'] as Record<string, Record<string, unknown>>;
  (pipelines['p'] as Record<string, unknown>)['silver'] = silver;
  config['privacy'] = { salt: SALT, ...privacy };
  await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
  await p.reopen();
  return p;
}

const ndjson = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

interface ReportCheck {
  name: string;
  evaluated: number;
  failed: number;
  passed: boolean;
  total?: { evaluated: number; failed: number };
}

async function latestReport(p: TestProject, table: string): Promise<{ status: string; checks: ReportCheck[] }> {
  const [r] = await (await p.lake()).catalog.listQualityReports(table, { limit: 1 });
  assert.ok(r, `a quality report of ${table}`);
  return { status: r.status, checks: (r.report['checks'] ?? []) as ReportCheck[] };
}

describe('silver: values that do not convert follow the column contract (issue 14, item 8)', () => {
  const rows = Array.from({ length: 10 }, (_, i) => ({ id: i + 1, amount: i === 3 ? 'abc' : `${i + 1}.50` }));

  for (const contract of [undefined, 'discard_row', 'freeze'] as const) {
    it(`contract ${contract ?? '(default evolve)'}: the row goes to quarantine with a reason naming column and value; the build succeeds`, async () => {
      const table: Record<string, unknown> = {
        from: 'orders',
        primary_key: ['id'],
        columns: { amount: { type: 'DECIMAL(12,2)' } },
      };
      if (contract) table['contract'] = contract;
      const p = await silverProject({ orders: { path: 'in/*.ndjson' } }, { orders: table }, { detect: 'off' });
      await p.write('in/a.ndjson', ndjson(rows));
      const r = await p.run();
      assert.equal(r.status, 'succeeded', JSON.stringify(r.errors));
      assert.equal(r.stats.streams['silver.orders']?.rows, 9);
      assert.equal(r.stats.streams['silver.orders']?.quarantined, 1);
      assert.equal(await p.count('silver.orders'), 9);
      assert.equal(await p.num('select sum(amount) from silver.orders'), 55 - 4 + 9 * 0.5);
      const q = await p.rows('select id, amount, _dip_check, _dip_reason from quarantine.silver__orders');
      assert.deepEqual(
        q.map((x) => [Number(x['id']), x['amount'], x['_dip_check'], x['_dip_reason']]),
        [[4, 'abc', 'type_amount', 'type_amount: amount: "abc" is not a valid DECIMAL(12,2)']],
      );
    });
  }

  it('discard_value (per column): the value becomes null, the row lands, the report counts it and a warning names the column', async () => {
    const p = await silverProject(
      { orders: { path: 'in/*.ndjson' } },
      {
        orders: {
          from: 'orders',
          primary_key: ['id'],
          columns: { amount: { type: 'DECIMAL(12,2)', contract: 'discard_value' } },
        },
      },
      { detect: 'off' },
    );
    await p.write('in/a.ndjson', ndjson(rows));
    const warnings: string[] = [];
    const r = await p.run('p', {
      onEvent: (e) => (e.type === 'silver_warning' ? warnings.push(e.message) : undefined),
    });
    assert.equal(r.status, 'succeeded', JSON.stringify(r.errors));
    assert.equal(await p.count('silver.orders'), 10);
    assert.equal(await p.num('select count(*) from silver.orders where amount is null'), 1);
    assert.equal(await p.num('select id from silver.orders where amount is null'), 4);
    assert.equal(r.stats.streams['silver.orders']?.quarantined, 0);
    const report = await latestReport(p, 'silver.orders');
    const conv = report.checks.find((c) => c.name === 'type_amount');
    assert.deepEqual([conv?.evaluated, conv?.failed, conv?.passed], [10, 1, true]);
    assert.deepEqual(warnings, [
      '1 value of amount did not convert and became null: amount: "abc" is not a valid DECIMAL(12,2) (set to null: contract discard_value)',
    ]);
  });
});

describe('silver: mostly over the table, min_rows (issue 14, item 8)', () => {
  // 100 good rows, then 6 rows of which 5 fail range_qty; then 6 more, all failing.
  const good = Array.from({ length: 100 }, (_, i) => ({ id: i + 1, qty: 1 + (i % 7) }));
  const second = Array.from({ length: 6 }, (_, i) => ({ id: 101 + i, qty: i === 0 ? 3 : -1 }));
  const third = Array.from({ length: 6 }, (_, i) => ({ id: 107 + i, qty: -2 }));
  const table = (check: Record<string, unknown>) => ({
    items: {
      from: 'items',
      primary_key: ['id'],
      checks: [{ type: 'range', column: 'qty', min: 0, mostly: 0.95, ...check }],
    },
  });

  async function project(check: Record<string, unknown> = {}): Promise<TestProject> {
    return silverProject({ items: { path: 'in/*.ndjson' } }, table(check), { detect: 'off' });
  }

  it('a full build and incremental builds of the same rows reach the same verdict, rows and quarantine (scope table, the default)', async () => {
    const full = await project();
    await full.write('in/1.ndjson', ndjson(good));
    await full.write('in/2.ndjson', ndjson(second));
    const f = await full.run();
    assert.equal(f.status, 'succeeded', JSON.stringify(f.errors));

    const inc = await project();
    await inc.write('in/1.ndjson', ndjson(good));
    assert.equal((await inc.run()).status, 'succeeded');
    await inc.write('in/2.ndjson', ndjson(second));
    const events: string[] = [];
    const i2 = await inc.run('p', { onEvent: (e) => (e.type === 'silver_started' ? events.push(e.mode) : undefined) });
    assert.deepEqual(events, ['incremental']);
    assert.equal(i2.status, 'succeeded', JSON.stringify(i2.errors));

    for (const p of [full, inc]) {
      assert.equal(await p.count('silver.items'), 101);
      assert.equal(await p.count('quarantine.silver__items'), 5);
      assert.deepEqual(
        (await p.rows('select id from quarantine.silver__items order by id')).map((r) => Number(r['id'])),
        [102, 103, 104, 105, 106],
      );
      const check = (await latestReport(p, 'silver.items')).checks.find((c) => c.name === 'range_qty');
      assert.deepEqual(check?.total, { evaluated: 106, failed: 5 });
      assert.equal(check?.passed, true);
    }
    const incCheck = (await latestReport(inc, 'silver.items')).checks.find((c) => c.name === 'range_qty');
    assert.deepEqual([incCheck?.evaluated, incCheck?.failed], [6, 5], 'the batch counts are kept beside the totals');

    // 6 more failing rows: 11 of 112 (9.82%) breach mostly 0.95 in both, and nothing is committed.
    for (const p of [full, inc]) {
      await p.write('in/3.ndjson', ndjson(third));
      const r = await p.run();
      assert.equal(r.status, 'failed');
      const message = r.errors.map((e) => e.message).join('\n');
      assert.match(
        message,
        /range_qty failed 6 of 6 rows of this build, 11 of 112 since the last full build \(9\.82%, mostly 0\.95\): qty = -2(\.0)? is below min 0/,
      );
      assert.equal(await p.count('silver.items'), 101);
      assert.equal(await p.count('quarantine.silver__items'), 5);
    }
  });

  it('scope batch judges each build alone (the 6-row build fails); min_rows leaves small batches unjudged', async () => {
    const batch = await project({ scope: 'batch' });
    await batch.write('in/1.ndjson', ndjson(good));
    assert.equal((await batch.run()).status, 'succeeded');
    await batch.write('in/2.ndjson', ndjson(second));
    const r = await batch.run();
    assert.equal(r.status, 'failed');
    assert.match(r.errors.map((e) => e.message).join('\n'), /range_qty failed 5 of 6 rows \(83\.33%, mostly 0\.95\)/);
    assert.equal(await batch.count('silver.items'), 100);

    const small = await project({ scope: 'batch', min_rows: 10 });
    await small.write('in/1.ndjson', ndjson(good));
    assert.equal((await small.run()).status, 'succeeded');
    await small.write('in/2.ndjson', ndjson(second));
    const s = await small.run();
    assert.equal(s.status, 'succeeded', JSON.stringify(s.errors));
    assert.equal(await small.count('silver.items'), 101);
    assert.equal(await small.count('quarantine.silver__items'), 5);
    const check = (await latestReport(small, 'silver.items')).checks.find((c) => c.name === 'range_qty');
    assert.deepEqual([check?.evaluated, check?.failed, check?.passed], [6, 5, true]);
  });
});

describe('silver: PII detection (issue 14, item 15d)', () => {
  const CARD = '4539 1488 0343 6467';
  const people = Array.from({ length: 20 }, (_, i) => ({ id: i, note: `n${i}`, payment: CARD }));

  it('a Luhn-valid card number in an unmasked column fails the build by default, naming table, column and detector, never the value', async () => {
    const p = await silverProject({ people: { path: 'in/*.ndjson' } }, { people: { from: 'people' } });
    await p.write('in/a.ndjson', ndjson(people));
    const r = await p.run();
    assert.equal(r.status, 'failed');
    const err = r.errors.find((e) => e.stream === 'silver.people');
    assert.ok(err, JSON.stringify(r.errors));
    assert.match(
      err.message,
      /^silver\.people: column payment looks like card \(detector card: 20 of 20 sampled values, e\.g\. 9999 9999 9999 9999\) but has no mask; set columns\.payment\.mask/,
    );
    assert.equal(err.exitCode, 2);
    for (const text of [err.message, err.cause ?? '']) {
      assert.equal(
        text.replace(/\D/g, '').includes(CARD.replace(/\D/g, '')),
        false,
        'the card number is not in the error',
      );
      assert.equal(text.includes(CARD), false);
    }
    assert.equal(
      (await (await p.lake()).catalog.getTable('silver.people'))?.headCommit ?? null,
      null,
      'nothing committed',
    );
  });

  it('a card number written as a JSON number (BIGINT) fails the build too; ordinary numeric ids do not', async () => {
    const p = await silverProject({ people: { path: 'in/*.ndjson' } }, { people: { from: 'people' } });
    // 4539148803436467 passes Luhn; the ids 1000000000000000 + 7i: about one in ten would.
    await p.write(
      'in/a.ndjson',
      ndjson(Array.from({ length: 20 }, (_, i) => ({ id: 1_000_000_000_000_000 + 7 * i, pan: 4539148803436467 }))),
    );
    const r = await p.run();
    assert.equal(r.status, 'failed');
    assert.match(
      r.errors[0]?.message ?? '',
      /^silver\.people: column pan looks like card \(detector card: 20 of 20 sampled values, e\.g\. 9999999999999999\)/,
    );
    assert.equal((r.errors[0]?.message ?? '').includes('4539148803436467'), false);
  });

  it('other detectors keep warning by default; {card: warn} and pii: false opt out; a masked card lands', async () => {
    const emails = await silverProject({ people: { path: 'in/*.ndjson' } }, { people: { from: 'people' } });
    await emails.write('in/a.ndjson', ndjson(people.map((x) => ({ id: x.id, mail: `p${x.id}@corp.example` }))));
    const warnings: string[] = [];
    const r = await emails.run('p', {
      onEvent: (e) => (e.type === 'silver_warning' ? warnings.push(e.message) : undefined),
    });
    assert.equal(r.status, 'succeeded');
    assert.equal(warnings.filter((w) => /column mail looks like email/.test(w)).length, 1);

    for (const [silver, privacy] of [
      [{ people: { from: 'people' } }, { detect: { card: 'warn' } }],
      [{ people: { from: 'people', columns: { payment: { pii: false } } } }, {}],
      [{ people: { from: 'people', columns: { payment: { pii: 'card', mask: 'last4' } } } }, {}],
    ] as const) {
      const p = await silverProject({ people: { path: 'in/*.ndjson' } }, silver, privacy);
      await p.write('in/a.ndjson', ndjson(people));
      const ok = await p.run();
      assert.equal(ok.status, 'succeeded', JSON.stringify(ok.errors));
      assert.equal(await p.count('silver.people'), 20);
    }
  });
});

/**
 * Every file under `dir` whose content holds one of `needles`: Parquet files read through DuckDB
 * (every value of every row, decompressed), gzip and zstd files decompressed, every file's bytes as they are.
 */
async function filesHolding(
  dir: string,
  needles: readonly string[],
): Promise<{ files: number; hits: Map<string, string[]> }> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const hits = new Map<string, string[]>(needles.map((n) => [n, []]));
  let files = 0;
  try {
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const full = join(entry.parentPath, entry.name);
      files++;
      const bytes = await readFile(full);
      const texts = [bytes.toString('utf8'), bytes.toString('latin1')];
      if (bytes.subarray(0, 4).toString('latin1') === 'PAR1') {
        const reader = await conn.runAndReadAll(`SELECT * FROM read_parquet('${full.replaceAll("'", "''")}')`);
        texts.push(JSON.stringify(reader.getRowObjectsJson()));
      }
      if (bytes[0] === 0x1f && bytes[1] === 0x8b) texts.push(gunzipSync(bytes).toString('utf8'));
      if (bytes.readUInt32LE(0) === 0xfd2fb528) texts.push(execFileSync('zstd', ['-dc', full]).toString('utf8'));
      for (const n of needles) if (texts.some((t) => t.includes(n))) hits.get(n)?.push(relative(dir, full));
    }
  } finally {
    conn.closeSync();
  }
  return { files, hits };
}

describe('silver: quarantine holds no clear value of masked columns (issue 14, item 15c)', () => {
  it('masked columns are sealed in quarantined rows: the clear value is only where it was put (input, bronze); replay opens them and lands the right hash', async () => {
    const EMAIL = 'zed.quarantined@pii-secret.example';
    const PHONE = '+1 555 0199 7777';
    const BAD = 'Zed Unmailable Secretperson';
    const p = await silverProject(
      { users: { path: 'in/*.ndjson' } },
      {
        users: {
          from: 'users',
          primary_key: ['id'],
          columns: { email: { pii: 'email', mask: 'hash' }, contact__phone: { pii: 'phone', mask: 'last4' } },
          checks: [
            { type: 'range', column: 'age', min: 0, mostly: 0.5 },
            { type: 'format', column: 'email', format: 'email', mostly: 0.5 },
          ],
        },
      },
      { detect: 'off' },
    );
    const rows = [
      ...Array.from({ length: 8 }, (_, i) => ({
        id: i,
        email: `u${i}@ok.example`,
        age: 30 + i,
        contact: { phone: `+1 555 010${i} 0000`, city: `c${i}` },
      })),
      { id: 100, email: EMAIL, age: -5, contact: { phone: PHONE, city: 'Cleartown' } },
      { id: 101, email: BAD, age: 40, contact: { phone: '+1 555 0101 0101', city: 'Elsewhere' } },
    ];
    await p.write('in/users.ndjson', ndjson(rows));
    const r = await p.run();
    assert.equal(r.status, 'succeeded', JSON.stringify(r.errors));
    assert.equal(r.stats.streams['silver.users']?.quarantined, 2);

    const q = await p.rows(
      `select id, email, contact, age, _dip_check, _dip_reason, _dip_sealed from quarantine.silver__users order by id`,
    );
    assert.deepEqual(
      q.map((x) => [
        Number(x['id']),
        x['email'],
        x['contact'],
        Number(x['age']),
        x['_dip_check'],
        String(x['_dip_reason']).replace('-5.0', '-5'),
      ]),
      [
        [100, null, null, -5, 'range_age', 'range_age: age = -5 is below min 0'],
        [101, null, null, 40, 'format_email', 'format_email: format failed on masked column email'],
      ],
    );
    assert.ok(q.every((x) => typeof x['_dip_sealed'] === 'string' && String(x['_dip_sealed']).startsWith('dipq1:')));

    const where = async () => {
      const found = await filesHolding(p.dir, [EMAIL, PHONE, BAD]);
      return {
        files: found.files,
        hits: Object.fromEntries(
          [...found.hits].map(([k, v]) => [k, v.map((f) => (f.startsWith('.dip/lake/bronze/') ? 'bronze' : f)).sort()]),
        ),
      };
    };
    const before = await where();
    assert.ok(before.files >= 6, `scanned ${before.files} files`);
    assert.deepEqual(before.hits, {
      [EMAIL]: ['bronze', 'in/users.ndjson'],
      [PHONE]: ['bronze', 'in/users.ndjson'],
      [BAD]: ['bronze', 'in/users.ndjson'],
    });

    // Replay opens the sealed values: the fixed row lands with the hash of its clear e-mail; the
    // row that still fails is sealed again.
    const lake = await p.lake();
    const config = lake.project.config.pipelines['p'];
    assert.ok(config);
    const replayed = await replayQuarantine(lake, 'p', config, 'users', {
      runId: newId('run'),
      set: { age: 'abs(age)' },
    });
    assert.deepEqual([replayed.newRows, replayed.stillQuarantined], [1, 1]);
    assert.equal(
      await p.num(
        `select count(*) from silver.users where id = 100 and email = sha256('${SALT}' || '${EMAIL}') and contact__phone = '+* *** **** 7777' and age = 5`,
      ),
      1,
    );
    assert.deepEqual(
      (await p.rows(`select id, email from quarantine.silver__users`)).map((x) => [Number(x['id']), x['email']]),
      [[101, null]],
    );
    const after = await where();
    assert.deepEqual(after.hits, before.hits);

    // The CLI lists quarantined rows without the clear values either.
    await lake.close();
    const list = await runCli(['quarantine', 'list', 'users', '--json'], p.dir);
    assert.equal(list.code, 0, list.stderr);
    for (const v of [EMAIL, PHONE, BAD]) assert.equal(list.stdout.includes(v), false);
  });
});
