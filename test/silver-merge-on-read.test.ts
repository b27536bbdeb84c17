/**
 * Silver merge-on-read: a keyed build after the first writes only its changed rows (an upsert
 * file) and a delete file naming the keys it replaced or deleted. Readers see the merged rows,
 * which must equal a full rebuild of the same bronze, row by row over every column, after a
 * sequence of inserts, updates and deletes over several builds with compaction in between;
 * time travel returns an older commit's rows; a compaction killed at any moment leaves the
 * table readable and equal, and gc leaves only committed files.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { compactTable } from '../src/lake/maintenance.js';
import { Lake } from '../src/lake/lake.js';
import { query } from '../src/lake/query.js';
import { summarizeTable } from '../src/ops/tables.js';
import { runPipeline } from '../src/pipeline/run.js';
import { runSilver } from '../src/transform/silver.js';
import { CLI, projectConfig, TestProject } from './support/project.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface User {
  id: number;
  name: string;
  email: string;
  updated_at: string;
  is_deleted?: boolean;
  tags: string[];
}

const day = (n: number) => new Date(Date.UTC(2026, 0, 1) + n * 86_400_000).toISOString();
const user = (id: number, version: number, extra: Partial<User> = {}): User => ({
  id,
  name: `user ${id} v${version}`,
  email: `u${id}.v${version}@example.com`,
  updated_at: day(version),
  is_deleted: false,
  tags: Array.from({ length: (id + version) % 3 }, (_, i) => `t${id % 5}-${version}-${i}`),
  ...extra,
});
const ndjson = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function silverConfig(compaction: Record<string, unknown>): Record<string, unknown> {
  const config = projectConfig({ users: { path: 'data/*.ndjson', format: 'ndjson' } }, { raw: false });
  const p = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
  p['silver'] = {
    users: {
      from: 'users',
      primary_key: ['id'],
      dedup: { sort_by: 'updated_at', deleted_column: 'is_deleted' },
      columns: { email: { mask: 'hash' }, updated_at: { type: 'TIMESTAMPTZ' } },
      checks: [{ type: 'not_null', column: 'id' }],
      compaction,
    },
  };
  config['privacy'] = { salt: 'mor-test-salt-0123456789' };
  return config;
}

async function openLake(dir: string): Promise<Lake> {
  return Lake.open(await loadProject(dir));
}

/** Every row of a table (all columns but the run that wrote it), as text ordered by key, and an order-free checksum. */
async function contents(lake: Lake, table: string, key: string, asOf?: { commit: number }) {
  // Child rows carry no run id.
  const ex = table.includes('__') ? '' : ' EXCLUDE (_dip_run_id)';
  const r = await query(
    lake,
    `SELECT to_json(t)::VARCHAR AS j FROM (SELECT *${ex} FROM ${table}) AS t ORDER BY ${key}, j`,
    asOf,
  );
  const sum = await query(lake, `SELECT count(*) AS n, sum(hash(*COLUMNS(*${ex})))::VARCHAR AS h FROM ${table}`, asOf);
  return { rows: r.rows.map((x) => String(x['j'])), n: Number(sum.rows[0]?.['n']), h: String(sum.rows[0]?.['h']) };
}

/** The same project copied, rebuilt from every bronze file (`--full-refresh`): what silver must equal. */
async function fullRebuild(
  dir: string,
): Promise<{ users: Awaited<ReturnType<typeof contents>>; tags: Awaited<ReturnType<typeof contents>> }> {
  const copy = await mkdtemp(join(tmpdir(), 'dip-mor-full-'));
  try {
    await cp(dir, copy, { recursive: true });
    const lake = await openLake(copy);
    try {
      const pipeline = lake.project.config.pipelines['p'];
      assert.ok(pipeline);
      const [r] = await runSilver(lake, 'p', pipeline, { runId: 'full-rebuild', fullRefresh: true });
      assert.equal(r?.mode, 'full');
      return {
        users: await contents(lake, 'silver.users', 'id'),
        tags: await contents(lake, 'silver.users__tags', '_dip_parent_id, _dip_list_idx'),
      };
    } finally {
      await lake.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** The merge-on-read roles of a table's live files, sorted. */
function roles(files: { meta: Record<string, unknown> }[]): string[] {
  return files.map((f) => String(f.meta['mor'])).sort();
}

async function lakeFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, '.dip', 'lake'), { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile() && /\/(silver|bronze|quarantine)\//.test(join(e.parentPath, e.name)))
    .map((e) => join(e.parentPath, e.name));
}

describe('silver merge-on-read', () => {
  it('equals a full rebuild row by row after inserts, updates and deletes over several builds, with compaction between', async () => {
    const p = await TestProject.create({}, { raw: false });
    cleanups.push(() => p.dispose());
    // Compaction only when asked (the ratio and build count are out of reach), until the last builds.
    await p.write('dip.yaml', JSON.stringify(silverConfig({ delta_ratio: 100, max_builds: 100 }), null, 2));
    const builds: { data: User[]; compactAfter?: boolean }[] = [
      { data: range(1, 200).map((id) => user(id, 1)) },
      {
        // updates, new keys, deletes
        data: [
          ...range(1, 20).map((id) => user(id, 2)),
          ...range(201, 230).map((id) => user(id, 1)),
          ...range(50, 55).map((id) => user(id, 2, { is_deleted: true })),
        ],
      },
      {
        // an older version (loses, but moves the key's last arrival), a second update, a
        // delete of a key added one build ago, a deleted key back, duplicates within the build
        data: [user(100, 0), user(1, 3), user(1, 4), user(201, 2, { is_deleted: true }), user(50, 3), user(7, 2)],
        compactAfter: true,
      },
      {
        data: [
          ...range(2, 5).map((id) => user(id, 5)),
          ...range(231, 240).map((id) => user(id, 1)),
          user(3, 6, { is_deleted: true }),
          // a late older version of a key deleted two builds ago: the tombstone wins, the key stays deleted
          user(52, 1),
        ],
      },
      { data: [user(231, 2), user(240, 2, { is_deleted: true }), user(999, 1)] },
    ];
    const history: { commit: number; users: Awaited<ReturnType<typeof contents>> }[] = [];
    let lake = await openLake(p.dir);
    try {
      for (const [i, b] of builds.entries()) {
        await p.write(`data/b${i}.ndjson`, ndjson(b.data));
        const run = await runPipeline(lake, 'p');
        assert.equal(run.status, 'succeeded', JSON.stringify(run.errors));
        const files = await lake.catalog.liveFiles('silver.users');
        if (i === 0)
          assert.deepEqual(
            files.map((f) => f.meta['mor']),
            ['base'],
          );
        else {
          // This build added an upsert file and, when it replaced or deleted keys, a delete file.
          assert.ok(
            files.some((f) => f.meta['mor'] === 'upsert' && f.meta['mor_seq'] !== 0),
            `build ${i}: upsert file`,
          );
          assert.ok(
            files.some((f) => f.meta['mor'] === 'delete'),
            `build ${i}: delete file`,
          );
        }
        await lake.close();
        const full = await fullRebuild(p.dir);
        lake = await openLake(p.dir);
        const mine = await contents(lake, 'silver.users', 'id');
        assert.deepEqual(mine.rows, full.users.rows, `build ${i}: silver.users row by row`);
        assert.deepEqual([mine.n, mine.h], [full.users.n, full.users.h], `build ${i}: checksum`);
        const tags = await contents(lake, 'silver.users__tags', '_dip_parent_id, _dip_list_idx');
        assert.deepEqual(tags.rows, full.tags.rows, `build ${i}: silver.users__tags row by row`);
        // dip tables counts the rows readers see, not the delete files' keys.
        const info = await lake.catalog.getTable('silver.users');
        assert.ok(info);
        assert.equal((await summarizeTable(lake, info)).rows, mine.n, `build ${i}: row count`);
        history.push({ commit: (await lake.catalog.resolveAsOf({})) as number, users: mine });
        if (b.compactAfter) {
          const r = await compactTable(lake, 'silver.users', { smallFileBytes: 1 });
          assert.ok(r.commit, 'compacted');
          // A base file, and the tombstones of the deleted keys (which hide nothing).
          assert.deepEqual(roles(await lake.catalog.liveFiles('silver.users')), ['base', 'tombstones']);
          assert.deepEqual(await contents(lake, 'silver.users', 'id'), mine, 'compaction keeps every row');
          await compactTable(lake, 'silver.users__tags', { smallFileBytes: 1 });
          assert.deepEqual(await contents(lake, 'silver.users__tags', '_dip_parent_id, _dip_list_idx'), tags);
        }
      }
      // The expected figures, independently: the latest version per key, deleted keys gone.
      const latest = new Map<number, User>();
      for (const b of builds)
        for (const u of b.data) {
          const had = latest.get(u.id);
          if (!had || had.updated_at <= u.updated_at) latest.set(u.id, u);
        }
      const alive = [...latest.values()].filter((u) => !u.is_deleted);
      assert.equal(history[history.length - 1]?.users.n, alive.length);
      const names = await query(lake, 'SELECT id, name FROM silver.users ORDER BY id');
      assert.deepEqual(
        names.rows.map((r) => `${String(r['id'])}:${String(r['name'])}`),
        alive.sort((a, b) => a.id - b.id).map((u) => `${u.id}:${u.name}`),
      );

      // Time travel: every earlier commit still returns that commit's rows.
      for (const h of history)
        assert.deepEqual(await contents(lake, 'silver.users', 'id', { commit: h.commit }), h.users);

      // Compaction limits shape no value: changing them rebuilds nothing (the next build is incremental).
      await lake.close();
      await p.write('dip.yaml', JSON.stringify(silverConfig({ delta_ratio: 0.01, max_builds: 100 }), null, 2));
      lake = await openLake(p.dir);
      await p.write('data/b-last.ndjson', ndjson(range(10, 14).map((id) => user(id, 9))));
      const last = await runPipeline(lake, 'p');
      assert.equal(last.status, 'succeeded');
      const files = await lake.catalog.liveFiles('silver.users');
      assert.deepEqual(roles(files), ['base', 'tombstones'], 'compacted after the build, past the ratio');
      const commits = await lake.catalog.listCommits({ table: 'silver.users', limit: 2 });
      assert.deepEqual(
        commits.map((c) => c.operation),
        ['compact', 'merge'],
      );
      await lake.close();
      const full = await fullRebuild(p.dir);
      lake = await openLake(p.dir);
      assert.deepEqual(await contents(lake, 'silver.users', 'id'), full.users);
      assert.deepEqual(await contents(lake, 'silver.users__tags', '_dip_parent_id, _dip_list_idx'), full.tags);
    } finally {
      await lake.close();
    }
  });

  it('compacts after a build past the ratio, and a kill during compaction leaves the table readable and equal', async () => {
    const p = await TestProject.create({}, { raw: false });
    cleanups.push(() => p.dispose());
    await p.write('dip.yaml', JSON.stringify(silverConfig({ delta_ratio: 100, max_builds: 100 }), null, 2));
    const N = 60_000;
    await p.write('data/a.ndjson', ndjson(range(1, N).map((id) => user(id, 1))));
    let lake = await openLake(p.dir);
    let version = 2;
    const change = async () => {
      const ids = range(1, 400).map((i) => ((i * 7919 + version * 104_729) % N) + 1);
      await p.write(
        `data/c${version}.ndjson`,
        ndjson(ids.map((id) => user(id, version, { is_deleted: id % 11 === 0 }))),
      );
      version++;
      const run = await runPipeline(lake, 'p');
      assert.equal(run.status, 'succeeded', JSON.stringify(run.errors));
    };
    try {
      assert.equal((await runPipeline(lake, 'p')).status, 'succeeded');
      await change();
      let expected = await contents(lake, 'silver.users', 'id');
      await lake.close();
      let kills = 0;
      let done = 0;
      for (let attempt = 0; attempt < 10; attempt++) {
        const ms = 250 + ((attempt * 337) % 1200);
        const outcome = await new Promise<{ killed: boolean; code: number | null }>((resolve, reject) => {
          const child = spawn(process.execPath, [CLI, '-p', p.dir, 'compact', 'silver.users', '--json'], {
            stdio: 'ignore',
          });
          const timer = setTimeout(() => child.kill('SIGKILL'), ms);
          child.on('error', reject);
          child.on('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ killed: signal === 'SIGKILL', code });
          });
        });
        lake = await openLake(p.dir);
        const compacted = roles(await lake.catalog.liveFiles('silver.users')).every(
          (r) => r === 'base' || r === 'tombstones',
        );
        if (outcome.killed && !compacted) kills++;
        if (!outcome.killed) assert.equal(outcome.code, 0, 'a compaction that was not killed succeeds');
        // Whatever happened, the table reads the same rows.
        assert.deepEqual(await contents(lake, 'silver.users', 'id'), expected, `attempt ${attempt}`);
        if (compacted) {
          done++;
          await change();
          expected = await contents(lake, 'silver.users', 'id');
        }
        await lake.close();
      }
      assert.ok(kills >= 1, `at least one kill before the compaction committed (kills ${kills}, compactions ${done})`);
      // gc removes what the killed compactions left, nothing committed.
      const gc = spawnSync(process.execPath, [CLI, '-p', p.dir, 'gc', '--json', '--grace', '0s'], { encoding: 'utf8' });
      assert.equal(gc.status, 0, gc.stderr);
      lake = await openLake(p.dir);
      // Committed: live, or in an earlier commit within the history retention (time travel).
      const committed = new Set<string>([...(await lake.catalog.referencedPaths())].map((f) => join(p.lakeDir, f)));
      for (const t of await lake.catalog.listTables())
        for (const f of await lake.catalog.liveFiles(t.name)) committed.add(join(p.lakeDir, f.path));
      assert.deepEqual(
        (await lakeFiles(p.dir)).filter((f) => !committed.has(f)),
        [],
        'only committed files are left',
      );
      assert.deepEqual(await contents(lake, 'silver.users', 'id'), expected);
      await lake.close();

      // Past the ratio, the build is followed by a compaction of its own commit.
      await p.write('dip.yaml', JSON.stringify(silverConfig({ delta_ratio: 0.001, max_builds: 100 }), null, 2));
      lake = await openLake(p.dir);
      await p.write('data/z.ndjson', ndjson(range(1, 100).map((id) => user(id, 50))));
      const run = await runPipeline(lake, 'p');
      assert.equal(run.status, 'succeeded');
      const files = await lake.catalog.liveFiles('silver.users');
      assert.deepEqual(roles(files), ['base', 'tombstones'], 'compacted after the build');
      await lake.close();
      const full = await fullRebuild(p.dir);
      lake = await openLake(p.dir);
      assert.deepEqual(await contents(lake, 'silver.users', 'id'), full.users);
    } finally {
      await lake.close().catch(() => undefined);
    }
  });
});
