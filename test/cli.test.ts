/**
 * The `dip` CLI as a user runs it: the built dist/cli/main.js in a project directory, with
 * exit codes, stdout/stderr text and --json output. Expected numbers are computed from the
 * sample files `dip init` writes, not taken from DIP.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, makeTempDir, runCli, type CliResult } from './support/project.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await makeTempDir('dip-cli-test-');
  dirs.push(d);
  return d;
}

function json<T = unknown>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    assert.fail(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit 0 expected, got ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

/** Splits one CSV line into fields, honouring double quotes. */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

interface Expected {
  orders: number;
  orderIdSum: number;
  quarantined: number;
  byStatus: Map<string, number>;
  customers: number;
  products: number;
  ordersFiles: number;
}

/** What the sample data should produce, read straight from the files `dip init` wrote. */
function expectedFromSample(dir: string): Expected {
  const ordersDir = join(dir, 'data', 'orders');
  const files = readdirSync(ordersDir).filter((f) => f.endsWith('.csv'));
  let orders = 0;
  let orderIdSum = 0;
  let quarantined = 0;
  const byStatus = new Map<string, number>();
  for (const f of files) {
    const [header = '', ...lines] = readFileSync(join(ordersDir, f), 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const cols = csvFields(header);
    const qty = cols.indexOf('quantity');
    const status = cols.indexOf('status');
    for (const line of lines) {
      const fields = csvFields(line);
      if (fields.length !== cols.length || !/^\d+$/.test(fields[qty] ?? '')) {
        quarantined++;
        continue;
      }
      orders++;
      orderIdSum += Number(fields[0]);
      const s = fields[status] ?? '';
      byStatus.set(s, (byStatus.get(s) ?? 0) + 1);
    }
  }
  const customers = readdirSync(join(dir, 'data', 'customers'))
    .map(
      (f) =>
        readFileSync(join(dir, 'data', 'customers', f), 'utf8')
          .split('\n')
          .filter((l) => l.trim() !== '').length,
    )
    .reduce((a, b) => a + b, 0);
  const products = (JSON.parse(readFileSync(join(dir, 'data', 'products.json'), 'utf8')) as unknown[]).length;
  return { orders, orderIdSum, quarantined, byStatus, customers, products, ordersFiles: files.length };
}

describe('dip init, run and read commands', () => {
  let dir = '';
  let expected: Expected;
  let runResult: CliResult;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} is built (npx tsc -p tsconfig.json)`);
    dir = await tempDir();
    const init = ok(await runCli(['init'], dir));
    assert.match(init.stdout, /created a DIP project in/);
    assert.match(init.stdout, /dip\.yaml/);
    expected = expectedFromSample(dir);
    runResult = await runCli(['run', '--quiet'], dir);
  });

  it('init writes a project and run ingests it (exit 0)', () => {
    assert.ok(existsSync(join(dir, 'dip.yaml')));
    assert.ok(expected.orders > 0 && expected.quarantined > 0, 'the sample has orders and malformed rows');
    ok(runResult);
    assert.match(runResult.stdout, /pipeline shop · succeeded/);
    assert.match(runResult.stdout, new RegExp(`${expected.quarantined} malformed records went to quarantine`));
  });

  it('init refuses to overwrite an existing dip.yaml (exit 2)', async () => {
    const r = await runCli(['init'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /dip\.yaml already exists; not overwriting it/);
  });

  it('query --json prints the row count', async () => {
    const r = ok(await runCli(['query', '--json', 'select count(*) as n, sum(order_id) as s from bronze.orders'], dir));
    const rows = json<{ n: string | number; s: string | number }[]>(r);
    assert.equal(rows.length, 1);
    assert.equal(Number(rows[0]?.n), expected.orders);
    assert.equal(Number(rows[0]?.s), expected.orderIdSum);
    const other = json<{ c: string | number; p: string | number; q: string | number }[]>(
      ok(
        await runCli(
          [
            '--json',
            'query',
            'select (select count(*) from bronze.customers) as c, (select count(*) from bronze.products) as p, (select count(*) from quarantine.orders) as q',
          ],
          dir,
        ),
      ),
    );
    assert.deepEqual(
      other.map((o) => [Number(o.c), Number(o.p), Number(o.q)]),
      [[expected.customers, expected.products, expected.quarantined]],
    );
  });

  it('query --format csv prints a header and one line per row', async () => {
    const r = ok(
      await runCli(
        ['query', '--format', 'csv', 'select status, count(*) as n from bronze.orders group by 1 order by 1'],
        dir,
      ),
    );
    const expectedCsv = [
      'status,n',
      ...[...expected.byStatus].sort(([a], [b]) => (a < b ? -1 : 1)).map(([s, n]) => `${s},${n}`),
    ].join('\n');
    assert.equal(r.stdout, `${expectedCsv}\n`);
    const quoted = ok(await runCli(['query', '--format', 'csv', `select 'a,b' as x, 'say "hi"' as y, null as z`], dir));
    assert.equal(quoted.stdout, 'x,y,z\n"a,b","say ""hi""",\n');
  });

  it('query in table format ends with the row count', async () => {
    const r = ok(await runCli(['query', 'select status from bronze.orders group by 1 order by 1'], dir));
    assert.match(r.stdout, /^status\s*\n─+\n/);
    assert.match(r.stdout, new RegExp(`\\(${expected.byStatus.size} rows\\)\\n$`));
  });

  it('tables --json lists every zone table with rows and schema version', async () => {
    const tables = json<
      { name: string; rows: number; files: number; schemaVersion: number | null; zone: string; format: string }[]
    >(ok(await runCli(['tables', '--json'], dir)));
    const byName = new Map(tables.map((t) => [t.name, t]));
    assert.deepEqual([...byName.keys()].sort(), [
      'bronze.customers',
      'bronze.orders',
      'bronze.products',
      'quarantine.orders',
      'raw.customers',
      'raw.orders',
      'raw.products',
      'silver.customers',
      'silver.customers__tags',
      'silver.orders',
    ]);
    assert.equal(byName.get('bronze.orders')?.rows, expected.orders);
    assert.equal(byName.get('bronze.orders')?.files, expected.ordersFiles);
    assert.equal(byName.get('bronze.orders')?.schemaVersion, 2, 'the second export adds coupon');
    assert.equal(byName.get('bronze.customers')?.rows, expected.customers);
    assert.equal(byName.get('bronze.products')?.rows, expected.products);
    assert.equal(byName.get('quarantine.orders')?.rows, expected.quarantined);
    assert.equal(byName.get('raw.orders')?.format, 'ndjson');
    assert.equal(byName.get('bronze.orders')?.format, 'parquet');
  });

  it('describe shows columns, schema versions and snapshots', async () => {
    const r = ok(await runCli(['describe', 'bronze.orders'], dir));
    assert.match(
      r.stdout,
      new RegExp(`^bronze\\.orders · bronze · parquet · ${expected.orders} rows in ${expected.ordersFiles} files`),
    );
    assert.match(r.stdout, /primary key: order_id/);
    assert.match(r.stdout, /columns \(schema v2\):/);
    assert.match(r.stdout, /\border_id\s+BIGINT\b/);
    assert.match(
      r.stdout,
      /schema versions:\n {2}v1 {2}commit \d+ .* 11 columns\n {2}v2 {2}commit \d+ .*\+coupon VARCHAR\n/,
    );
    assert.match(r.stdout, /snapshots \(newest first\):/);
    const appends = r.stdout.split('\n').filter((l) => /^\d+\s+\S+\s+append\s+run_/.test(l));
    assert.equal(appends.length, expected.ordersFiles);
    assert.match(r.stdout, new RegExp(`${expected.quarantined} quarantined`));

    const info = json<{ table: { name: string }; versions: { version: number }[]; commits: { operation: string }[] }>(
      ok(await runCli(['describe', 'bronze.orders', '--json'], dir)),
    );
    assert.equal(info.table.name, 'bronze.orders');
    assert.deepEqual(
      info.versions.map((v) => v.version),
      [1, 2],
    );
    assert.deepEqual(
      info.commits.map((c) => c.operation),
      Array(expected.ordersFiles).fill('append'),
    );
  });

  it('describe of an unknown table exits 6 and lists the known ones', async () => {
    const r = await runCli(['describe', 'bronze.nope'], dir);
    assert.equal(r.code, 6);
    assert.match(r.stderr, /^dip: no table named bronze\.nope \(tables: bronze\.customers, bronze\.orders/);
  });

  it('status --json lists the run as succeeded with per-stream rows', async () => {
    const status = json<{
      project: string;
      catalog: string;
      runs: {
        id: string;
        pipeline: string;
        status: string;
        stats: { streams: Record<string, { rows: number; quarantined: number; files: number }> };
      }[];
      lastFailure?: unknown;
    }>(ok(await runCli(['status', '--json'], dir)));
    assert.equal(status.project, 'demo');
    assert.equal(status.catalog, 'sqlite');
    assert.equal(status.runs.length, 1);
    const run = status.runs[0];
    assert.equal(run?.pipeline, 'shop');
    assert.equal(run?.status, 'succeeded');
    assert.match(run?.id ?? '', /^run_/);
    const s = run?.stats.streams ?? {};
    assert.deepEqual(Object.keys(s).sort(), [
      'exports.customers',
      'exports.orders',
      'exports.products',
      'silver.customers',
      'silver.orders',
    ]);
    assert.equal(s['silver.orders']?.rows, expected.orders, 'every order reached silver');
    assert.equal(s['silver.customers']?.rows, expected.customers);
    assert.equal(s['exports.orders']?.rows, expected.orders);
    assert.equal(s['exports.orders']?.quarantined, expected.quarantined);
    assert.equal(s['exports.orders']?.files, expected.ordersFiles);
    assert.equal(s['exports.customers']?.rows, expected.customers);
    assert.equal(s['exports.products']?.rows, expected.products);
    assert.equal(status.lastFailure, undefined);

    const text = ok(await runCli(['status'], dir));
    assert.match(text.stdout, new RegExp(`${run?.id}\\s+shop\\s+succeeded`));
  });

  it('a second run reads nothing new', async () => {
    const r = json<
      { status: string; stats: { streams: Record<string, { files: number; skippedFiles: number; rows: number }> } }[]
    >(ok(await runCli(['run', '--json'], dir)));
    assert.equal(r[0]?.status, 'succeeded');
    assert.deepEqual(
      {
        files: r[0]?.stats.streams['exports.orders']?.files,
        skipped: r[0]?.stats.streams['exports.orders']?.skippedFiles,
        rows: r[0]?.stats.streams['exports.orders']?.rows,
      },
      { files: 0, skipped: expected.ordersFiles, rows: 0 },
    );
    assert.equal(r[0]?.stats.streams['silver.orders']?.rows, 0, 'silver had nothing new to build');
    const n = json<{ n: string }[]>(
      ok(await runCli(['query', '--json', 'select count(*) as n from bronze.orders'], dir)),
    );
    assert.equal(Number(n[0]?.n), expected.orders);
  });

  it('query on a missing table exits non-zero with a readable error', async () => {
    const r = await runCli(['query', 'select * from bronze.nope'], dir);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^dip: query failed: .*Table with name nope does not exist/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
    const j = await runCli(['query', '--json', 'select * from bronze.nope'], dir);
    assert.equal(j.code, 3);
    const err = json<{ error: { kind: string; message: string } }>(j);
    assert.equal(err.error.kind, 'input');
    assert.match(err.error.message, /Table with name nope does not exist/);
  });

  it('query --as-of reads an older commit; a bad --format or --as-of exits 3', async () => {
    const first = json<{ n: string }[]>(
      ok(await runCli(['query', '--json', '--as-of', '1', 'select count(*) as n from bronze.orders'], dir)),
    );
    const firstFile =
      readFileSync(join(dir, 'data', 'orders', readdirSync(join(dir, 'data', 'orders')).sort()[0] ?? ''), 'utf8')
        .trim()
        .split('\n').length - 1;
    assert.equal(Number(first[0]?.n), firstFile);
    const badFormat = await runCli(['query', '--format', 'xml', 'select 1'], dir);
    assert.equal(badFormat.code, 3);
    assert.match(badFormat.stderr, /--format xml: expected table, csv or json/);
    const badAsOf = await runCli(['query', '--as-of', 'yesterday', 'select 1'], dir);
    assert.equal(badAsOf.code, 3);
    assert.match(badAsOf.stderr, /--as-of "yesterday": expected a commit id/);
  });

  it('gc --dry-run --json reports an orphan file without deleting it', async () => {
    const orphan = join(dir, '.dip', 'lake', 'bronze', 'exports', 'orders', 'date=2020-01-01', 'part-orphan.parquet');
    await mkdir(join(orphan, '..'), { recursive: true });
    await writeFile(orphan, 'not really parquet');
    const old = new Date(Date.now() - 2 * 3_600_000);
    await utimes(orphan, old, old);
    const r = json<{
      expiredFiles: number;
      orphanFiles: number;
      stagingFiles: number;
      bytesFreed: number;
      deleted: string[];
    }>(ok(await runCli(['gc', '--dry-run', '--json'], dir)));
    assert.deepEqual(r, {
      expiredFiles: 0,
      orphanFiles: 1,
      stagingFiles: 0,
      bytesFreed: 'not really parquet'.length,
      deleted: ['bronze/exports/orders/date=2020-01-01/part-orphan.parquet'],
    });
    assert.ok(existsSync(orphan), 'dry run deletes nothing');
    const text = ok(await runCli(['gc', '--dry-run'], dir));
    assert.match(
      text.stdout,
      /gc would delete 1 files \(18 B\): 1 unreferenced, 0 past retention, 0 staging leftovers/,
    );
    const real = json<{ deleted: string[] }>(ok(await runCli(['gc', '--json'], dir)));
    assert.deepEqual(real.deleted, ['bronze/exports/orders/date=2020-01-01/part-orphan.parquet']);
    assert.equal(existsSync(orphan), false);
    const n = json<{ n: string }[]>(
      ok(await runCli(['query', '--json', 'select count(*) as n from bronze.orders'], dir)),
    );
    assert.equal(Number(n[0]?.n), expected.orders);
  });

  it('rollback with a non-numeric --to exits 3; a numeric one rolls back', async () => {
    const bad = await runCli(['rollback', 'bronze.orders', '--to', 'abc'], dir);
    assert.equal(bad.code, 3);
    assert.match(bad.stderr, /--to "abc": expected a commit id \(see dip describe bronze\.orders\)/);
    const missing = await runCli(['rollback', 'bronze.orders'], dir);
    assert.equal(missing.code, 64, 'commander usage error');
    assert.match(missing.stderr, /required option '--to <commit>' not specified/);

    const r = ok(await runCli(['rollback', 'bronze.orders', '--to', '1', '--json'], dir));
    const commit = json<{ id: number; operation: string }>(r);
    assert.equal(commit.operation, 'rollback');
    const firstFile =
      readFileSync(join(dir, 'data', 'orders', readdirSync(join(dir, 'data', 'orders')).sort()[0] ?? ''), 'utf8')
        .trim()
        .split('\n').length - 1;
    const n = json<{ n: string }[]>(
      ok(await runCli(['query', '--json', 'select count(*) as n from bronze.orders'], dir)),
    );
    assert.equal(Number(n[0]?.n), firstFile);
  });
});

describe('--help', () => {
  const commands = [
    'init',
    'run',
    'status',
    'tables',
    'describe',
    'query',
    'replay',
    'gc',
    'compact',
    'rollback',
    'demo',
  ];
  it('works for every command, exit 0, without a project', async () => {
    const dir = await tempDir();
    const results = await Promise.all(commands.map((c) => runCli([c, '--help'], dir)));
    for (const [i, r] of results.entries()) {
      const c = commands[i] ?? '';
      assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: dip ${c} `), `${c} --help prints usage`);
      assert.match(r.stdout, /-h, --help/);
      assert.equal(r.stderr, '');
    }
    const top = ok(await runCli(['--help'], dir));
    for (const c of commands) assert.match(top.stdout, new RegExp(`\\n  ${c}\\b`), `top-level help lists ${c}`);
    assert.equal(existsSync(join(dir, 'dip.yaml')), false, 'help created nothing');
  });
});

describe('errors a user can make', () => {
  it('bad YAML exits 2 and names dip.yaml with a line number', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'dip.yaml'), 'version: 1\npipelines:\n  shop:\n    sources: [\n      bad\n');
    const r = await runCli(['run'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Cannot parse dip\.yaml: invalid YAML/);
    assert.match(r.stderr, /dip\.yaml:\d+:\d+: /);
    const j = await runCli(['status', '--json'], dir);
    assert.equal(j.code, 2);
    assert.equal(json<{ error: { kind: string } }>(j).error.kind, 'config');
  });

  it('an unknown key exits 2 and names the key and its line', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'dip.yaml'),
      [
        'version: 1',
        'pipelines:',
        '  shop:',
        '    sources:',
        '      s:',
        '        type: files',
        '        streams:',
        '          orders:',
        '            path: data/x.csv',
        '            primary_keys: [id]',
        '',
      ].join('\n'),
    );
    const r = await runCli(['run'], dir);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /dip\.yaml:10:13: pipelines\.shop\.sources\.s\.streams\.orders\.primary_keys: unknown key "primary_keys"/,
    );
    assert.match(r.stderr, /did you mean "primary_key"\?/);
  });

  it('a literal stream path that does not exist fails the run and names the path', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'dip.yaml'),
      [
        'version: 1',
        'pipelines:',
        '  shop:',
        '    sources:',
        '      s:',
        '        type: files',
        '        streams:',
        '          orders:',
        '            path: data/nope/missing.csv',
        '',
      ].join('\n'),
    );
    const r = await runCli(['run', '--quiet'], dir);
    assert.notEqual(r.code, 0);
    assert.equal(r.code, 3);
    assert.ok(r.stderr.includes(`file not found: ${join(dir, 'data/nope/missing.csv')}`), r.stderr);
    assert.match(r.stderr, /from path "data\/nope\/missing\.csv"/);
    assert.match(r.stdout, /pipeline shop · failed/);
    const status = json<{ runs: { status: string; error: string }[] }>(ok(await runCli(['status', '--json'], dir)));
    assert.equal(status.runs[0]?.status, 'failed');
    assert.match(status.runs[0]?.error ?? '', /missing\.csv/);
    // a glob matching nothing is not an error
    await writeFile(
      join(dir, 'dip.yaml'),
      readFileSync(join(dir, 'dip.yaml'), 'utf8').replace('data/nope/missing.csv', 'data/nope/*.csv'),
    );
    ok(await runCli(['run', '--quiet'], dir));
  });

  it('no project file: exits 2 and suggests dip init', async () => {
    const dir = await tempDir();
    const r = await runCli(['tables'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no dip\.yaml found in .*dip init/);
  });
});
