/**
 * The Catalog contract (src/catalog/types.ts), one suite run against every implementation:
 * SQLite on a temp file, PostgreSQL on a throwaway server (one per file, a fresh schema per test).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openCatalog } from '../src/catalog/index.js';
import { PostgresCatalog } from '../src/catalog/postgres.js';
import { SqliteCatalog } from '../src/catalog/sqlite.js';
import type {
  Catalog,
  CommitInfo,
  CommitRequest,
  DataFile,
  LedgerEntry,
  NewFile,
  RunStats,
  TableChange,
  TableInfo,
  TableSchema,
  Zone,
} from '../src/catalog/types.js';
import type { CatalogConfig } from '../src/config/schema.js';
import { CommitConflictError } from '../src/core/errors.js';
import { type PostgresServer, dropSchema, postgresTestOptions, startPostgres, withClient } from './support/postgres.js';

export interface CatalogFixture {
  catalog: Catalog;
  /**
   * The config that opens the same storage (absolute paths), for a second instance in this
   * process and a writer in another process; the tests that need it are skipped without it.
   */
  config?: CatalogConfig;
  cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------

const ORDERS = 'bronze.orders';
const CUSTOMERS = 'bronze.customers';
const EVENTS = 'silver.events';

const SCHEMA_V1: TableSchema = {
  columns: [
    { name: 'id', type: 'BIGINT' },
    { name: 'customer', type: 'VARCHAR' },
  ],
};
const SCHEMA_V2: TableSchema = {
  columns: [
    { name: 'id', type: 'BIGINT' },
    { name: 'customer', type: 'VARCHAR' },
    { name: 'amount', type: 'DOUBLE' },
  ],
};
/** Over 2^32: totals and sizes must not be truncated to 32 bits or returned as strings. */
const BIG = 5_000_000_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Commits far enough apart that their committedAt times differ and lie strictly in order. */
const GAP_MS = 25;

function zoneOf(table: string): Zone {
  return table.split('.')[0] as Zone;
}

function f(path: string, rows: number, bytes: number, meta?: Record<string, unknown>): NewFile {
  return meta === undefined ? { path, rows, bytes } : { path, rows, bytes, meta };
}

function change(table: string, add: NewFile[], extra: Partial<TableChange> = {}): TableChange {
  return { table, zone: zoneOf(table), format: 'parquet', add, ...extra };
}

function appendReq(
  table: string,
  add: NewFile[],
  extra: Partial<TableChange> = {},
  req: Partial<CommitRequest> = {},
): CommitRequest {
  return { operation: 'append', tables: [change(table, add, extra)], ...req };
}

const paths = (files: DataFile[]): string[] => files.map((x) => x.path);
const sorted = (xs: Iterable<string>): string[] => [...xs].sort();
const ids = (commits: CommitInfo[]): number[] => commits.map((c) => c.id);
const normCommit = (c: CommitInfo): CommitInfo => ({ ...c, tables: sorted(c.tables) });

async function mustTable(catalog: Catalog, name: string): Promise<TableInfo> {
  const t = await catalog.getTable(name);
  assert.ok(t, `table ${name} should exist`);
  return t;
}

function assertValidDate(d: unknown, what: string): asserts d is Date {
  assert.ok(d instanceof Date, `${what} should be a Date, got ${String(d)}`);
  assert.ok(!Number.isNaN(d.getTime()), `${what} should be a valid Date`);
}

function assertId(n: unknown, what: string): asserts n is number {
  assert.equal(typeof n, 'number', `${what} should be a number, got ${typeof n}`);
  assert.ok(Number.isSafeInteger(n) && (n as number) > 0, `${what} should be a positive integer, got ${String(n)}`);
}

/** Everything a failed commit could have left behind. */
async function snapshot(catalog: Catalog, tables: string[]) {
  const live: Record<string, DataFile[]> = {};
  const info: Record<string, TableInfo | undefined> = {};
  const versions: Record<string, unknown> = {};
  for (const t of tables) {
    live[t] = await catalog.liveFiles(t);
    info[t] = await catalog.getTable(t);
    versions[t] = await catalog.listSchemaVersions(t);
  }
  return {
    tables: await catalog.listTables(),
    commits: await catalog.listCommits(),
    latest: await catalog.resolveAsOf({}),
    referenced: sorted(await catalog.referencedPaths()),
    live,
    info,
    versions,
    state: await catalog.getState('shop', 'files', 'orders'),
    ledger: [...(await catalog.getLedger('shop', 'files', 'orders')).entries()],
  };
}

const EMPTY_STATS: RunStats = { streams: {} };

/** Opens the catalog in a child process, waits for the go signal, then appends `count` files. */
const WRITER_SCRIPT = `
const [indexPath, configJson, prefix, count] = process.argv.slice(1);
const { openCatalog } = await import(indexPath);
const catalog = await openCatalog(JSON.parse(configJson), process.cwd());
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const ids = [];
for (let i = 0; i < Number(count); i++) {
  const c = await catalog.commit({ operation: 'append', tables: [{ table: 'bronze.orders', zone: 'bronze', format: 'parquet',
    add: [{ path: 'o/' + prefix + '-' + i + '.parquet', rows: 1, bytes: 1 }] }] });
  ids.push(c.id);
}
await catalog.close();
process.stdout.write(JSON.stringify(ids) + '\\n', () => process.exit(0));
`;

function startWriterProcess(
  config: CatalogConfig,
  prefix: string,
  count: number,
): { ready: Promise<void>; done: Promise<number[]> } {
  const indexPath = fileURLToPath(new URL('../src/catalog/index.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      WRITER_SCRIPT,
      indexPath,
      JSON.stringify(config),
      prefix,
      String(count),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  let started = false;
  let signalReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (signalReady = resolve));
  child.stdin.on('error', () => undefined); // the writer may exit before reading
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    if (!started && out.startsWith('ready\n')) {
      started = true;
      child.stdin.write('go\n');
      signalReady();
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const done = new Promise<number[]>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('[')) resolve(JSON.parse(last) as number[]);
      else reject(new Error(`writer process exited with ${String(code)}:\n${out}\n${err}`));
    });
  });
  // A writer that dies before it is ready must not leave the test waiting forever.
  return { ready: Promise.race([ready, done.then(() => undefined)]), done };
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

export function catalogContract(name: string, factory: () => Promise<CatalogFixture>): void {
  describe(`Catalog contract: ${name}`, () => {
    let fx: CatalogFixture;
    let cat: Catalog;

    beforeEach(async () => {
      fx = await factory();
      cat = fx.catalog;
    });
    afterEach(async () => {
      await fx?.cleanup();
    });

    it('starts empty', async () => {
      assert.deepEqual(await cat.listTables(), []);
      assert.deepEqual(await cat.listCommits(), []);
      assert.equal(await cat.getTable(ORDERS), undefined);
      assert.equal(await cat.getCommit(1), undefined);
      assert.equal(await cat.resolveAsOf({}), undefined);
      assert.equal(await cat.resolveAsOf({ commit: 10 }), undefined);
      assert.equal(await cat.resolveAsOf({ at: new Date() }), undefined);
      assert.deepEqual(await cat.liveFiles(ORDERS), []);
      assert.deepEqual(await cat.listSchemaVersions(ORDERS), []);
      assert.equal(await cat.schemaAt(ORDERS), undefined);
      assert.deepEqual(sorted(await cat.referencedPaths()), []);
      assert.deepEqual(await cat.expireRemovedFiles(new Date(Date.now() + 60_000)), []);
      assert.equal(await cat.getState('shop', 'files', 'orders'), undefined);
      assert.equal((await cat.getLedger('shop', 'files', 'orders')).size, 0);
      assert.deepEqual(await cat.listRuns(), []);
      assert.equal(await cat.getRun('nope'), undefined);
    });

    // --- tables, schema versions -----------------------------------------------------------

    it('first commit creates the table with schema version 1', async () => {
      const t0 = Date.now();
      const c = await cat.commit(
        appendReq(
          ORDERS,
          [
            f('bronze/orders/a.parquet', 10, 1000, { run: 'r1', partition: { date: '2026-11-22' } }),
            f('bronze/orders/b.parquet', 5, 500),
          ],
          { schema: SCHEMA_V1, primaryKey: ['id'] },
          { runId: 'run-1', summary: { note: 'first', files: 2 } },
        ),
      );
      const t1 = Date.now();

      assertId(c.id, 'commit id');
      assertValidDate(c.committedAt, 'committedAt');
      assert.ok(c.committedAt.getTime() >= t0 - 1000 && c.committedAt.getTime() <= t1 + 1000, 'committedAt is now');
      assert.deepEqual(normCommit(c), {
        id: c.id,
        committedAt: c.committedAt,
        runId: 'run-1',
        operation: 'append',
        tables: [ORDERS],
        summary: { note: 'first', files: 2 },
      });
      const stored = await cat.getCommit(c.id);
      assert.ok(stored);
      assert.deepEqual(normCommit(stored), normCommit(c));

      const t = await mustTable(cat, ORDERS);
      assertId(t.id, 'table id');
      assertValidDate(t.createdAt, 'createdAt');
      assert.deepEqual(t, {
        id: t.id,
        name: ORDERS,
        zone: 'bronze',
        format: 'parquet',
        primaryKey: ['id'],
        createdAt: t.createdAt,
        headCommit: c.id,
        schemaVersion: 1,
        rows: 15,
        files: 2,
        bytes: 1500,
      });
      assert.deepEqual(await cat.listTables(), [t]);

      const versions = await cat.listSchemaVersions(ORDERS);
      assert.equal(versions.length, 1);
      assertValidDate(versions[0]?.createdAt, 'schema version createdAt');
      assert.deepEqual(versions, [
        { table: ORDERS, version: 1, schema: SCHEMA_V1, commitId: c.id, createdAt: versions[0]?.createdAt },
      ]);
      assert.deepEqual(await cat.schemaAt(ORDERS), versions[0]);
      assert.deepEqual(await cat.schemaAt(ORDERS, c.id), versions[0]);

      const live = await cat.liveFiles(ORDERS);
      assert.equal(live.length, 2);
      for (const file of live) assertId(file.id, 'file id');
      assert.notEqual(live[0]?.id, live[1]?.id);
      assert.deepEqual(live, [
        {
          id: live[0]?.id,
          table: ORDERS,
          path: 'bronze/orders/a.parquet',
          rows: 10,
          bytes: 1000,
          schemaVersion: 1,
          addedCommit: c.id,
          removedCommit: null,
          meta: { run: 'r1', partition: { date: '2026-11-22' } },
        },
        {
          id: live[1]?.id,
          table: ORDERS,
          path: 'bronze/orders/b.parquet',
          rows: 5,
          bytes: 500,
          schemaVersion: 1,
          addedCommit: c.id,
          removedCommit: null,
          meta: {},
        },
      ]);
      assert.equal(await cat.resolveAsOf({}), c.id);
    });

    it('a commit without runId or summary records null and {}; primaryKey defaults to []', async () => {
      const c = await cat.commit(appendReq(EVENTS, [f('silver/events/1.parquet', 1, 1)], { format: 'ndjson' }));
      assert.equal(c.runId, null);
      assert.deepEqual(c.summary, {});
      const stored = await cat.getCommit(c.id);
      assert.equal(stored?.runId, null);
      assert.deepEqual(stored?.summary, {});
      const t = await mustTable(cat, EVENTS);
      assert.deepEqual(t.primaryKey, []);
      assert.equal(t.zone, 'silver');
      assert.equal(t.format, 'ndjson');
      assert.equal(t.schemaVersion, null, 'no schema given → no schema version');
      assert.deepEqual(await cat.listSchemaVersions(EVENTS), []);
      assert.equal(await cat.schemaAt(EVENTS), undefined);
      assert.equal((await cat.liveFiles(EVENTS))[0]?.schemaVersion, null);
    });

    it('the same schema again records no new version', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 10)], { schema: SCHEMA_V1 }));
      const c2 = await cat.commit(appendReq(ORDERS, [f('o/2.parquet', 2, 20)], { schema: structuredClone(SCHEMA_V1) }));
      const t = await mustTable(cat, ORDERS);
      assert.equal(t.schemaVersion, 1);
      assert.equal(t.headCommit, c2.id);
      const versions = await cat.listSchemaVersions(ORDERS);
      assert.deepEqual(
        versions.map((v) => [v.version, v.commitId]),
        [[1, c1.id]],
      );
      assert.deepEqual(
        (await cat.liveFiles(ORDERS)).map((x) => [x.path, x.schemaVersion]),
        [
          ['o/1.parquet', 1],
          ['o/2.parquet', 1],
        ],
      );
      // A commit without a schema keeps the current version.
      await cat.commit(appendReq(ORDERS, [f('o/3.parquet', 3, 30)]));
      assert.equal((await mustTable(cat, ORDERS)).schemaVersion, 1);
      assert.equal((await cat.liveFiles(ORDERS))[2]?.schemaVersion, 1);
      assert.equal((await cat.listSchemaVersions(ORDERS)).length, 1);
    });

    it('a changed schema becomes version 2; schemaAt answers per commit', async () => {
      const c0 = await cat.commit(appendReq(CUSTOMERS, [f('c/0.parquet', 1, 1)], { schema: SCHEMA_V1 }));
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 10)], { schema: SCHEMA_V1 }));
      const c2 = await cat.commit(appendReq(ORDERS, [f('o/2.parquet', 1, 10)], { schema: SCHEMA_V1 }));
      const c3 = await cat.commit(appendReq(ORDERS, [f('o/3.parquet', 1, 10)], { schema: SCHEMA_V2 }));
      const c4 = await cat.commit(appendReq(ORDERS, [f('o/4.parquet', 1, 10)], { schema: SCHEMA_V2 }));

      const t = await mustTable(cat, ORDERS);
      assert.equal(t.schemaVersion, 2);
      const versions = [...(await cat.listSchemaVersions(ORDERS))].sort((a, b) => a.version - b.version);
      assert.deepEqual(
        versions.map((v) => ({ table: v.table, version: v.version, schema: v.schema, commitId: v.commitId })),
        [
          { table: ORDERS, version: 1, schema: SCHEMA_V1, commitId: c1.id },
          { table: ORDERS, version: 2, schema: SCHEMA_V2, commitId: c3.id },
        ],
      );

      assert.equal(await cat.schemaAt(ORDERS, c0.id), undefined, 'before the table existed');
      assert.equal((await cat.schemaAt(ORDERS, c1.id))?.version, 1);
      assert.equal((await cat.schemaAt(ORDERS, c2.id))?.version, 1);
      assert.deepEqual((await cat.schemaAt(ORDERS, c2.id))?.schema, SCHEMA_V1);
      assert.equal((await cat.schemaAt(ORDERS, c3.id))?.version, 2);
      assert.equal((await cat.schemaAt(ORDERS, c4.id))?.version, 2);
      assert.deepEqual(await cat.schemaAt(ORDERS), versions[1]);
      assert.deepEqual((await cat.schemaAt(ORDERS))?.schema, SCHEMA_V2);
      // The other table is unaffected.
      assert.equal((await cat.schemaAt(CUSTOMERS))?.version, 1);
      assert.equal((await mustTable(cat, CUSTOMERS)).schemaVersion, 1);

      assert.deepEqual(
        (await cat.liveFiles(ORDERS)).map((x) => x.schemaVersion),
        [1, 1, 2, 2],
      );
    });

    // --- files: append, replace, remove -------------------------------------------------------

    it('append adds live files in order; table totals are sums over live files', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 100, 1_000)]));
      const c2 = await cat.commit(appendReq(ORDERS, [f('o/2.parquet', 200, BIG), f('o/3.parquet', 300, 3_000)]));
      const other = await cat.commit(appendReq(CUSTOMERS, [f('c/1.parquet', 7, 70)]));
      const c3 = await cat.commit(appendReq(ORDERS, [f('o/4.parquet', 0, 0)]));

      const live = await cat.liveFiles(ORDERS);
      assert.deepEqual(paths(live), ['o/1.parquet', 'o/2.parquet', 'o/3.parquet', 'o/4.parquet']);
      assert.deepEqual(
        live.map((x) => x.addedCommit),
        [c1.id, c2.id, c2.id, c3.id],
      );
      assert.ok(live.every((x) => x.removedCommit === null && x.table === ORDERS));
      assert.equal(live[1]?.bytes, BIG);

      const t = await mustTable(cat, ORDERS);
      assert.equal(t.rows, 600);
      assert.equal(t.files, 4);
      assert.equal(t.bytes, 1_000 + BIG + 3_000);
      assert.equal(t.headCommit, c3.id, 'head is the last commit touching the table');

      const c = await mustTable(cat, CUSTOMERS);
      assert.deepEqual([c.rows, c.files, c.bytes, c.headCommit], [7, 1, 70, other.id]);
      assert.deepEqual(sorted((await cat.listTables()).map((x) => x.name)), [CUSTOMERS, ORDERS]);
    });

    it("remove: 'all' replaces every live file", async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 10), f('o/2.parquet', 2, 20)]));
      const c2 = await cat.commit({
        operation: 'replace',
        tables: [change(ORDERS, [f('o/3.parquet', 3, 30)], { remove: 'all' })],
      });
      assert.equal(c2.operation, 'replace');
      assert.deepEqual(paths(await cat.liveFiles(ORDERS)), ['o/3.parquet']);
      const t = await mustTable(cat, ORDERS);
      assert.deepEqual([t.rows, t.files, t.bytes, t.headCommit], [3, 1, 30, c2.id]);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c1.id)), ['o/1.parquet', 'o/2.parquet']);

      // Replace with nothing empties the table but keeps it.
      const c3 = await cat.commit({ operation: 'replace', tables: [change(ORDERS, [], { remove: 'all' })] });
      assert.deepEqual(await cat.liveFiles(ORDERS), []);
      const empty = await mustTable(cat, ORDERS);
      assert.deepEqual([empty.rows, empty.files, empty.bytes, empty.headCommit], [0, 0, 0, c3.id]);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c2.id)), ['o/3.parquet']);
      // Replace on an empty table is fine.
      await cat.commit({
        operation: 'replace',
        tables: [change(ORDERS, [f('o/4.parquet', 4, 40)], { remove: 'all' })],
      });
      assert.deepEqual(paths(await cat.liveFiles(ORDERS)), ['o/4.parquet']);
    });

    it('removing specific paths keeps the others', async () => {
      await cat.commit(appendReq(ORDERS, [f('o/a.parquet', 1, 10), f('o/b.parquet', 2, 20), f('o/c.parquet', 4, 40)]));
      await cat.commit(appendReq(CUSTOMERS, [f('c/a.parquet', 1, 1)]));
      const c2 = await cat.commit({
        operation: 'compact',
        tables: [change(ORDERS, [f('o/d.parquet', 8, 80)], { remove: ['o/b.parquet'] })],
      });
      const live = await cat.liveFiles(ORDERS);
      assert.deepEqual(paths(live), ['o/a.parquet', 'o/c.parquet', 'o/d.parquet']);
      const t = await mustTable(cat, ORDERS);
      assert.deepEqual([t.rows, t.files, t.bytes, t.headCommit], [13, 3, 130, c2.id]);
      await cat.commit({
        operation: 'compact',
        tables: [change(ORDERS, [], { remove: ['o/a.parquet', 'o/d.parquet'] })],
      });
      assert.deepEqual(paths(await cat.liveFiles(ORDERS)), ['o/c.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(CUSTOMERS)), ['c/a.parquet'], 'other tables untouched');
    });

    it('removing a path that is not live throws and changes nothing', async () => {
      await cat.commit(appendReq(ORDERS, [f('o/a.parquet', 1, 10)]));
      await cat.commit(appendReq(CUSTOMERS, [f('c/a.parquet', 1, 10)]));
      await cat.commit({
        operation: 'compact',
        tables: [change(ORDERS, [f('o/b.parquet', 1, 10)], { remove: ['o/a.parquet'] })],
      });
      const before = await snapshot(cat, [ORDERS, CUSTOMERS]);

      for (const bad of ['o/missing.parquet', 'o/a.parquet' /* already removed */, 'c/a.parquet' /* other table's */]) {
        await assert.rejects(
          cat.commit({
            operation: 'compact',
            tables: [change(ORDERS, [f('o/new.parquet', 1, 10)], { remove: [bad] })],
          }),
          Error,
          `removing ${bad} must throw`,
        );
        assert.deepEqual(
          await snapshot(cat, [ORDERS, CUSTOMERS]),
          before,
          `nothing of the failed commit removing ${bad} is visible`,
        );
      }
    });

    // --- time travel ----------------------------------------------------------------------------

    it('time travel: liveFiles at an old commit and resolveAsOf by commit and time', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 10), f('o/2.parquet', 1, 10)]));
      await sleep(GAP_MS);
      const c2 = await cat.commit(appendReq(ORDERS, [f('o/3.parquet', 1, 10)]));
      await sleep(GAP_MS);
      const cx = await cat.commit(appendReq(CUSTOMERS, [f('c/1.parquet', 1, 10)]));
      await sleep(GAP_MS);
      const c3 = await cat.commit({
        operation: 'replace',
        tables: [change(ORDERS, [f('o/4.parquet', 1, 10)], { remove: 'all' })],
      });
      await sleep(GAP_MS);
      const c4 = await cat.commit({
        operation: 'compact',
        tables: [change(ORDERS, [f('o/5.parquet', 1, 10)], { remove: ['o/4.parquet'] })],
      });

      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c1.id)), ['o/1.parquet', 'o/2.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c2.id)), ['o/1.parquet', 'o/2.parquet', 'o/3.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, cx.id)), ['o/1.parquet', 'o/2.parquet', 'o/3.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c3.id)), ['o/4.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c4.id)), ['o/5.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS)), ['o/5.parquet']);
      assert.deepEqual(await cat.liveFiles(CUSTOMERS, c2.id), [], 'before the table existed');
      assert.deepEqual(await cat.liveFiles(ORDERS, c1.id - 1), []);

      // By commit id: the newest commit at or before it.
      assert.equal(await cat.resolveAsOf({ commit: c1.id }), c1.id);
      assert.equal(await cat.resolveAsOf({ commit: c3.id }), c3.id);
      assert.equal(await cat.resolveAsOf({ commit: c4.id + 1000 }), c4.id);
      assert.equal(await cat.resolveAsOf({ commit: c1.id - 1 }), undefined);
      assert.equal(await cat.resolveAsOf({}), c4.id);

      // By time.
      assert.equal(await cat.resolveAsOf({ at: c1.committedAt }), c1.id, 'a commit is visible at its own committedAt');
      assert.equal(await cat.resolveAsOf({ at: c2.committedAt }), c2.id);
      assert.equal(await cat.resolveAsOf({ at: new Date(c2.committedAt.getTime() + 5) }), c2.id);
      assert.equal(await cat.resolveAsOf({ at: new Date(c3.committedAt.getTime() - 5) }), cx.id);
      assert.equal(
        await cat.resolveAsOf({ at: new Date(c1.committedAt.getTime() - 5) }),
        undefined,
        'before the first commit',
      );
      assert.equal(await cat.resolveAsOf({ at: new Date(Date.now() + 3_600_000) }), c4.id);

      // The committedAt times the catalog reports are the ones it resolves by.
      for (const c of [c1, c2, cx, c3, c4]) {
        const stored = await cat.getCommit(c.id);
        assert.equal(stored?.committedAt.getTime(), c.committedAt.getTime(), `commit ${c.id} committedAt round-trips`);
      }
    });

    // --- optimistic concurrency, atomicity ------------------------------------------------------

    it('expectedHead: matches commit, a stale head throws CommitConflictError', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 10)], { expectedHead: null }));
      const c2 = await cat.commit(appendReq(ORDERS, [f('o/2.parquet', 1, 10)], { expectedHead: c1.id }));
      await cat.commit(appendReq(CUSTOMERS, [f('c/1.parquet', 1, 10)]));
      // Commits to other tables do not move this table's head.
      const c3 = await cat.commit(appendReq(ORDERS, [f('o/3.parquet', 1, 10)], { expectedHead: c2.id }));
      assert.equal((await mustTable(cat, ORDERS)).headCommit, c3.id);

      const before = await snapshot(cat, [ORDERS, CUSTOMERS]);
      await assert.rejects(
        cat.commit(appendReq(ORDERS, [f('o/x.parquet', 1, 10)], { expectedHead: c2.id })),
        CommitConflictError,
      );
      await assert.rejects(
        cat.commit(appendReq(ORDERS, [f('o/y.parquet', 1, 10)], { expectedHead: null })),
        CommitConflictError,
      );
      await assert.rejects(
        cat.commit({
          operation: 'replace',
          tables: [change(ORDERS, [f('o/z.parquet', 1, 10)], { remove: 'all', expectedHead: c1.id })],
        }),
        (err: unknown) => {
          assert.ok(err instanceof CommitConflictError, `expected CommitConflictError, got ${String(err)}`);
          assert.equal(err.kind, 'conflict');
          return true;
        },
      );
      assert.deepEqual(await snapshot(cat, [ORDERS, CUSTOMERS]), before);
    });

    it('expectedSchemaVersion: a schema changed by another commit throws CommitConflictError (schema_changed)', async () => {
      await cat.commit(
        appendReq(ORDERS, [f('o/1.parquet', 1, 10)], { schema: SCHEMA_V1, expectedSchemaVersion: null }),
      );
      await cat.commit(appendReq(ORDERS, [f('o/2.parquet', 1, 10)], { schema: SCHEMA_V2, expectedSchemaVersion: 1 }));
      const before = await snapshot(cat, [ORDERS]);
      await assert.rejects(
        cat.commit(appendReq(ORDERS, [f('o/3.parquet', 1, 10)], { schema: SCHEMA_V1, expectedSchemaVersion: 1 })),
        (err: unknown) => {
          assert.ok(err instanceof CommitConflictError);
          assert.equal(err.details['reason'], 'schema_changed');
          return true;
        },
      );
      assert.deepEqual(await snapshot(cat, [ORDERS]), before);
      assert.equal((await mustTable(cat, ORDERS)).schemaVersion, 2);
    });

    it('a commit touching two tables, state and ledger applies all of it', async () => {
      const c = await cat.commit({
        runId: 'run-x',
        operation: 'append',
        tables: [
          change(ORDERS, [f('o/1.parquet', 3, 30)], { schema: SCHEMA_V1 }),
          change(CUSTOMERS, [f('c/1.parquet', 4, 40)], { schema: SCHEMA_V2 }),
        ],
        state: [{ pipeline: 'shop', source: 'files', stream: 'orders', value: { cursor: 42 } }],
        ledger: [
          {
            pipeline: 'shop',
            source: 'files',
            stream: 'orders',
            path: '/in/orders.csv',
            bytes: 123,
            modifiedMs: 1_700_000_000_000,
            rows: 3,
          },
        ],
      });
      assert.deepEqual(sorted(c.tables), [CUSTOMERS, ORDERS]);
      assert.deepEqual(sorted((await cat.getCommit(c.id))?.tables ?? []), [CUSTOMERS, ORDERS]);
      assert.equal((await mustTable(cat, ORDERS)).headCommit, c.id);
      assert.equal((await mustTable(cat, CUSTOMERS)).headCommit, c.id);
      assert.equal((await cat.schemaAt(ORDERS))?.commitId, c.id);
      assert.equal((await cat.schemaAt(CUSTOMERS))?.commitId, c.id);
      assert.deepEqual(await cat.getState('shop', 'files', 'orders'), { cursor: 42 });
      assert.deepEqual(await cat.listStates('shop'), [
        { source: 'files', stream: 'orders', value: { cursor: 42 }, commitId: c.id },
      ]);
      assert.deepEqual(await cat.listStates('other'), []);
      assert.deepEqual([...(await cat.getLedger('shop', 'files', 'orders')).keys()], ['/in/orders.csv']);
    });

    it('quality reports: recorded with the commit that landed the data, or alone when the checks failed', async () => {
      const c = await cat.commit({
        runId: 'run-q1',
        operation: 'append',
        tables: [change(ORDERS, [f('o/q.parquet', 10, 100)], { schema: SCHEMA_V1 })],
        qualityReports: [
          {
            table: ORDERS,
            runId: 'run-q1',
            status: 'warned',
            rows: 10,
            report: { checks: [{ name: 'not_null_id', failed: 1 }] },
          },
        ],
      });
      const failed = await cat.saveQualityReport({
        table: ORDERS,
        runId: 'run-q2',
        status: 'failed',
        rows: 7,
        report: { checks: [] },
      });
      assert.equal(failed.commitId, null);
      const reports = await cat.listQualityReports(ORDERS);
      assert.deepEqual(
        reports.map((r) => [r.runId, r.commitId, r.status, r.rows, r.report]),
        [
          ['run-q2', null, 'failed', 7, { checks: [] }],
          ['run-q1', c.id, 'warned', 10, { checks: [{ name: 'not_null_id', failed: 1 }] }],
        ],
      );
      assert.equal((await cat.listQualityReports(ORDERS, { limit: 1 })).length, 1);
      assert.deepEqual(await cat.listQualityReports(CUSTOMERS), []);
    });

    it('a failing multi-table commit leaves NOTHING visible (no table, files, schema, state, ledger or commit)', async () => {
      const c0 = await cat.commit(
        appendReq(
          CUSTOMERS,
          [f('c/0.parquet', 1, 10), f('c/1.parquet', 2, 20)],
          { schema: SCHEMA_V1 },
          {
            state: [{ pipeline: 'shop', source: 'files', stream: 'orders', value: { cursor: 1 } }],
            ledger: [
              { pipeline: 'shop', source: 'files', stream: 'orders', path: '/in/0.csv', bytes: 1, modifiedMs: 1 },
            ],
          },
        ),
      );
      const before = await snapshot(cat, [ORDERS, CUSTOMERS, EVENTS]);
      const state = [{ pipeline: 'shop', source: 'files', stream: 'orders', value: { cursor: 2 } }];
      const ledger: LedgerEntry[] = [
        { pipeline: 'shop', source: 'files', stream: 'orders', path: '/in/0.csv', bytes: 999, modifiedMs: 999 },
        { pipeline: 'shop', source: 'files', stream: 'orders', path: '/in/1.csv', bytes: 2, modifiedMs: 2 },
      ];

      // 1. The second table's expectedHead is stale: the first (new) table must not appear.
      await assert.rejects(
        cat.commit({
          operation: 'append',
          tables: [
            change(ORDERS, [f('o/1.parquet', 5, 50)], { schema: SCHEMA_V1, primaryKey: ['id'] }),
            change(CUSTOMERS, [f('c/2.parquet', 5, 50)], { schema: SCHEMA_V2, expectedHead: c0.id - 1 }),
          ],
          state,
          ledger,
        }),
        CommitConflictError,
      );
      assert.deepEqual(await snapshot(cat, [ORDERS, CUSTOMERS, EVENTS]), before, 'after the expectedHead conflict');

      // 2. The first table (existing) is replaced and gets a new schema, a third table is created,
      //    then the last table removes a path that is not live.
      await assert.rejects(
        cat.commit({
          operation: 'replace',
          tables: [
            change(CUSTOMERS, [f('c/3.parquet', 9, 90)], { remove: 'all', schema: SCHEMA_V2 }),
            change(EVENTS, [f('e/1.parquet', 1, 1)], { schema: SCHEMA_V1 }),
            change(ORDERS, [f('o/2.parquet', 5, 50)], { remove: ['o/not-there.parquet'] }),
          ],
          state,
          ledger,
        }),
        Error,
      );
      assert.deepEqual(await snapshot(cat, [ORDERS, CUSTOMERS, EVENTS]), before, 'after the failed remove');

      // 3. The catalog still works and later commits are newer than the last good one.
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/ok.parquet', 1, 1)], {}, { state }));
      assert.ok(c1.id > c0.id);
      assert.deepEqual(ids(await cat.listCommits()), [c1.id, c0.id]);
      assert.deepEqual(await cat.getState('shop', 'files', 'orders'), { cursor: 2 });
      assert.deepEqual(paths(await cat.liveFiles(CUSTOMERS)), ['c/0.parquet', 'c/1.parquet']);
      assert.equal((await cat.getLedger('shop', 'files', 'orders')).get('/in/0.csv')?.bytes, 1);
    });

    // --- state and ledger -------------------------------------------------------------------------

    it('state round-trips JSON values and is overwritten by later commits', async () => {
      const nested = {
        cursor: '2026-11-22T10:00:00.000Z',
        offsets: { p0: 12, p1: [1, 2, { deep: true }] },
        text: 'naïve ✓ "quoted" \\ back',
        n: 1.5,
        neg: -7,
        flag: false,
        none: null,
      };
      await cat.commit(
        appendReq(
          ORDERS,
          [f('o/1.parquet', 1, 1)],
          {},
          {
            state: [
              { pipeline: 'shop', source: 'files', stream: 'orders', value: nested },
              { pipeline: 'shop', source: 'files', stream: 'customers', value: 17 },
              { pipeline: 'crm', source: 'files', stream: 'orders', value: 'other-pipeline' },
            ],
          },
        ),
      );
      assert.deepEqual(await cat.getState('shop', 'files', 'orders'), nested);
      assert.equal(await cat.getState('shop', 'files', 'customers'), 17);
      assert.equal(await cat.getState('crm', 'files', 'orders'), 'other-pipeline');
      assert.equal(await cat.getState('shop', 'db', 'orders'), undefined);

      // A state-only commit (nothing new to load, the cursor still advances).
      const c = await cat.commit({
        operation: 'append',
        tables: [],
        state: [{ pipeline: 'shop', source: 'files', stream: 'orders', value: { cursor: 'later', list: ['a', 'b'] } }],
      });
      assert.deepEqual(c.tables, []);
      assert.deepEqual(await cat.getState('shop', 'files', 'orders'), { cursor: 'later', list: ['a', 'b'] });
      assert.equal(await cat.getState('shop', 'files', 'customers'), 17, 'other streams keep their state');
      assert.deepEqual(await cat.getState('crm', 'files', 'orders'), 'other-pipeline');
      await cat.commit({
        operation: 'append',
        tables: [],
        state: [{ pipeline: 'shop', source: 'files', stream: 'customers', value: [] }],
      });
      assert.deepEqual(await cat.getState('shop', 'files', 'customers'), []);
    });

    it('ledger entries are keyed by path, per stream, and updated in place', async () => {
      const big = 1_763_000_000_123; // a real mtime in ms: beyond 32 bits
      await cat.commit(
        appendReq(
          ORDERS,
          [f('o/1.parquet', 1, 1)],
          {},
          {
            ledger: [
              {
                pipeline: 'shop',
                source: 'files',
                stream: 'orders',
                path: '/in/a.csv',
                bytes: BIG,
                modifiedMs: big,
                rows: 10,
              },
              {
                pipeline: 'shop',
                source: 'files',
                stream: 'orders',
                path: '/in/b.csv',
                bytes: 20,
                modifiedMs: big + 1,
              },
              {
                pipeline: 'shop',
                source: 'files',
                stream: 'customers',
                path: '/in/a.csv',
                bytes: 30,
                modifiedMs: 3,
                rows: 0,
              },
            ],
          },
        ),
      );
      const orders = await cat.getLedger('shop', 'files', 'orders');
      assert.ok(orders instanceof Map);
      assert.deepEqual(sorted(orders.keys()), ['/in/a.csv', '/in/b.csv']);
      assert.deepEqual(orders.get('/in/a.csv'), {
        pipeline: 'shop',
        source: 'files',
        stream: 'orders',
        path: '/in/a.csv',
        bytes: BIG,
        modifiedMs: big,
        rows: 10,
      });
      const b = orders.get('/in/b.csv');
      assert.ok(b);
      assert.deepEqual(
        [b.pipeline, b.source, b.stream, b.path, b.bytes, b.modifiedMs, b.rows],
        ['shop', 'files', 'orders', '/in/b.csv', 20, big + 1, undefined],
        'rows omitted → undefined',
      );
      const customers = await cat.getLedger('shop', 'files', 'customers');
      assert.deepEqual(
        [...customers.values()],
        [
          {
            pipeline: 'shop',
            source: 'files',
            stream: 'customers',
            path: '/in/a.csv',
            bytes: 30,
            modifiedMs: 3,
            rows: 0,
          },
        ],
      );
      assert.equal((await cat.getLedger('shop', 'other', 'orders')).size, 0);

      // The file changed and was read again: same key, new facts.
      await cat.commit({
        operation: 'append',
        tables: [],
        ledger: [
          {
            pipeline: 'shop',
            source: 'files',
            stream: 'orders',
            path: '/in/b.csv',
            bytes: 25,
            modifiedMs: big + 2,
            rows: 5,
          },
        ],
      });
      const again = await cat.getLedger('shop', 'files', 'orders');
      assert.equal(again.size, 2);
      assert.deepEqual(again.get('/in/b.csv'), {
        pipeline: 'shop',
        source: 'files',
        stream: 'orders',
        path: '/in/b.csv',
        bytes: 25,
        modifiedMs: big + 2,
        rows: 5,
      });
      assert.equal(again.get('/in/a.csv')?.bytes, BIG);
    });

    // --- runs ---------------------------------------------------------------------------------------

    it('runs: start, update stats, finish, get, list newest first', async () => {
      const t0 = Date.now();
      const r1 = await cat.startRun({ id: 'run-z', pipeline: 'shop', host: 'host-a', pid: 101 });
      assertValidDate(r1.startedAt, 'startedAt');
      assert.ok(r1.startedAt.getTime() >= t0 - 1000 && r1.startedAt.getTime() <= Date.now() + 1000);
      assert.deepEqual(r1, {
        id: 'run-z',
        pipeline: 'shop',
        status: 'running',
        startedAt: r1.startedAt,
        endedAt: null,
        host: 'host-a',
        pid: 101,
        error: null,
        cause: null,
        stats: EMPTY_STATS,
        heartbeatAt: r1.startedAt,
      });
      assert.deepEqual(await cat.getRun('run-z'), r1);

      await sleep(10);
      const r2 = await cat.startRun({ id: 'run-a', pipeline: 'crm', host: 'host-b', pid: 202 });
      await sleep(10);
      const r3 = await cat.startRun({ id: 'run-m', pipeline: 'shop', host: 'host-a', pid: 303 });

      const stats: RunStats = {
        streams: {
          orders: { rows: 10, bytes: BIG, files: 2, quarantined: 1, commits: 1, skippedFiles: 0 },
          customers: { rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 3 },
        },
      };
      await cat.updateRunStats('run-z', stats);
      assert.deepEqual((await cat.getRun('run-z'))?.stats, stats);
      assert.equal((await cat.getRun('run-z'))?.status, 'running');

      const finalStats: RunStats = {
        streams: { orders: { rows: 11, bytes: 5, files: 3, quarantined: 1, commits: 2, skippedFiles: 0 } },
      };
      await cat.finishRun('run-z', { status: 'succeeded', stats: finalStats });
      const done = await cat.getRun('run-z');
      assert.ok(done);
      assertValidDate(done.endedAt, 'endedAt');
      assert.ok(done.endedAt.getTime() >= done.startedAt.getTime());
      assert.ok(
        done.heartbeatAt && done.heartbeatAt.getTime() >= r1.startedAt.getTime(),
        'a stats update is a sign of life',
      );
      assert.deepEqual(done, {
        ...r1,
        status: 'succeeded',
        endedAt: done.endedAt,
        stats: finalStats,
        heartbeatAt: done.heartbeatAt,
      });

      await cat.finishRun('run-a', {
        status: 'failed',
        error: 'boom: bad row 3',
        cause: 'ENOENT <- open',
        stats: EMPTY_STATS,
      });
      const failed = await cat.getRun('run-a');
      assert.deepEqual(
        [failed?.status, failed?.error, failed?.cause, failed?.endedAt instanceof Date],
        ['failed', 'boom: bad row 3', 'ENOENT <- open', true],
      );

      assert.deepEqual(
        (await cat.listRuns()).map((r) => r.id),
        [r3.id, r2.id, r1.id],
      );
      assert.deepEqual(
        (await cat.listRuns({ pipeline: 'shop' })).map((r) => r.id),
        [r3.id, r1.id],
      );
      assert.deepEqual(
        (await cat.listRuns({ limit: 2 })).map((r) => r.id),
        [r3.id, r2.id],
      );
      assert.deepEqual(
        (await cat.listRuns({ pipeline: 'shop', limit: 1 })).map((r) => r.id),
        [r3.id],
      );
      assert.deepEqual(await cat.listRuns({ pipeline: 'none' }), []);
      assert.deepEqual((await cat.listRuns())[2], done);
    });

    it('markCrashedRuns marks running runs whose process is gone, and only those', async () => {
      await cat.startRun({ id: 'alive', pipeline: 'shop', host: 'h1', pid: 1 });
      await cat.startRun({ id: 'dead', pipeline: 'shop', host: 'h1', pid: 2 });
      await cat.startRun({ id: 'dead-elsewhere', pipeline: 'crm', host: 'h2', pid: 1 });
      await cat.startRun({ id: 'finished', pipeline: 'shop', host: 'h1', pid: 2 });
      await cat.finishRun('finished', { status: 'succeeded', stats: EMPTY_STATS });

      const asked: string[] = [];
      const isAlive = (host: string, pid: number): boolean => {
        asked.push(`${host}:${pid}`);
        return host === 'h1' && pid === 1;
      };
      assert.equal(await cat.markCrashedRuns(isAlive), 2);
      assert.deepEqual(
        sorted(new Set(asked)),
        ['h1:1', 'h1:2', 'h2:1'],
        'isAlive gets (host, pid) of running runs only',
      );

      assert.equal((await cat.getRun('alive'))?.status, 'running');
      assert.equal((await cat.getRun('alive'))?.endedAt, null);
      for (const id of ['dead', 'dead-elsewhere']) {
        const r = await cat.getRun(id);
        assert.equal(r?.status, 'crashed', `${id} is crashed`);
      }
      assert.equal((await cat.getRun('finished'))?.status, 'succeeded');
      assert.equal(await cat.markCrashedRuns(isAlive), 0, 'idempotent');
      assert.equal(await cat.markCrashedRuns(() => false), 1, 'now the last running one');
      assert.equal((await cat.getRun('alive'))?.status, 'crashed');
    });

    it('markCrashedRuns: where the probe cannot tell (another host), a silent run is crashed after staleAfterMs', async () => {
      await cat.startRun({ id: 'remote', pipeline: 'shop', host: 'elsewhere', pid: 7 });
      const cannotTell = (): undefined => undefined;
      assert.equal(
        await cat.markCrashedRuns(cannotTell, { staleAfterMs: 60_000 }),
        0,
        'a fresh heartbeat keeps it running',
      );
      await sleep(GAP_MS);
      await cat.heartbeat('remote');
      const beat = (await cat.getRun('remote'))?.heartbeatAt;
      assert.ok(
        beat && beat.getTime() > (await cat.getRun('remote'))!.startedAt.getTime(),
        'heartbeat moves heartbeatAt',
      );
      await sleep(GAP_MS); // silent for a moment: in the same millisecond as the heartbeat it is not yet past a limit of 0
      assert.equal(await cat.markCrashedRuns(cannotTell, { staleAfterMs: 0 }), 1, 'silent past the limit: crashed');
      assert.equal((await cat.getRun('remote'))?.status, 'crashed');
    });

    // --- GC ---------------------------------------------------------------------------------------------

    it('referencedPaths covers live and historical files; expireRemovedFiles returns unreferenced paths', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/a.parquet', 1, 1), f('o/b.parquet', 1, 1)]));
      await sleep(GAP_MS);
      const c2 = await cat.commit({
        operation: 'replace',
        tables: [change(ORDERS, [f('o/c.parquet', 1, 1)], { remove: 'all' })],
      });
      await sleep(GAP_MS);
      const c3 = await cat.commit({
        operation: 'compact',
        tables: [change(ORDERS, [f('o/d.parquet', 1, 1)], { remove: ['o/c.parquet'] })],
      });
      await cat.commit(appendReq(CUSTOMERS, [f('c/a.parquet', 1, 1)]));
      assert.deepEqual(sorted(await cat.referencedPaths()), [
        'c/a.parquet',
        'o/a.parquet',
        'o/b.parquet',
        'o/c.parquet',
        'o/d.parquet',
      ]);

      // Nothing was removed before c2.
      assert.equal(await cat.historyHorizon(), 0, 'no history expired yet');
      assert.deepEqual(await cat.expireRemovedFiles(new Date(c2.committedAt.getTime() - 5)), []);
      assert.equal(await cat.historyHorizon(), 0, 'an expiry that removes nothing keeps the horizon');
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c1.id)), ['o/a.parquet', 'o/b.parquet'], 'time travel intact');
      assert.equal((await cat.referencedPaths()).size, 5);

      // c2's removals expire: a and b.
      assert.deepEqual(sorted(await cat.expireRemovedFiles(new Date(c3.committedAt.getTime() - 5))), [
        'o/a.parquet',
        'o/b.parquet',
      ]);
      assert.deepEqual(sorted(await cat.referencedPaths()), ['c/a.parquet', 'o/c.parquet', 'o/d.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(ORDERS, c2.id)), ['o/c.parquet'], 'time travel to c2 still works');
      assert.equal(await cat.historyHorizon(), c2.id, 'snapshots from c2 on are complete');

      // Everything removed so far.
      assert.deepEqual(await cat.expireRemovedFiles(new Date(Date.now() + 60_000)), ['o/c.parquet']);
      assert.deepEqual(sorted(await cat.referencedPaths()), ['c/a.parquet', 'o/d.parquet']);
      assert.deepEqual(await cat.expireRemovedFiles(new Date(Date.now() + 60_000)), [], 'nothing left to expire');

      // Live data is untouched.
      assert.deepEqual(paths(await cat.liveFiles(ORDERS)), ['o/d.parquet']);
      assert.deepEqual(paths(await cat.liveFiles(CUSTOMERS)), ['c/a.parquet']);
      const t = await mustTable(cat, ORDERS);
      assert.deepEqual([t.files, t.rows, t.bytes], [1, 1, 1]);
    });

    it('a path re-added by a later commit (rollback) stays referenced when its old row expires', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/x.parquet', 10, 100)]));
      const c2 = await cat.commit({
        operation: 'replace',
        tables: [change(ORDERS, [f('o/y.parquet', 20, 200)], { remove: 'all' })],
      });
      const c3 = await cat.commit({
        operation: 'rollback',
        tables: [change(ORDERS, [f('o/x.parquet', 10, 100)], { remove: ['o/y.parquet'], expectedHead: c2.id })],
        summary: { rolledBackTo: c1.id },
      });
      assert.equal(c3.operation, 'rollback');
      assert.deepEqual(sorted(await cat.referencedPaths()), ['o/x.parquet', 'o/y.parquet']);
      const live = await cat.liveFiles(ORDERS);
      assert.deepEqual(
        live.map((x) => [x.path, x.addedCommit]),
        [['o/x.parquet', c3.id]],
      );

      assert.deepEqual(
        await cat.expireRemovedFiles(new Date(Date.now() + 60_000)),
        ['o/y.parquet'],
        'x is still referenced by the live row',
      );
      assert.deepEqual(sorted(await cat.referencedPaths()), ['o/x.parquet']);
      assert.deepEqual(
        (await cat.liveFiles(ORDERS)).map((x) => [x.path, x.addedCommit, x.removedCommit]),
        [['o/x.parquet', c3.id, null]],
      );
      const t = await mustTable(cat, ORDERS);
      assert.deepEqual([t.files, t.rows, t.bytes, t.headCommit], [1, 10, 100, c3.id]);
    });

    // --- commits --------------------------------------------------------------------------------------

    it('listCommits: newest first, filtered by table, limited', async () => {
      const c1 = await cat.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 1)], {}, { runId: 'r1', summary: { n: 1 } }));
      const c2 = await cat.commit(appendReq(CUSTOMERS, [f('c/1.parquet', 1, 1)], {}, { runId: 'r1' }));
      const c3 = await cat.commit({
        operation: 'merge',
        runId: 'r2',
        tables: [change(CUSTOMERS, [f('c/2.parquet', 1, 1)]), change(ORDERS, [f('o/2.parquet', 1, 1)])],
        summary: { merged: { orders: 1, customers: 1 } },
      });
      const c4 = await cat.commit({
        operation: 'append',
        tables: [],
        state: [{ pipeline: 'p', source: 's', stream: 't', value: 1 }],
      });

      assert.ok(c1.id < c2.id && c2.id < c3.id && c3.id < c4.id, 'ids increase');
      const all = await cat.listCommits();
      assert.deepEqual(ids(all), [c4.id, c3.id, c2.id, c1.id]);
      assert.deepEqual(all.map(normCommit), [c4, c3, c2, c1].map(normCommit));
      assert.deepEqual(ids(await cat.listCommits({ table: ORDERS })), [c3.id, c1.id]);
      assert.deepEqual(ids(await cat.listCommits({ table: CUSTOMERS })), [c3.id, c2.id]);
      assert.deepEqual(ids(await cat.listCommits({ limit: 2 })), [c4.id, c3.id]);
      assert.deepEqual(ids(await cat.listCommits({ table: ORDERS, limit: 1 })), [c3.id]);
      assert.deepEqual(await cat.listCommits({ table: 'bronze.nope' }), []);
      assert.deepEqual(sorted((await cat.getCommit(c3.id))?.tables ?? []), [CUSTOMERS, ORDERS]);
      assert.deepEqual((await cat.getCommit(c3.id))?.summary, { merged: { orders: 1, customers: 1 } });
      assert.deepEqual((await cat.getCommit(c4.id))?.tables, []);
      assert.equal(await cat.getCommit(c4.id + 1), undefined);
    });

    it('20 concurrent appends get 20 distinct increasing commit ids and 20 live files', async () => {
      const c0 = await cat.commit(appendReq(CUSTOMERS, [f('c/0.parquet', 1, 1)]));
      const n = 20;
      const commits = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          cat.commit(
            appendReq(
              ORDERS,
              [f(`o/part-${String(i).padStart(2, '0')}.parquet`, i + 1, 100 + i)],
              {},
              { summary: { i } },
            ),
          ),
        ),
      );
      const commitIds = ids(commits);
      assert.equal(new Set(commitIds).size, n, 'distinct ids');
      assert.ok(
        commitIds.every((id) => id > c0.id),
        'all newer than the previous commit',
      );
      const ascending = [...commitIds].sort((a, b) => a - b);

      const live = await cat.liveFiles(ORDERS);
      assert.equal(live.length, n);
      // Each file carries the id of the commit that added it, and files come in commit order.
      commits.forEach((c, i) => {
        const file = live.find((x) => x.path === `o/part-${String(i).padStart(2, '0')}.parquet`);
        assert.equal(file?.addedCommit, c.id, `file ${i} added by its commit`);
      });
      assert.deepEqual(
        live.map((x) => x.addedCommit),
        ascending,
      );
      const t = await mustTable(cat, ORDERS);
      assert.deepEqual(
        [t.files, t.rows, t.bytes, t.headCommit],
        [n, (n * (n + 1)) / 2, 100 * n + (n * (n - 1)) / 2, ascending[n - 1]],
      );
      assert.deepEqual(ids(await cat.listCommits({ table: ORDERS })), [...ascending].reverse());
      assert.equal(await cat.resolveAsOf({}), ascending[n - 1]);
      // Time travel to every intermediate commit sees exactly the files committed so far.
      for (let k = 0; k < n; k++) assert.equal((await cat.liveFiles(ORDERS, ascending[k])).length, k + 1);
    });

    it('concurrent commits with the same expectedHead: exactly one wins, the rest conflict', async () => {
      const c0 = await cat.commit(appendReq(ORDERS, [f('o/0.parquet', 1, 1)]));
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, (_, i) =>
          cat.commit({
            operation: 'replace',
            tables: [change(ORDERS, [f(`o/r${i}.parquet`, 1, 1)], { remove: 'all', expectedHead: c0.id })],
          }),
        ),
      );
      const won = results.filter((r): r is PromiseFulfilledResult<CommitInfo> => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, 'exactly one commit wins');
      for (const r of lost)
        assert.ok(r.reason instanceof CommitConflictError, `losers get CommitConflictError, got ${String(r.reason)}`);
      const live = await cat.liveFiles(ORDERS);
      assert.equal(live.length, 1);
      assert.equal(live[0]?.addedCommit, won[0]?.value.id);
      assert.equal((await mustTable(cat, ORDERS)).headCommit, won[0]?.value.id);
    });

    it('a second catalog instance over the same storage sees every commit', async (t) => {
      if (!fx.config) {
        t.skip('fixture has no config to reopen its storage');
        return;
      }
      const c1 = await cat.commit(
        appendReq(
          ORDERS,
          [f('o/1.parquet', 1, 10)],
          { schema: SCHEMA_V1 },
          { state: [{ pipeline: 'shop', source: 'files', stream: 'orders', value: { c: 1 } }] },
        ),
      );
      const other = await openCatalog(fx.config, process.cwd());
      try {
        assert.equal(other.kind, cat.kind);
        assert.deepEqual(await other.getTable(ORDERS), await cat.getTable(ORDERS));
        assert.deepEqual(await other.getState('shop', 'files', 'orders'), { c: 1 });
        assert.deepEqual(ids(await other.listCommits()), [c1.id]);
        // Interleaved writers (one after the other: two connections in one thread).
        for (let i = 0; i < 6; i++) await (i % 2 ? cat : other).commit(appendReq(ORDERS, [f(`o/w${i}.parquet`, 1, 1)]));
        assert.equal((await cat.liveFiles(ORDERS)).length, 7);
        assert.deepEqual(await other.liveFiles(ORDERS), await cat.liveFiles(ORDERS));
        assert.deepEqual(await other.getTable(ORDERS), await cat.getTable(ORDERS));
        assert.deepEqual(ids(await other.listCommits()), ids(await cat.listCommits()));
        await assert.rejects(
          other.commit(appendReq(ORDERS, [f('o/stale.parquet', 1, 1)], { expectedHead: c1.id })),
          CommitConflictError,
        );
      } finally {
        await other.close();
      }
    });

    it('two processes committing at the same time get distinct ids and lose nothing', async (t) => {
      if (!fx.config) {
        t.skip('fixture has no config to open its storage from another process');
        return;
      }
      const c0 = await cat.commit(appendReq(ORDERS, [f('o/0.parquet', 1, 1)]));
      const n = 25;
      const writer = startWriterProcess(fx.config, 'child', n);
      await writer.ready;
      const mine: number[] = [];
      for (let i = 0; i < n; i++)
        mine.push((await cat.commit(appendReq(ORDERS, [f(`o/parent-${i}.parquet`, 1, 1)]))).id);
      const theirs = await writer.done;
      assert.equal(theirs.length, n);
      const all = [...mine, ...theirs];
      assert.equal(new Set(all).size, 2 * n, 'distinct ids across processes');
      assert.ok(all.every((id) => id > c0.id));
      const live = await cat.liveFiles(ORDERS);
      assert.equal(live.length, 2 * n + 1);
      assert.deepEqual(
        live.map((x) => x.addedCommit),
        [c0.id, ...all].sort((a, b) => a - b),
      );
      assert.equal((await mustTable(cat, ORDERS)).headCommit, Math.max(...all));
    });

    it('orchestration: a DAG run readies tasks as upstreams succeed, retries, fails downstream, resumes', async () => {
      const o = cat.orchestration;
      const t0 = new Date('2026-05-01T00:00:00Z');
      const at = (ms: number) => new Date(t0.getTime() + ms);
      const one = () => 1;
      const task = (name: string, deps: string[] = [], maxAttempts = 2) => ({
        name,
        deps,
        pool: null,
        mutex: null,
        maxAttempts,
      });
      const [id] = await o.createRuns(
        [
          {
            pipeline: 'shop',
            interval: { start: t0, end: at(3_600_000) },
            trigger: 'schedule',
            priority: 10,
            maxActive: 1,
            tasks: [task('a'), task('b', ['a']), task('c', ['a'], 1), task('d', ['b', 'c'])],
          },
        ],
        t0,
      );
      const runId = id as string;
      assert.equal((await o.getRun(runId))?.status, 'queued');
      assert.deepEqual(
        (await o.promote(t0)).map((r) => r.task),
        ['a'],
      );
      const claimA = await o.claim({ runId, task: 'a' }, 'w1', 1000, one, t0);
      assert.ok(claimA.ok && claimA.attempt === 1 && claimA.run.interval?.end.getTime() === at(3_600_000).getTime());
      assert.deepEqual(await o.claim({ runId, task: 'a' }, 'w2', 1000, one, at(10)), {
        ok: false,
        reason: 'leased',
        retryAt: at(1000),
      });
      // Only the lease holder's outcome counts.
      assert.equal((await o.finish({ runId, task: 'a' }, 'w2', 1, { ok: true, rows: 1 }, at(20))).accepted, false);
      const fa = await o.finish({ runId, task: 'a' }, 'w1', 1, { ok: true, rows: 5 }, at(20));
      assert.deepEqual(fa.ready.map((r) => r.task).sort(), ['b', 'c']);
      assert.ok((await o.claim({ runId, task: 'b' }, 'w1', 1000, one, at(30))).ok);
      const fb = await o.finish(
        { runId, task: 'b' },
        'w1',
        1,
        { ok: false, error: 'flaky', cause: null, retryable: true, retryDelayMs: 500 },
        at(40),
      );
      assert.deepEqual([fb.status, fb.retryAt?.toISOString()], ['queued', at(540).toISOString()]);
      assert.deepEqual(await o.claim({ runId, task: 'b' }, 'w1', 1000, one, at(100)), {
        ok: false,
        reason: 'not_ready',
        retryAt: at(540),
      });
      assert.ok((await o.claim({ runId, task: 'c' }, 'w2', 1000, one, at(100))).ok);
      const fc = await o.finish(
        { runId, task: 'c' },
        'w2',
        1,
        { ok: false, error: 'bad config', cause: null, retryable: false, retryDelayMs: 0 },
        at(110),
      );
      assert.equal(fc.status, 'failed');
      assert.equal((await o.listTasks(runId)).find((t) => t.task === 'd')?.status, 'upstream_failed');
      const claimB2 = await o.claim({ runId, task: 'b' }, 'w1', 1000, one, at(600));
      assert.ok(claimB2.ok && claimB2.attempt === 2);
      const fb2 = await o.finish({ runId, task: 'b' }, 'w1', 2, { ok: true, rows: 2 }, at(700));
      assert.equal(fb2.runFinished?.status, 'failed');
      assert.match(fb2.runFinished?.error ?? '', /^c: bad config$/);
      assert.deepEqual(
        (await o.listAttempts(runId, 'b')).map((a) => [a.attempt, a.status, a.worker]),
        [
          [1, 'failed', 'w1'],
          [2, 'succeeded', 'w1'],
        ],
      );
      // Resume: only c and d run again; a and b keep their success.
      const resumed = await o.rerun(runId, at(800));
      assert.deepEqual([resumed.status, resumed.attempt], ['queued', 2]);
      assert.deepEqual(
        (await o.promote(at(800))).map((r) => r.task),
        ['c'],
      );
      assert.ok((await o.claim({ runId, task: 'c' }, 'w1', 1000, one, at(810))).ok);
      const fc2 = await o.finish({ runId, task: 'c' }, 'w1', 2, { ok: true, rows: 0 }, at(820));
      assert.deepEqual(
        fc2.ready.map((r) => r.task),
        ['d'],
      );
      assert.ok((await o.claim({ runId, task: 'd' }, 'w1', 1000, one, at(830))).ok);
      assert.equal(
        (await o.finish({ runId, task: 'd' }, 'w1', 1, { ok: true, rows: 0 }, at(840))).runFinished?.status,
        'succeeded',
      );
      assert.deepEqual(
        (await o.listTasks(runId)).map((t) => [t.task, t.status, t.attempt]),
        [
          ['a', 'succeeded', 1],
          ['b', 'succeeded', 2],
          ['c', 'succeeded', 2],
          ['d', 'succeeded', 1],
        ],
      );
      // Every ended attempt once, in the order it ended, with its error kind (a rejected outcome ended nothing).
      const ended = (await o.attemptsEndedAfter(0)).filter((a) => a.runId === runId);
      assert.deepEqual(
        ended.map((a) => [a.task, a.attempt, a.status, a.errorKind, a.pipeline]),
        [
          ['a', 1, 'succeeded', null, 'shop'],
          ['b', 1, 'failed', 'internal', 'shop'],
          ['c', 1, 'failed', 'internal', 'shop'],
          ['b', 2, 'succeeded', null, 'shop'],
          ['c', 2, 'succeeded', null, 'shop'],
          ['d', 1, 'succeeded', null, 'shop'],
        ],
      );
      assert.ok(
        ended.every((a, i) => i === 0 || a.seq > (ended[i - 1] as { seq: number }).seq),
        'strictly increasing',
      );
      const last = await o.lastEndedAttempt();
      assert.equal(last, ended.at(-1)?.seq);
      assert.deepEqual(await o.attemptsEndedAfter(last), []);
      assert.deepEqual(
        (await o.attemptsEndedAfter(ended[2]?.seq ?? 0, 2)).map((a) => [a.task, a.attempt]),
        [
          ['b', 2],
          ['c', 2],
        ],
        'pages',
      );
    });

    it('orchestration: takeover and hand-back respect cancel and attempts; runs without an interval go first; schedule marks are compare-and-set', async () => {
      const o = cat.orchestration;
      const t0 = new Date('2026-05-01T00:00:00Z');
      const at = (ms: number) => new Date(t0.getTime() + ms);
      const one = () => 1;
      const run = (h: number | null, maxAttempts = 1) => ({
        pipeline: 'q',
        interval: h === null ? null : { start: at(h * 3_600_000), end: at((h + 1) * 3_600_000) },
        trigger: 'schedule' as const,
        priority: 10,
        maxActive: 1,
        tasks: [{ name: 't', deps: [], pool: null, mutex: null, maxAttempts }],
      });
      // A dead holder's task in a run cancelled since: a late delivery does not run it; the run ends cancelled.
      const [a] = await o.createRuns([run(0)], t0);
      await o.promote(t0);
      assert.ok((await o.claim({ runId: a as string, task: 't' }, 'dead', 100, one, t0)).ok);
      await o.cancel(a as string, at(10));
      assert.deepEqual(await o.claim({ runId: a as string, task: 't' }, 'late', 1000, one, at(500)), {
        ok: false,
        reason: 'done',
      });
      assert.equal((await o.getRun(a as string))?.status, 'cancelled');
      // A dead holder's last attempt: taking over fails the task instead of running it again.
      const [b] = await o.createRuns([run(1)], at(600));
      await o.promote(at(600));
      assert.ok((await o.claim({ runId: b as string, task: 't' }, 'dead', 100, one, at(600))).ok);
      assert.deepEqual(await o.claim({ runId: b as string, task: 't' }, 'late', 1000, one, at(1000)), {
        ok: false,
        reason: 'done',
      });
      assert.equal((await o.getRun(b as string))?.status, 'failed');
      // Handing back a task of a cancelled run ends the run instead of queueing the task.
      const [c] = await o.createRuns([run(2)], at(1100));
      await o.promote(at(1100));
      assert.ok((await o.claim({ runId: c as string, task: 't' }, 'w', 1000, one, at(1100))).ok);
      await o.cancel(c as string, at(1200));
      assert.equal(await o.release({ runId: c as string, task: 't' }, 'w', 1, at(1300)), true);
      assert.equal((await o.getRun(c as string))?.status, 'cancelled');
      // At equal priority, a run without an interval (manual) sorts before interval runs on both databases.
      const ids = await o.createRuns([run(5), run(null), run(4)], at(2000));
      assert.deepEqual(
        (await o.promote(at(2000))).map((r) => r.runId),
        [ids[1]],
      );
      // Schedule marks: only the scheduler that read the current value moves it.
      assert.equal(
        await o.advanceSchedule({ pipeline: 'q', lastEnd: { expected: null, next: at(3_600_000) } }, at(3000)),
        true,
      );
      assert.equal(
        await o.advanceSchedule({ pipeline: 'q', lastEnd: { expected: null, next: at(7_200_000) } }, at(3001)),
        false,
      );
      assert.equal(
        await o.advanceSchedule({ pipeline: 'q', triggerState: { expected: {}, next: { 'files:x': 1 } } }, at(3002)),
        true,
      );
      assert.equal(
        await o.advanceSchedule({ pipeline: 'q', triggerState: { expected: {}, next: { 'files:x': 2 } } }, at(3003)),
        false,
      );
      assert.deepEqual(await o.getSchedule('q'), { lastEnd: at(3_600_000), triggerState: { 'files:x': 1 } });
    });

    it('orchestration: max active runs, fresh before backfill, pools, expired leases, cancel, alert dedup', async () => {
      const o = cat.orchestration;
      const t0 = new Date('2026-05-01T00:00:00Z');
      const at = (ms: number) => new Date(t0.getTime() + ms);
      const spec = (priority: number, h: number, pool: string | null = null) => ({
        pipeline: 'p',
        interval: { start: at(h * 3_600_000), end: at((h + 1) * 3_600_000) },
        trigger: priority ? ('schedule' as const) : ('backfill' as const),
        priority,
        maxActive: 1,
        tasks: [{ name: 't', deps: [], pool, mutex: null, maxAttempts: 1 }],
      });
      const backfill = await o.createRuns([spec(0, 0), spec(0, 1)], t0);
      const first = await o.promote(t0);
      assert.deepEqual(
        first.map((r) => r.runId),
        [backfill[0]],
      );
      const [fresh] = await o.createRuns([spec(10, 5)], at(1));
      assert.deepEqual(await o.promote(at(2)), [], 'max_active_runs 1: nothing more starts');
      assert.ok((await o.claim({ runId: backfill[0] as string, task: 't' }, 'w', 1000, () => 1, at(3))).ok);
      const done = await o.finish({ runId: backfill[0] as string, task: 't' }, 'w', 1, { ok: true, rows: 0 }, at(4));
      assert.deepEqual(
        done.ready.map((r) => r.runId),
        [fresh],
        'the fresh run goes before the rest of the backfill',
      );
      // Expired lease: recovered as lost; attempts exhausted → failed, and the next run starts.
      assert.ok((await o.claim({ runId: fresh as string, task: 't' }, 'dead', 100, () => 1, at(5))).ok);
      const recovered = await o.recoverExpired(at(500));
      assert.deepEqual(
        recovered.map((r) => r.runId),
        [backfill[1]],
      );
      assert.equal((await o.getRun(fresh as string))?.status, 'failed');
      assert.deepEqual(
        (await o.listAttempts(fresh as string)).map((a) => a.status),
        ['lost'],
      );
      // Cancel a running run: waiting tasks cancelled; the running one ends cancelled.
      const running = backfill[1] as string;
      assert.ok((await o.claim({ runId: running, task: 't' }, 'w', 1000, () => 1, at(600))).ok);
      assert.deepEqual(await o.heartbeat({ runId: running, task: 't' }, 'w', 1, 1000, at(700)), {
        lost: false,
        cancel: false,
      });
      await o.cancel(running, at(710));
      assert.deepEqual(await o.heartbeat({ runId: running, task: 't' }, 'w', 1, 1000, at(720)), {
        lost: false,
        cancel: true,
      });
      const fin = await o.finish(
        { runId: running, task: 't' },
        'w',
        1,
        { ok: false, error: 'cancelled', cause: null, retryable: false, retryDelayMs: 0, cancelled: true },
        at(730),
      );
      assert.equal(fin.runFinished?.status, 'cancelled');
      await assert.rejects(o.cancel(running, at(740)), /already cancelled/);
      // Pools: one slot; a second task waits until the first ends.
      const pooled = await o.createRuns(
        [
          { ...spec(10, 7, 'api'), maxActive: 5 },
          { ...spec(10, 8, 'api'), maxActive: 5 },
        ],
        at(800),
      );
      await o.promote(at(800));
      assert.ok((await o.claim({ runId: pooled[0] as string, task: 't' }, 'w', 1000, () => 1, at(810))).ok);
      assert.equal((await o.claim({ runId: pooled[1] as string, task: 't' }, 'w', 1000, () => 1, at(820))).ok, false);
      assert.equal((await o.claimNext('w', 1000, () => 1, at(830), 4)).length, 0);
      await o.finish({ runId: pooled[0] as string, task: 't' }, 'w', 1, { ok: true, rows: 0 }, at(840));
      assert.deepEqual(
        (await o.claimNext('w', 1000, () => 1, at(850), 4)).map((c) => c.ref.runId),
        [pooled[1]],
      );
      // Alerts: one incident alerts once per window.
      assert.equal(await o.claimAlert('failure:p', t0, 60_000), true);
      assert.equal(await o.claimAlert('failure:p', at(30_000), 60_000), false);
      assert.equal(await o.claimAlert('failure:p', at(60_000), 60_000), true);
      await o.resolveAlert('failure:p');
      assert.equal(await o.claimAlert('failure:p', at(61_000), 60_000), true);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------------

describe('SqliteCatalog', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dip-catalog-test-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  catalogContract('sqlite', async () => {
    const path = join(dir, `catalog-${++n}.db`);
    const catalog = await SqliteCatalog.create(path);
    return {
      catalog,
      config: { kind: 'sqlite', path },
      cleanup: async () => {
        await catalog.close();
      },
    };
  });

  it('openCatalog resolves a relative sqlite path against the project directory', async () => {
    const catalog = await openCatalog({ kind: 'sqlite', path: 'nested/.dip/catalog.db' }, join(dir, 'project'));
    try {
      assert.equal(catalog.kind, 'sqlite');
      await catalog.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 1)]));
    } finally {
      await catalog.close();
    }
    const again = await SqliteCatalog.create(join(dir, 'project', 'nested', '.dip', 'catalog.db'));
    try {
      assert.equal((await again.getTable(ORDERS))?.files, 1);
    } finally {
      await again.close();
    }
  });
});

describe('PostgresCatalog', postgresTestOptions(), () => {
  let server: PostgresServer | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  let n = 0;
  catalogContract('postgres', async () => {
    assert.ok(server, 'PostgreSQL server not started');
    const url = server.url;
    const schema = `dip_test_${process.pid}_${++n}`;
    const catalog = await PostgresCatalog.create({ url, schema });
    return {
      catalog,
      config: { kind: 'postgres', url, schema },
      cleanup: async () => {
        await catalog.close();
        await dropSchema(url, schema);
      },
    };
  });

  it('openCatalog connects with the configured url and schema', async () => {
    assert.ok(server);
    const url = server.url;
    const catalog = await openCatalog({ kind: 'postgres', url, schema: 'dip_open' }, process.cwd());
    try {
      assert.equal(catalog.kind, 'postgres');
      await catalog.commit(appendReq(ORDERS, [f('o/1.parquet', 1, 1)]));
      const tables = await withClient(
        url,
        async (c) =>
          (
            await c.query<{ n: string }>(
              `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'dip_open'`,
            )
          ).rows,
      );
      assert.ok(Number(tables[0]?.n) > 0, 'catalog tables live in the configured schema');
    } finally {
      await catalog.close();
      await dropSchema(url, 'dip_open');
    }
  });
});
