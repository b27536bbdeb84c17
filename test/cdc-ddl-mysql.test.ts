/**
 * DDL while `dip run --follow` streams the MariaDB binlog: ADD COLUMN with a default and
 * nullable, MODIFY widening (INT → BIGINT, INT → VARCHAR) and narrowing (VARCHAR → BIGINT),
 * DROP COLUMN, RENAME COLUMN, DROP TABLE, each followed by writes. After each step the current
 * table equals the source row by row (count and an md5 over every column as text), and the
 * change log holds every event once; the dropped table fails its own stream with a config
 * error while the others go on. Then a DDL made while no run reads, and a resumed run.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RunEvent } from '../src/pipeline/events.js';
import { execMariadb, type MariadbServer, mariadbTestOptions, startMariadb } from './support/mariadb.js';
import { CLI, TestProject } from './support/project.js';
import { waitUntil } from './support/service.js';

type Texts = (string | null)[][];

const texts = (rows: Record<string, unknown>[]): Texts =>
  rows.map((r) => Object.values(r).map((v) => (v === null || v === undefined ? null : String(v))));
const digest = (rows: Texts): string => createHash('md5').update(JSON.stringify(rows)).digest('hex');

describe('cdc ddl (mariadb binlog, --follow)', mariadbTestOptions(), () => {
  let server: MariadbServer | undefined;
  let p: TestProject | undefined;
  let runEnded = '';

  before(async () => {
    server = await startMariadb();
  });

  const others: TestProject[] = [];

  after(async () => {
    for (const o of others) await o.dispose();
    await p?.dispose();
    await server?.stop();
  });

  const exec = (...statements: string[]) => execMariadb((server as MariadbServer).url, ...statements);

  /** The source table's columns now, in order. */
  const columnsOf = async (table: string): Promise<string[]> =>
    (
      await exec(
        `SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'dip' AND TABLE_NAME = '${table}' ORDER BY ORDINAL_POSITION`,
      )
    ).map((r) => String(r['c']));

  /** Source and lake, every source column as text, ordered by id: count and md5 must agree. */
  const compare = async (table: string): Promise<{ source: Texts; lake: Texts }> => {
    const columns = await columnsOf(table);
    const source = texts(
      await exec(
        `SELECT ${columns.map((c) => `CAST(\`${c}\` AS CHAR) AS \`${c}\``).join(', ')} FROM ${table} ORDER BY id`,
      ),
    );
    const lake = texts(
      await (p as TestProject).rows(
        `SELECT ${columns.map((c) => `"${c}"::VARCHAR AS "${c}"`).join(', ')} FROM bronze.${table} ORDER BY id`,
      ),
    );
    return { source, lake };
  };

  const converges = async (table: string, what: string): Promise<void> => {
    let last = { source: [] as Texts, lake: [['(not read yet)']] as Texts };
    let failure = '';
    try {
      await waitUntil(
        async () => {
          last = await compare(table).catch((err: unknown) => {
            failure = String(err);
            return last;
          });
          return last.lake.length === last.source.length && digest(last.lake) === digest(last.source);
        },
        { what: `${table} to equal the source ${what}`, timeoutMs: 60_000, intervalMs: 250 },
      );
    } catch (err) {
      assert.deepEqual(last.lake, last.source, `${what}: ${String(err)} ${failure} ${runEnded}`);
    }
    assert.equal(last.lake.length, last.source.length, `${what}: row count`);
    assert.equal(digest(last.lake), digest(last.source), `${what}: checksum`);
  };

  /** Events per op in the change log (snapshot reads `r` aside), and events found twice. */
  const changeLog = async (table: string) => {
    const lake = p as TestProject;
    const ops = Object.fromEntries(
      (
        await lake.rows(
          `SELECT _cdc_op AS op, count(*)::INTEGER AS n FROM bronze.${table}_changes WHERE _cdc_op <> 'r' GROUP BY 1 ORDER BY 1`,
        )
      ).map((r) => [r['op'], r['n']]),
    );
    const twice = await lake.num(
      `SELECT count(*) FROM (SELECT id, _cdc_op, _cdc_lsn FROM bronze.${table}_changes WHERE _cdc_op <> 'r' GROUP BY ALL HAVING count(*) > 1)`,
    );
    return { ops, twice };
  };

  it('follows ADD/MODIFY/DROP/RENAME COLUMN and DROP TABLE, each followed by writes', {
    timeout: 300_000,
  }, async () => {
    await exec(
      'CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(20), b INT)',
      'CREATE TABLE other (id INT PRIMARY KEY, v INT)',
      'CREATE TABLE gone (id INT PRIMARY KEY, v INT)',
      "INSERT INTO t SELECT seq, CONCAT('a', seq), seq FROM seq_1_to_100",
      'INSERT INTO other SELECT seq, seq FROM seq_1_to_10',
      'INSERT INTO gone SELECT seq, seq FROM seq_1_to_10',
      'CREATE TABLE moved (id INT PRIMARY KEY, v INT)',
      'INSERT INTO moved SELECT seq, seq FROM seq_1_to_10',
    );
    p = await TestProject.withSources({
      db: {
        type: 'mysql',
        connection: { url: (server as MariadbServer).url },
        mode: 'cdc',
        tables: ['t', 'other', 'gone', 'moved'],
        cdc: { flush_interval: '100ms', idle_timeout: '60s', batch_records: 50 },
      },
    });
    const failures: { stream: string; error: string }[] = [];
    const schemaChanges: string[] = [];
    const onEvent = (e: RunEvent) => {
      if (e.type === 'stream_failed') failures.push({ stream: e.stream, error: e.error });
      if (e.type === 'schema_changed' && e.table === 'bronze.t_changes') schemaChanges.push(...e.changes);
    };
    const controller = new AbortController();
    await p.lake(); // opened once, before the run and the queries share it
    const following = p.run('p', { follow: true, signal: controller.signal, onEvent });
    following.then(
      (r) => (runEnded = `the run ended: ${JSON.stringify(r.errors)}`),
      (err: unknown) => (runEnded = `the run failed: ${String(err)}`),
    );
    await converges('t', 'after the snapshot');
    await converges('other', 'after the snapshot');

    // ADD COLUMN with a default: existing rows get it without row events.
    await exec(
      "ALTER TABLE t ADD COLUMN d VARCHAR(10) DEFAULT 'dd'",
      "INSERT INTO t (id, a, b) VALUES (101, 'a101', 101)",
      "INSERT INTO t (id, a, b, d) VALUES (102, 'a102', 102, 'set')",
      "UPDATE t SET d = 'upd', a = 'x' WHERE id IN (1, 2, 3)",
    );
    await converges('t', 'after ADD COLUMN d DEFAULT');
    // ADD COLUMN nullable.
    await exec(
      'ALTER TABLE t ADD COLUMN e INT NULL',
      'INSERT INTO t (id, e) VALUES (103, 7)',
      'UPDATE t SET e = id WHERE id <= 5',
    );
    await converges('t', 'after ADD COLUMN e NULL');
    // Widening INT → BIGINT, then INT → VARCHAR, with a value only the new type holds.
    await exec('ALTER TABLE t MODIFY e BIGINT', 'INSERT INTO t (id, e) VALUES (104, 1099511627776)');
    await converges('t', 'after MODIFY e BIGINT');
    await exec(
      'ALTER TABLE t MODIFY b VARCHAR(20)',
      "INSERT INTO t (id, b) VALUES (105, 'not-a-number')",
      "UPDATE t SET b = 'ten' WHERE id = 10",
    );
    await converges('t', 'after MODIFY b VARCHAR');
    // Narrowing VARCHAR → BIGINT (the values that do not convert go first).
    await exec(
      "UPDATE t SET b = '7' WHERE id IN (10, 105)",
      'ALTER TABLE t MODIFY b BIGINT',
      'INSERT INTO t (id, b) VALUES (106, -5)',
      'UPDATE t SET b = b + 1 WHERE id <= 3',
    );
    await converges('t', 'after MODIFY b BIGINT');
    // DROP COLUMN, then RENAME COLUMN.
    await exec('ALTER TABLE t DROP COLUMN a', 'INSERT INTO t (id, b) VALUES (107, 107)', 'DELETE FROM t WHERE id = 4');
    await converges('t', 'after DROP COLUMN a');
    await exec(
      'ALTER TABLE t RENAME COLUMN d TO d2',
      "INSERT INTO t (id, d2) VALUES (108, 'renamed')",
      "UPDATE t SET d2 = 'r' WHERE id = 5",
    );
    await converges('t', 'after RENAME COLUMN d TO d2');
    // A DDL with no write after it: the existing rows still get the default.
    await exec("ALTER TABLE t ADD COLUMN g VARCHAR(5) DEFAULT 'g'");
    await converges('t', 'after ADD COLUMN g DEFAULT with no write after it');
    // DROP TABLE: its stream fails on its own; the others keep streaming.
    await exec(
      'INSERT INTO gone VALUES (11, 11)',
      'DROP TABLE gone',
      'INSERT INTO other VALUES (11, 11)',
      'INSERT INTO t (id) VALUES (109)',
    );
    await converges('other', 'after DROP TABLE gone');
    await converges('t', 'after DROP TABLE gone');
    await waitUntil(async () => failures.length > 0, { what: 'the gone stream to fail', timeoutMs: 10_000 });
    assert.deepEqual(
      failures.map((f) => f.stream),
      ['db.gone'],
    );
    assert.match(
      failures[0]?.error ?? '',
      /^db: table dip\.gone of stream gone was dropped or renamed \(DDL at binlog\.\d+:\d+\); its changes up to there are in the lake/,
    );
    assert.doesNotMatch(failures[0]?.error ?? '', /permission/i);
    assert.deepEqual(texts(await p.rows('SELECT id::VARCHAR, v::VARCHAR FROM bronze.gone ORDER BY id DESC LIMIT 1')), [
      ['11', '11'],
    ]);

    // RENAME TABLE: the same, for the stream of the old name.
    await exec(
      'RENAME TABLE moved TO moved2',
      'INSERT INTO moved2 VALUES (11, 11)',
      'INSERT INTO other VALUES (12, 12)',
    );
    await converges('other', 'after RENAME TABLE moved');
    await waitUntil(async () => failures.length > 1, { what: 'the moved stream to fail', timeoutMs: 10_000 });
    assert.deepEqual(
      failures.map((f) => f.stream),
      ['db.gone', 'db.moved'],
    );
    assert.match(
      failures[1]?.error ?? '',
      /^db: table dip\.moved of stream moved was dropped or renamed \(DDL at binlog\.\d+:\d+\)/,
    );
    assert.equal(await p.count('bronze.moved'), 10);

    // Every event once, as counted from the workload above.
    assert.deepEqual(await changeLog('t'), { ops: { c: 9, d: 1, u: 3 + 5 + 1 + 2 + 3 + 1 }, twice: 0 });
    assert.deepEqual(await changeLog('other'), { ops: { c: 2 }, twice: 0 });
    // The change log keeps every column it ever had (b widened to text: it held 'not-a-number');
    // the current table has the source's columns.
    const types = async (table: string) =>
      (
        await p?.rows(
          `SELECT column_name, column_type FROM (DESCRIBE ${table}) WHERE column_name NOT LIKE '\\_%' ESCAPE '\\'`,
        )
      )?.map((r) => `${String(r['column_name'])} ${String(r['column_type'])}`);
    assert.deepEqual(await types('bronze.t_changes'), [
      'id INTEGER',
      'a VARCHAR',
      'b VARCHAR',
      'd VARCHAR',
      'e BIGINT',
      'd2 VARCHAR',
      'g VARCHAR',
    ]);
    assert.deepEqual(await types('bronze.t'), ['id INTEGER', 'b VARCHAR', 'd2 VARCHAR', 'e BIGINT', 'g VARCHAR']);
    assert.ok(
      schemaChanges.includes('+d VARCHAR') && schemaChanges.includes('b INTEGER → VARCHAR'),
      schemaChanges.join(', '),
    );

    controller.abort(new Error('stopped by the test'));
    await assert.rejects(following);

    // A DDL while nothing reads, between writes: the next run reads the writes before it with the
    // old columns (from its state), copies the table again at the DDL, and goes on.
    await exec(
      'INSERT INTO t (id, b) VALUES (110, 110)',
      "ALTER TABLE t ADD COLUMN f VARCHAR(5) NOT NULL DEFAULT 'f'",
      "INSERT INTO t (id, b, f) VALUES (111, 111, 'g')",
      'UPDATE other SET v = 0 WHERE id = 1',
    );
    const resumed = await p.run();
    assert.equal(resumed.status, 'failed');
    assert.deepEqual(resumed.errors.map((e) => [e.stream, e.exitCode]).sort(), [
      ['db.gone', 2],
      ['db.moved', 2],
    ]);
    assert.match(
      resumed.errors.map((e) => e.message).join('\n'),
      /db\.tables\[2\]: no table or view dip\.gone in the database/,
    );
    await converges('t', 'after a DDL while stopped');
    await converges('other', 'after a DDL while stopped');
    assert.deepEqual(await changeLog('t'), { ops: { c: 11, d: 1, u: 15 }, twice: 0 });
    assert.deepEqual(await changeLog('other'), { ops: { c: 2, u: 1 }, twice: 0 });

    // A run stopped after a DDL statement but before its copy landed left `copy_due` in the
    // state: the next run takes the copy again (here it brings a change the binlog never saw).
    const lake = await p.lake();
    const state = (await lake.catalog.getState('p', 'db', 't')) as Record<string, unknown>;
    await lake.catalog.commit({
      runId: 'copy-due',
      operation: 'state',
      tables: [],
      state: [{ pipeline: 'p', source: 'db', stream: 't', value: { ...state, copy_due: true } }],
      summary: { pipeline: 'p' },
    });
    await exec('SET SESSION sql_log_bin = 0', "UPDATE t SET f = 'nolog' WHERE id = 1");
    const copied = await p.run();
    assert.deepEqual(copied.errors.map((e) => e.stream).sort(), ['db.gone', 'db.moved']);
    await converges('t', 'after a copy that was due');
    assert.equal(((await lake.catalog.getState('p', 'db', 't')) as Record<string, unknown>)['copy_due'], undefined);
    assert.deepEqual(await changeLog('t'), { ops: { c: 11, d: 1, u: 15 }, twice: 0 });
  });

  it('dip run --follow: a dropped table fails its stream with a config error, not a transient one', {
    timeout: 120_000,
  }, async () => {
    await exec(
      'CREATE TABLE keep (id INT PRIMARY KEY, v INT)',
      'CREATE TABLE dropme (id INT PRIMARY KEY, v INT)',
      'INSERT INTO keep VALUES (1, 1)',
      'INSERT INTO dropme VALUES (1, 1)',
    );
    const cli = await TestProject.withSources({
      db: {
        type: 'mysql',
        connection: { url: (server as MariadbServer).url },
        mode: 'cdc',
        tables: ['keep', 'dropme'],
        cdc: { flush_interval: '100ms', idle_timeout: '60s' },
      },
    });
    others.push(cli);
    const child = spawn(process.execPath, [CLI, '-p', cli.dir, 'run', 'p', '--follow'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitUntil(async () => /dropme snapshot/.test(output), { what: 'the snapshot', timeoutMs: 60_000 });
      await exec('DROP TABLE dropme', 'INSERT INTO keep VALUES (2, 2)');
      await waitUntil(async () => /was dropped or renamed/.test(output), {
        what: `the dropme stream to fail (output: ${output.slice(-2000)})`,
        timeoutMs: 30_000,
      });
      assert.equal(child.exitCode, null, 'the other stream goes on');
      await waitUntil(async () => /keep 1 changes/.test(output), { what: 'keep to go on', timeoutMs: 30_000 });
    } finally {
      child.kill('SIGTERM');
    }
    const code = await exited;
    assert.notEqual(code, 75, output.slice(-2000));
    assert.doesNotMatch(output, /permission|transient/i);
    assert.match(output, /table dip\.dropme of stream dropme was dropped or renamed/);
  });
});
