/**
 * DIP runs on Node 20 and Node 24 (issue 25). better-sqlite3 12.x built against Node 24.19+
 * headers aborts the process (`Assertion failed: (env) != nullptr` in
 * node::RemoveEnvironmentCleanupHook, from Statement::~Statement, exit 134) when the garbage
 * collector frees a statement outside a JavaScript context; 13.x (Node-API) does not, but crashes
 * on Node 20. The SQLite driver therefore loads 12.x on Node 20 and 13.x on Node 22+.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSqlite, sqlitePackageFor } from '../src/core/sqlite-native.js';

const require = createRequire(import.meta.url);
const nodeMajor = Number(process.versions.node.split('.')[0]);

describe('Node runtime: the SQLite driver per Node version', () => {
  it('Node 20 gets better-sqlite3 (12.x); Node 22 and 24 get better-sqlite3-napi (13.x)', () => {
    assert.equal(sqlitePackageFor('20.20.2'), 'better-sqlite3');
    assert.equal(sqlitePackageFor('v20.19.0'), 'better-sqlite3');
    assert.equal(sqlitePackageFor('22.12.0'), 'better-sqlite3-napi');
    assert.equal(sqlitePackageFor('24.21.0'), 'better-sqlite3-napi');
    assert.equal(sqlitePackageFor('v24.0.0'), 'better-sqlite3-napi');
  });

  it(`on this Node (${process.versions.node}) the catalog and vault load the build made for it`, async () => {
    const Database = await loadSqlite();
    const expected = nodeMajor >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';
    assert.equal(Database, require(expected));
    const { version } = require(`${expected}/package.json`) as { version: string };
    assert.equal(version.split('.')[0], nodeMajor >= 22 ? '13' : '12');
    const db = new Database(':memory:');
    try {
      assert.deepEqual(db.prepare('SELECT 1 + 1 AS two').get(), { two: 2 });
    } finally {
      db.close();
    }
  });

  it('a process that opens and closes catalogs while the heap churns exits 0 (Node 24 + better-sqlite3 12: exit 134)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dip-node-runtime-'));
    try {
      const catalogModule = fileURLToPath(new URL('../src/catalog/sqlite.ts', import.meta.url));
      const script = join(dir, 'churn.mts');
      // Each closed catalog leaves its prepared statements to the garbage collector; the
      // allocations and timers make V8 finish marking in a task, outside any JavaScript context.
      await writeFile(
        script,
        [
          `import { SqliteCatalog } from ${JSON.stringify(catalogModule)};`,
          'let keep: unknown[] = [];',
          'let commits = 0;',
          'for (let round = 0; round < 40; round++) {',
          `  const catalog = await SqliteCatalog.create(${JSON.stringify(join(dir, 'catalog.db'))});`,
          '  commits += (await catalog.listCommits({ limit: 5 })).length;',
          '  await catalog.close();',
          '  for (let k = 0; k < 4; k++) {',
          '    keep.push(Array.from({ length: 20000 }, (_, j) => ({ j, s: `x${j}` })));',
          '    if (keep.length > 20) keep = [];',
          '    await new Promise((r) => setTimeout(r, 1));',
          '  }',
          '}',
          'console.log(`rounds=40 commits=${commits}`);',
        ].join('\n'),
      );
      const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 120_000 });
      assert.doesNotMatch(r.stderr, /Assertion failed/);
      assert.equal(r.signal, null, r.stderr);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'rounds=40 commits=0');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
