/**
 * The Storage contract (src/lake/storage/types.ts), one suite run against every implementation
 * in IMPLEMENTATIONS: today the local directory, with its staging directory on the project's
 * filesystem and on another one (/dev/shm, a tmpfs: publish cannot rename across filesystems).
 * The S3 entry points its `storage` section at an S3-compatible server (s3rver, from npm)
 * started on loopback for the suite, one key prefix per test.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { DipError } from '../src/core/errors.js';
import { Lake } from '../src/lake/lake.js';
import { collectGarbage } from '../src/lake/maintenance.js';
import { lit } from '../src/lake/sql.js';
import type { Storage, StoredObject } from '../src/lake/storage/index.js';
import { CLI, projectConfig, REPO_ROOT, runCli } from './support/project.js';
import { type S3Server, startS3 } from './support/s3.js';

interface StorageImplementation {
  name: string;
  /** The `storage` section of dip.yaml for a project in `dir`. */
  storage(dir: string): Record<string, unknown>;
  /** Lake files are local files whose modes can be checked (0600 files, 0700 directories). */
  localFiles: boolean;
  /** Why this implementation cannot run here (the suite is skipped, saying so). */
  unavailable?: string;
  /** Once before the suite (starting a server). */
  setup?(): Promise<void>;
  cleanup?(): Promise<void>;
  /** Once after the suite. */
  teardown?(): Promise<void>;
}

let s3: S3Server | undefined;

const SHM = '/dev/shm';
const shmStaging = join(SHM, `dip-storage-contract-${process.pid}`);
const otherFilesystem = existsSync(SHM) && statSync(SHM).dev !== statSync(tmpdir()).dev;

const IMPLEMENTATIONS: StorageImplementation[] = [
  { name: 'local', storage: () => ({ kind: 'local', path: '.dip/lake' }), localFiles: true },
  {
    name: 'local, staging on another filesystem',
    storage: () => ({ kind: 'local', path: '.dip/lake', staging: shmStaging }),
    localFiles: true,
    ...(otherFilesystem ? {} : { unavailable: `${SHM} is not a filesystem apart from ${tmpdir()}` }),
    cleanup: () => rm(shmStaging, { recursive: true, force: true }),
  },
  {
    name: 's3 (s3rver on loopback)',
    storage: (dir) => {
      if (!s3) throw new Error('the S3 server is not started');
      return s3.storage(`lake-${dir.slice(-6)}`);
    },
    localFiles: false,
    setup: async () => {
      s3 = await startS3();
    },
    teardown: async () => {
      await s3?.stop();
      s3 = undefined;
    },
  },
];

async function collect(it: AsyncIterable<StoredObject>): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for await (const o of it) out.push(o);
  return out;
}

const paths = (objects: StoredObject[]): string[] => objects.map((o) => o.path).sort();
const mode = (path: string): number => statSync(path).mode & 0o777;

/** Every entry under `dir`, relative, directories with a trailing `/`. */
async function tree(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    out.push(relative(dir, join(e.parentPath, e.name)) + (e.isDirectory() ? '/' : ''));
  return out.sort();
}

/** A writer in another process: opens the lake, registers a run, stages a file, makes DuckDB spill, waits. */
const WRITER = `
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProject } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'config', 'load.js'))};
import { Lake } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'lake', 'lake.js'))};
import { asRegisteredWriter } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'lake', 'writers.js'))};
const lake = await Lake.open(await loadProject(process.cwd()));
await asRegisteredWriter(lake, '(contract writer)', async () => {
  const staged = join(await lake.storage.stagingDir(), 'w-killed.parquet');
  writeFileSync(staged, 'half a parquet file');
  await lake.engine.run("SET memory_limit = '40MB'");
  await lake.engine.run('CREATE TEMP TABLE big AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(3000000)');
  process.stdout.write(JSON.stringify({ staged }) + '\\n');
  setInterval(() => {}, 60_000); // alive until killed
  await new Promise(() => {});
});
`;

for (const impl of IMPLEMENTATIONS) {
  describe(`Storage contract: ${impl.name}`, { skip: impl.unavailable }, () => {
    if (impl.setup) before(impl.setup);
    let dir: string;
    let lake: Lake;
    let storage: Storage;

    async function writeProject(storageSection: Record<string, unknown>, engine?: Record<string, unknown>) {
      const config: Record<string, unknown> = {
        ...projectConfig({ t: { path: 'data/*.csv' } }),
        storage: storageSection,
      };
      if (engine) config['engine'] = { ...(config['engine'] as object), ...engine };
      await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config, null, 2));
    }

    /** A file in staging, as an engine would leave it before publish. */
    async function staged(name: string, content: string): Promise<string> {
      const file = join(await storage.stagingDir(), name);
      await writeFile(file, content);
      return file;
    }

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'dip-storage-'));
      await writeProject(impl.storage(dir));
      lake = await Lake.open(await loadProject(dir));
      storage = lake.storage;
    });
    afterEach(async () => {
      await lake.close();
      await rm(dir, { recursive: true, force: true });
      await impl.cleanup?.();
    });
    after(async () => {
      await impl.cleanup?.();
      await impl.teardown?.();
    });

    it('publish puts the staged bytes at the path, removes the staged file and reports the size', async () => {
      const local = await staged('a.parquet', 'twelve bytes');
      const stored = await storage.publish(local, 'bronze/s/t/date=2026-01-01/a.parquet');
      assert.deepEqual([stored.path, stored.bytes], ['bronze/s/t/date=2026-01-01/a.parquet', 12]);
      assert.equal(existsSync(local), false, 'the staged file is gone');
      const [listed] = await collect(storage.list('bronze/s/t/date=2026-01-01/a.parquet'));
      assert.deepEqual([listed?.path, listed?.bytes], [stored.path, 12]);
      if (impl.localFiles) {
        assert.equal(await readFile(storage.uri(stored.path), 'utf8'), 'twelve bytes');
        assert.equal(mode(storage.uri(stored.path)), 0o600);
        for (const d of ['bronze', 'bronze/s', 'bronze/s/t', 'bronze/s/t/date=2026-01-01'])
          assert.equal(mode(storage.uri(d)), 0o700, `${d} is 0700`);
        // Nothing but the file: no temp copy beside it (the cross-filesystem path copies first).
        assert.deepEqual(await tree(storage.location), [
          'bronze/',
          'bronze/s/',
          'bronze/s/t/',
          'bronze/s/t/date=2026-01-01/',
          'bronze/s/t/date=2026-01-01/a.parquet',
        ]);
      }
    });

    it('publish refuses to overwrite an existing path and leaves both files as they were', async () => {
      const path = 'silver/p/t/date=2026-01-01/b.parquet';
      await storage.publish(await staged('b1', 'first'), path);
      const second = await staged('b2', 'second version');
      await assert.rejects(
        storage.publish(second, path),
        (err: unknown) =>
          err instanceof DipError &&
          err.kind === 'conflict' &&
          err.message ===
            'lake file silver/p/t/date=2026-01-01/b.parquet already exists; lake files are never overwritten',
      );
      const [listed] = await collect(storage.list(path));
      assert.equal(listed?.bytes, 'first'.length);
      if (impl.localFiles) assert.equal(await readFile(storage.uri(path), 'utf8'), 'first');
      assert.equal(await readFile(second, 'utf8'), 'second version', 'the refused staged file is left to its writer');
      assert.deepEqual(paths(await collect(storage.list(''))), [path]);
    });

    it('list: recursive under a prefix that is a path segment, every object once, none for a missing prefix', async () => {
      const keys = [
        'bronze/a/t/date=2026-01-01/1.parquet',
        'bronze/a/t/date=2026-01-02/2.parquet',
        'bronze/ab/t/date=2026-01-01/3.parquet',
        'raw/a/t/date=2026-01-01/4.ndjson.zst',
      ];
      for (const [i, k] of keys.entries()) await storage.publish(await staged(`l${i}`, 'x'.repeat(i + 1)), k);
      // No order is promised: compared sorted.
      assert.deepEqual(paths(await collect(storage.list(''))), keys);
      assert.deepEqual(paths(await collect(storage.list('bronze'))), keys.slice(0, 3));
      assert.deepEqual(
        paths(await collect(storage.list('bronze/a'))),
        keys.slice(0, 2),
        'bronze/ab is not under bronze/a',
      );
      assert.deepEqual(paths(await collect(storage.list('gold'))), []);
      const sizes = Object.fromEntries((await collect(storage.list(''))).map((o) => [o.path, o.bytes]));
      assert.deepEqual(sizes, Object.fromEntries(keys.map((k, i) => [k, i + 1])));
      // Scratch is not in the lake: staged files are never listed.
      await staged('not-published.parquet', 'x');
      assert.equal((await collect(storage.list(''))).length, keys.length);
    });

    it('delete removes the named objects; missing ones are not an error', async () => {
      const keys = ['bronze/s/t/date=2026-01-01/d1.parquet', 'bronze/s/t/date=2026-01-01/d2.parquet'];
      for (const k of keys) await storage.publish(await staged(k.slice(-10), 'd'), k);
      await storage.delete([keys[0] as string, 'bronze/s/t/date=2026-01-01/never-there.parquet']);
      assert.deepEqual(paths(await collect(storage.list(''))), [keys[1]]);
      await storage.delete([keys[0] as string]);
      assert.deepEqual(paths(await collect(storage.list(''))), [keys[1]]);
    });

    it('read via DuckDB: a Parquet file written to staging, published, then queried through the lake engine', async () => {
      const local = join(await storage.stagingDir(), 'q.parquet');
      await lake.engine.run(
        `COPY (SELECT range AS id, 'r' || range AS name FROM range(1000)) TO ${lit(local)} (FORMAT parquet)`,
      );
      const stored = await storage.publish(local, 'bronze/s/q/date=2026-01-01/q.parquet');
      const [row] = await lake.engine.all(
        `SELECT count(*)::INTEGER AS n, sum(id)::BIGINT AS s, max(name) AS m FROM read_parquet(${lit(storage.uri(stored.path))})`,
      );
      assert.deepEqual(row, { n: 1000, s: '499500', m: 'r999' });
    });

    it('a pipeline run lands its rows and leaves the lake root holding zone files only; scratch is outside it', async () => {
      await mkdir(join(dir, 'data'));
      await writeFile(join(dir, 'data', 'a.csv'), 'id,v\n1,a\n2,b\n3,c\n');
      const run = await runCli(['run', '--json'], dir);
      assert.equal(run.code, 0, run.stderr);
      const q = await runCli(
        ['query', '--json', 'select count(*)::INTEGER as n, sum(id)::INTEGER as s from bronze.t'],
        dir,
      );
      assert.equal(q.code, 0, q.stderr);
      assert.deepEqual(JSON.parse(q.stdout), [{ n: 3, s: 6 }]);
      const lakeTree = impl.localFiles
        ? (await tree(storage.location)).filter((e) => !e.endsWith('/'))
        : paths(await collect(storage.list('')));
      assert.equal(lakeTree.length, 2, lakeTree.join(', '));
      assert.ok(
        lakeTree.every((e) =>
          /^(bronze\/src\/t\/date=\d{4}-\d{2}-\d{2}\/part-[^/]+\.parquet|raw\/src\/t\/content\/[0-9a-f]{64}\.csv\.zst)$/.test(
            e,
          ),
        ),
        lakeTree.join(', '),
      );
      const staging = await storage.stagingDir();
      assert.ok(!`${staging}/`.startsWith(`${storage.location}/`), `${staging} is outside ${storage.location}`);
      assert.deepEqual(await tree(staging), [], 'the run left nothing in staging');
      if (impl.localFiles) assert.equal(mode(staging), 0o700);
      assert.deepEqual(await tree(join(dir, '.dip', 'tmp')), [], 'the engine removed its spill directory');
    });

    it("DuckDB spills into a directory of this engine's own, 0700, outside the lake, removed on close", async () => {
      await lake.engine.all('SELECT 1');
      const [own, ...others] = await readdir(join(dir, '.dip', 'tmp'));
      assert.deepEqual(others, []);
      assert.match(own ?? '', new RegExp(`^${process.pid}@.+\\.[0-9a-z]+$`));
      assert.equal(mode(join(dir, '.dip', 'tmp', own as string)), 0o700);
      assert.equal(lake.tempRoot, join(dir, '.dip', 'tmp'));
      await lake.close();
      assert.deepEqual(await readdir(join(dir, '.dip', 'tmp')), []);
      lake = await Lake.open(await loadProject(dir));
      storage = lake.storage;
    });

    it("closing one engine leaves another engine's spill files alone (DuckDB clears its whole temp directory on close)", async () => {
      await lake.engine.run("SET memory_limit = '40MB'");
      await lake.engine.run('CREATE TEMP TABLE big AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(3000000)');
      const spillFiles = async () =>
        (await tree(join(dir, '.dip', 'tmp'))).filter((e) => /(^|\/)duckdb_temp_[^/]+$/.test(e));
      const before = await spillFiles();
      assert.ok(before.length > 0, 'the first engine spilled');
      const other = await Lake.open(await loadProject(dir));
      await other.engine.all('SELECT 1');
      await other.close();
      assert.deepEqual(await spillFiles(), before);
      const [row] = await lake.engine.all('SELECT count(*)::INTEGER AS n FROM big');
      assert.deepEqual(row, { n: 3_000_000 });
    });

    it('scratch inside the lake root is refused, naming the setting', {
      skip: !impl.localFiles && 'a remote lake has no local root',
    }, async () => {
      await writeProject({ ...impl.storage(dir), staging: '.dip/lake/_staging' });
      await assert.rejects(Lake.open(await loadProject(dir)), (err: unknown) => {
        assert.ok(err instanceof DipError && err.kind === 'config');
        assert.match(err.message, /dip\.yaml: storage\.staging \(.+\/\.dip\/lake\/_staging\) is inside the lake root/);
        return true;
      });
      await writeProject(impl.storage(dir), { temp_directory: '.dip/lake' });
      await assert.rejects(
        Lake.open(await loadProject(dir)),
        /engine\.temp_directory \(.+\/\.dip\/lake\) is inside the lake root/,
      );
    });

    it("gc removes what a killed writer left in staging and its spill directory after the grace period, not before, and never a live writer's", async () => {
      const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', WRITER], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const ready = await new Promise<{ staged: string }>((resolve, reject) => {
        let out = '';
        child.stdout?.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(JSON.parse(out) as { staged: string });
        });
        child.on('exit', (code) => reject(new Error(`writer exited ${code}: ${err}`)));
      });
      const tmpRoot = join(dir, '.dip', 'tmp');
      const [spill] = await readdir(tmpRoot);
      const spillDir = join(tmpRoot, spill as string);
      const spilled = await readdir(spillDir);
      assert.ok(
        spilled.some((f) => f.startsWith('duckdb_temp_')),
        `DuckDB spilled: ${spilled.join(', ')}`,
      );
      const age = async (when: Date) => {
        await utimes(ready.staged, when, when);
        for (const f of await readdir(spillDir)) await utimes(join(spillDir, f), when, when);
      };
      const gc = async (grace: string) => {
        const r = await runCli(['gc', '--grace', grace, '--json'], dir);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as { stagingFiles: number; deleted: string[] };
      };
      try {
        // Live: a grace of 0 s keeps what it staged since its run started, and its spill files.
        const live = await gc('0s');
        assert.deepEqual([live.stagingFiles, live.deleted], [0, []]);
        assert.ok(existsSync(ready.staged) && existsSync(spillDir));
      } finally {
        child.kill('SIGKILL');
        await new Promise((r) =>
          child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
        );
      }
      // Killed, files fresh: within the grace period nothing goes.
      await age(new Date());
      const early = await gc('1h');
      assert.deepEqual([early.stagingFiles, early.deleted], [0, []]);
      assert.ok(existsSync(ready.staged) && existsSync(spillDir));
      // Past the grace period: the staged file and every spill file go, and the spill directory.
      await age(new Date(Date.now() - 2 * 3_600_000));
      const spillFiles = await readdir(spillDir);
      const late = await gc('1h');
      const shown = (abs: string) => (abs.startsWith(`${dir}/`) ? relative(dir, abs) : abs);
      assert.deepEqual(
        [...late.deleted].sort(),
        [shown(ready.staged), ...spillFiles.map((f) => shown(join(spillDir, f)))].sort(),
      );
      assert.equal(late.stagingFiles, 1 + spillFiles.length);
      assert.deepEqual(await readdir(await storage.stagingDir()), []);
      assert.deepEqual(await readdir(tmpRoot), []);
      const again = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
      assert.deepEqual(again.deleted, []);
    });
  });
}

/** The suite would be empty without the built CLI the end-to-end tests run. */
assert.ok(existsSync(CLI), `${CLI} is built (npm run build)`);
