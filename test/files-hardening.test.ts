/**
 * Issue 14, files: a moved or copied project re-ingests nothing (project-relative ledger keys,
 * content hashes, migrated old ledgers); JSON types unify across files (null-only columns,
 * mixed scalars, declared json.columns); empty inputs decide no type; a glob matching nothing
 * warns, and fails with require_files.
 *
 * Data: real public tables shipped in node_modules (iconv-lite's EUC-JP and GBK code tables:
 * rows of a hex code, then characters and run lengths, strings and numbers mixed).
 */
import assert from 'node:assert/strict';
import { cp, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadSqlite } from '../src/core/sqlite-native.js';
import { LEDGER_RELATIVE_KEYS, MIGRATIONS } from '../src/catalog/ddl.js';
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { query } from '../src/lake/query.js';
import { runPipeline, type RunResult } from '../src/pipeline/run.js';
import { REPO_ROOT, TestProject, runCli, type StreamYaml } from './support/project.js';

/** better-sqlite3 12 on Node 20, 13 on Node 22+ (src/core/sqlite-native.ts). */
const Database = await loadSqlite();

const cleanup: string[] = [];
const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

async function project(streams: Record<string, StreamYaml>): Promise<TestProject> {
  const p = await TestProject.create(streams);
  projects.push(p);
  return p;
}

type Row = (string | number)[];

async function table(name: 'eucjp' | 'cp936'): Promise<Row[]> {
  const file = join(REPO_ROOT, 'node_modules', 'iconv-lite', 'encodings', 'tables', `${name}.json`);
  return JSON.parse(await readFile(file, 'utf8')) as Row[];
}

const csvField = (v: string | number | null) =>
  v === null ? '' : typeof v === 'number' ? String(v) : `"${v.replaceAll('"', '""')}"`;

/** One CSV line per table row: code, first character, run length (empty when the row has none). */
function codeCsv(rows: Row[]): string {
  const lines = rows.map((r) =>
    [csvField(String(r[0])), csvField(String(r[1]).slice(0, 1)), csvField(typeof r[2] === 'number' ? r[2] : null)].join(
      ',',
    ),
  );
  return `code,first_char,run\n${lines.join('\n')}\n`;
}

const ndjson = (records: unknown[]) => `${records.map((r) => JSON.stringify(r)).join('\n')}\n`;

/** A lake opened on a directory (the project after it moved), closed by the caller. */
async function openAt(dir: string): Promise<Lake> {
  return Lake.open(await loadProject(dir));
}

async function num(lake: Lake, sql: string): Promise<number> {
  const rows = (await query(lake, sql)).rows;
  return Number(Object.values(rows[0] ?? {})[0]);
}

function ok(r: RunResult): RunResult {
  if (r.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(r.errors, null, 2)}`);
  return r;
}

const totalRows = (r: RunResult) => Object.values(r.stats.streams).reduce((n, s) => n + s.rows, 0);
const totalFiles = (r: RunResult) => Object.values(r.stats.streams).reduce((n, s) => n + s.files, 0);

describe('item 1: the ledger survives moving and copying the project', () => {
  async function seeded(): Promise<{ p: TestProject; csvRows: number; jsonRows: number }> {
    const eucjp = await table('eucjp');
    const cp936 = await table('cp936');
    const p = await project({ codes: { path: 'data/csv/*.csv' }, tables: { path: 'data/json/*.ndjson' } });
    await p.write('data/csv/eucjp.csv', codeCsv(eucjp));
    await p.write('data/csv/cp936.csv', codeCsv(cp936));
    await p.write('data/json/eucjp.ndjson', ndjson(eucjp.map((r) => ({ code: r[0], chars: r[1] }))));
    return { p, csvRows: eucjp.length + cp936.length, jsonRows: eucjp.length };
  }

  it('mv the project dir, run again: 0 new rows, raw not doubled; a copy (new mtimes) neither', async () => {
    const { p, csvRows, jsonRows } = await seeded();
    const first = ok(await p.run());
    assert.equal(totalRows(first), csvRows + jsonRows);
    const lake0 = await p.lake();
    const ledger = await lake0.catalog.getLedger('p', 'src', 'codes');
    assert.deepEqual(
      [...ledger.keys()].sort(),
      ['data/csv/cp936.csv', 'data/csv/eucjp.csv'],
      'keys are relative to the project',
    );
    await lake0.close();

    const moved = `${p.dir}-moved`;
    cleanup.push(moved);
    await rename(p.dir, moved);
    let lake = await openAt(moved);
    try {
      const second = ok(await runPipeline(lake, 'p'));
      assert.equal(totalRows(second), 0, 'nothing re-ingested after the move');
      assert.equal(totalFiles(second), 0);
      assert.equal(second.stats.streams['src.codes']?.skippedFiles, 2);
      assert.equal(await num(lake, 'select count(*) from bronze.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from raw.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from bronze.tables'), jsonRows);
      assert.equal(await num(lake, 'select count(*) from raw.tables'), jsonRows);
    } finally {
      await lake.close();
    }

    // A copy gets new modification times: the content hash recognises the files.
    const copy = `${p.dir}-copy`;
    cleanup.push(copy);
    await cp(moved, copy, { recursive: true, preserveTimestamps: false });
    const later = new Date(Math.floor(Date.now() / 1000) * 1000 + 60_000); // whole seconds: utimes keeps them exactly
    for (const f of ['data/csv/eucjp.csv', 'data/csv/cp936.csv', 'data/json/eucjp.ndjson'])
      await utimes(join(copy, f), later, later);
    lake = await openAt(copy);
    try {
      const third = ok(await runPipeline(lake, 'p'));
      assert.equal(totalRows(third), 0, 'nothing re-ingested in a copy');
      assert.equal(third.stats.streams['src.codes']?.skippedFiles, 2);
      // the new times are recorded: the next run recognises the files without hashing them
      const refreshed = await lake.catalog.getLedger('p', 'src', 'codes');
      assert.equal(refreshed.get('data/csv/eucjp.csv')?.modifiedMs, later.getTime());
      assert.equal(
        refreshed.get('data/csv/eucjp.csv')?.sourceFile,
        join(p.dir, 'data/csv/eucjp.csv'),
        'rows keep the name they were read under',
      );
      assert.equal(await num(lake, 'select count(*) from bronze.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from raw.codes'), csvRows);

      // A file that really changed after the move replaces its earlier rows (no duplicates).
      const cp936 = await table('cp936');
      await writeFile(join(copy, 'data/csv/cp936.csv'), codeCsv(cp936.slice(0, 10)));
      const fourth = ok(await runPipeline(lake, 'p'));
      assert.equal(fourth.stats.streams['src.codes']?.rows, 10);
      assert.equal(await num(lake, 'select count(*) from bronze.codes'), csvRows - cp936.length + 10);
      assert.equal(
        await num(
          lake,
          `select count(*) from bronze.codes where _dip_source_file = '${join(moved, 'data/csv/cp936.csv')}'`,
        ),
        0,
      );
    } finally {
      await lake.close();
    }
  });

  it('a ledger written with absolute keys (catalog version before the migration) is migrated, then the project moves', async () => {
    const { p, csvRows, jsonRows } = await seeded();
    ok(await p.run());
    await (await p.lake()).close();
    // Turn the catalog back into the old format: absolute keys, no hash/source columns, old version.
    const version = MIGRATIONS.indexOf(LEDGER_RELATIVE_KEYS);
    assert.ok(version > 0);
    const dbFile = join(p.dir, '.dip', 'catalog.db');
    const db = new Database(dbFile);
    db.prepare(`UPDATE dip_ledger SET path = ? || '/' || path`).run(p.dir);
    db.exec(`ALTER TABLE dip_ledger DROP COLUMN content_hash`);
    db.exec(`ALTER TABLE dip_ledger DROP COLUMN source_file`);
    db.prepare(`UPDATE dip_meta SET value = ? WHERE key = 'schema_version'`).run(String(version));
    const old = db.prepare(`SELECT path FROM dip_ledger ORDER BY path`).all() as { path: string }[];
    assert.deepEqual(
      old.map((r) => r.path),
      [join(p.dir, 'data/csv/cp936.csv'), join(p.dir, 'data/csv/eucjp.csv'), join(p.dir, 'data/json/eucjp.ndjson')],
    );
    db.close();

    // Opening the catalog with this dip migrates the keys under the project to relative ones.
    let lake = await openAt(p.dir);
    await lake.close();
    const migrated = new Database(dbFile, { readonly: true });
    const rows = migrated.prepare(`SELECT path, source_file FROM dip_ledger ORDER BY path`).all() as {
      path: string;
      source_file: string;
    }[];
    migrated.close();
    assert.deepEqual(rows, [
      { path: 'data/csv/cp936.csv', source_file: join(p.dir, 'data/csv/cp936.csv') },
      { path: 'data/csv/eucjp.csv', source_file: join(p.dir, 'data/csv/eucjp.csv') },
      { path: 'data/json/eucjp.ndjson', source_file: join(p.dir, 'data/json/eucjp.ndjson') },
    ]);

    const moved = `${p.dir}-moved`;
    cleanup.push(moved);
    await rename(p.dir, moved);
    lake = await openAt(moved);
    try {
      const r = ok(await runPipeline(lake, 'p'));
      assert.equal(totalRows(r), 0);
      assert.equal(await num(lake, 'select count(*) from bronze.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from raw.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from raw.tables'), jsonRows);
    } finally {
      await lake.close();
    }
  });

  it('an old-format ledger of a project moved before upgrading still matches its files', async () => {
    const { p, csvRows } = await seeded();
    ok(await p.run());
    await (await p.lake()).close();
    const version = MIGRATIONS.indexOf(LEDGER_RELATIVE_KEYS);
    const db = new Database(join(p.dir, '.dip', 'catalog.db'));
    db.prepare(`UPDATE dip_ledger SET path = ? || '/' || path`).run(p.dir);
    db.exec(`ALTER TABLE dip_ledger DROP COLUMN content_hash`);
    db.exec(`ALTER TABLE dip_ledger DROP COLUMN source_file`);
    db.prepare(`UPDATE dip_meta SET value = ? WHERE key = 'schema_version'`).run(String(version));
    db.close();
    const moved = `${p.dir}-elsewhere`;
    cleanup.push(moved);
    await rename(p.dir, moved);
    const lake = await openAt(moved);
    try {
      const r = ok(await runPipeline(lake, 'p'));
      assert.equal(totalRows(r), 0);
      assert.equal(await num(lake, 'select count(*) from bronze.codes'), csvRows);
      assert.equal(await num(lake, 'select count(*) from raw.codes'), csvRows);
    } finally {
      await lake.close();
    }
  });
});

describe('item 6: JSON types unify across files', () => {
  it('a column null in every record of one file takes the type of a later file', async () => {
    const eucjp = await table('eucjp');
    const single = eucjp.filter((r) => r.length === 2); // code + characters only: no run length
    const runs = eucjp.filter((r) => r.length > 2);
    const p = await project({ eucjp: { path: 'data/*.json' } });
    await p.write('data/1-single.json', JSON.stringify(single.map((r) => ({ code: r[0], chars: r[1], run: null }))));
    await p.write('data/2-runs.json', JSON.stringify(runs.map((r) => ({ code: r[0], chars: r[1], run: r[2] }))));
    const r = ok(await p.run());
    assert.equal(r.stats.streams['src.eucjp']?.rows, eucjp.length);
    const [col] = await p.rows(
      `select data_type from information_schema.columns where table_schema = 'bronze' and table_name = 'eucjp' and column_name = 'run'`,
    );
    assert.equal(col?.['data_type'], 'BIGINT');
    assert.equal(await p.num('select count(run) from bronze.eucjp'), runs.length);
    assert.equal(
      await p.num('select sum(run) from bronze.eucjp'),
      runs.reduce((n, x) => n + Number(x[2]), 0),
    );
  });

  it('mixed strings and numbers become plain text; a later strings-only file is accepted', async () => {
    const eucjp = await table('eucjp');
    // Each row's tail (characters, run length, characters, …) as one record per item.
    const items = (rows: Row[]) => rows.flatMap((r) => r.slice(1).map((item, pos) => ({ code: r[0], pos, item })));
    const mixed = eucjp.filter((r) => r.length > 2);
    const strings = eucjp.filter((r) => r.length === 2);
    const p = await project({ items: { path: 'data/*.ndjson' } });
    await p.write('data/1-mixed.ndjson', ndjson(items(mixed)));
    await p.write('data/2-strings.ndjson', ndjson(items(strings)));
    const r = ok(await p.run());
    const expected = items(mixed).length + items(strings).length;
    assert.equal(r.stats.streams['src.items']?.rows, expected);
    assert.equal(await p.count('bronze.items'), expected);
    const [col] = await p.rows(
      `select data_type from information_schema.columns where table_schema = 'bronze' and table_name = 'items' and column_name = 'item'`,
    );
    assert.equal(col?.['data_type'], 'VARCHAR');
    const first = mixed[0] as Row;
    const [a, b] = await p.rows(
      `select item from bronze.items where code = '${String(first[0])}' order by pos limit 2`,
    );
    assert.equal(a?.['item'], String(first[1]), 'a string is its plain text, not quoted JSON');
    assert.equal(b?.['item'], String(first[2]), 'a number is its text');
    assert.equal(await p.num(`select count(*) from bronze.items where item like '"%'`), 0);
  });

  it('json.columns declares types; the hint for a JSON stream names json.columns', async () => {
    const p = await project({
      runs: { path: 'data/*.json', json: { columns: { run: 'INTEGER', note: 'VARCHAR' } } },
      plain: { path: 'plain/*.json' },
      strict: { path: 'strict/*.ndjson', json: { columns: { run: 'INTEGER' } } },
    });
    await p.write(
      'strict/1.ndjson',
      ndjson([
        { code: 'a1a1', run: 9 },
        { code: 'a2a1', run: '◆□' },
      ]),
    );
    const eucjp = await table('eucjp');
    const runs = eucjp.filter((r) => r.length > 2);
    await p.write('data/a.json', JSON.stringify(runs.map((r) => ({ code: r[0], run: String(r[2]) }))));
    await p.write('plain/1.json', JSON.stringify(runs.map((r) => ({ code: r[0], run: r[2] }))));
    await p.write('plain/2.json', JSON.stringify(runs.map((r) => ({ code: r[0], run: { n: r[2] } }))));
    const r = await p.run();
    assert.equal(r.stats.streams['src.runs']?.rows, runs.length);
    const types = await p.rows(
      `select column_name, data_type from information_schema.columns where table_schema = 'bronze' and table_name = 'runs' and column_name in ('run', 'note') order by 1`,
    );
    assert.deepEqual(
      types.map((t) => [t['column_name'], t['data_type']]),
      [
        ['note', 'VARCHAR'],
        ['run', 'INTEGER'],
      ],
    );
    assert.equal(
      await p.num('select sum(run) from bronze.runs'),
      runs.reduce((n, x) => n + Number(x[2]), 0),
    );
    assert.equal(r.status, 'failed');
    const err = r.errors.find((e) => e.stream === 'src.plain');
    assert.ok(err);
    assert.match(err.message, /column run: table has BIGINT/);
    assert.match(err.message, /json\.columns/);
    assert.doesNotMatch(err.message, /csv\.columns/);
    assert.equal(err.exitCode, 4);
    const strict = r.errors.find((e) => e.stream === 'src.strict');
    assert.match(
      strict?.message ?? '',
      /strict\/1\.ndjson as ndjson: a value does not convert to a type declared in json\.columns \(run: INTEGER\): column run \(INTEGER\): value ◆□ does not convert$/,
    );
    assert.equal(strict?.exitCode, 3);
    assert.equal(
      await p.num(
        `select count(*) from information_schema.tables where table_schema = 'bronze' and table_name = 'strict'`,
      ),
      0,
    );
  });
});

describe('item 7: empty inputs land nothing and decide no type', () => {
  it('0-byte CSV, header-only CSV, blank lines, 0-byte JSON and [] create no phantom column; the real file types the table', async () => {
    const cp936 = (await table('cp936')).slice(0, 50);
    const p = await project({ codes: { path: 'csv/*.csv' }, docs: { path: 'json/*.json' } });
    await p.write('csv/0-empty.csv', '');
    await p.write('csv/1-header.csv', 'code,first_char,run\n');
    await p.write('csv/1-blank-lines.csv', '\n\n\r\n');
    await p.write('json/0-empty.json', '');
    await p.write('json/1-array.json', '[]');
    const first = ok(await p.run());
    assert.equal(first.stats.streams['src.codes']?.emptyFiles, 3);
    assert.equal(first.stats.streams['src.docs']?.emptyFiles, 2);
    assert.equal(first.stats.streams['src.codes']?.rows, 0);
    assert.match(
      (first.stats.streams['src.codes']?.warnings ?? []).join('\n'),
      /1-header\.csv holds no records: nothing landed/,
    );
    const lake = await p.lake();
    assert.equal(await lake.catalog.getTable('bronze.codes'), undefined, 'no table from empty inputs');
    assert.equal(await lake.catalog.getTable('bronze.docs'), undefined);
    // recorded as read: the next run skips them
    const second = ok(await p.run());
    assert.equal(second.stats.streams['src.codes']?.skippedFiles, 3);
    assert.equal(second.stats.streams['src.codes']?.files, 0);

    await p.write('csv/2-real.csv', codeCsv(cp936));
    await p.write('json/2-real.json', JSON.stringify(cp936.map((r) => ({ code: r[0], len: String(r[1]).length }))));
    const third = ok(await p.run());
    assert.equal(third.stats.streams['src.codes']?.rows, 50);
    const cols = await p.rows(
      `select table_name, column_name, data_type from information_schema.columns where table_schema = 'bronze' and column_name not like '\\_dip\\_%' escape '\\' order by table_name, ordinal_position`,
    );
    assert.deepEqual(
      cols.map((c) => `${String(c['table_name'])}.${String(c['column_name'])} ${String(c['data_type'])}`),
      ['codes.code VARCHAR', 'codes.first_char VARCHAR', 'codes.run BIGINT', 'docs.code VARCHAR', 'docs.len BIGINT'],
    );
    assert.equal(await p.count('raw.codes'), 50);
  });

  it('an empty file after the table exists changes nothing (schema_contract: freeze passes)', async () => {
    const p = await project({ codes: { path: 'csv/*.csv', schema_contract: 'freeze' } });
    await p.write('csv/1.csv', codeCsv((await table('cp936')).slice(0, 5)));
    ok(await p.run());
    await p.write('csv/2.csv', '');
    await p.write('csv/3.csv', 'code,first_char,run\n');
    const r = ok(await p.run());
    assert.equal(r.stats.streams['src.codes']?.emptyFiles, 2);
    const lake = await p.lake();
    assert.equal((await lake.catalog.getTable('bronze.codes'))?.schemaVersion, 1);
    assert.equal(await p.count('bronze.codes'), 5);
  });
});

describe('item 7: a file whose only record is malformed is not empty', () => {
  it('its record goes to quarantine', async () => {
    const p = await project({ codes: { path: 'csv/*.csv' } });
    await p.write('csv/1.csv', 'code,first_char,run\n8140,"丂",5,extra\n');
    const r = await p.run();
    // Its one record was quarantined and none landed: the run is warned (issue 14, item 9).
    assert.equal(r.status, 'warned');
    assert.equal(r.stats.streams['src.codes']?.quarantined, 1);
    assert.equal(r.stats.streams['src.codes']?.emptyFiles, undefined);
    assert.equal(await p.count('quarantine.codes'), 1);
  });
});

describe('item 9a: a glob matching no files', () => {
  it('warns in the run stats and the CLI summary, and exits 0', async () => {
    const p = await project({ codes: { path: 'incoming/*.csv' } });
    const r = ok(await p.run());
    assert.deepEqual(r.stats.streams['src.codes']?.warnings, [
      `p.src.codes: path "incoming/*.csv" matched no files (relative to ${p.dir})`,
    ]);
    const cli = await runCli(['run', '--quiet'], p.dir);
    assert.equal(cli.code, 0);
    assert.match(cli.stderr, /warning: p\.src\.codes: path "incoming\/\*\.csv" matched no files/);
  });

  it('require_files: true fails the run non-zero, naming the pattern', async () => {
    const p = await project({ codes: { path: ['data/*.csv', 'incoming/*.csv'], require_files: true } });
    await p.write('data/a.csv', codeCsv((await table('cp936')).slice(0, 3)));
    const r = await p.run();
    assert.equal(r.status, 'failed');
    assert.equal(r.errors[0]?.exitCode, 3);
    assert.match(r.errors[0]?.message ?? '', /path "incoming\/\*\.csv" matched no files .*require_files: true/);
    const cli = await runCli(['run', '--quiet'], p.dir);
    assert.equal(cli.code, 3);
    assert.match(cli.stderr, /matched no files/);
  });
});
