/**
 * Issue 14, items 9 and 10: runs that exit 0 with data missing, configurations that loop or mix
 * tables, and the accounting of runs (status row counts, concurrent runs, gc, task logs, disk full).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { collectGarbage } from '../src/lake/maintenance.js';
import { Lake } from '../src/lake/lake.js';
import { query } from '../src/lake/query.js';
import { runPipeline } from '../src/pipeline/run.js';
import { startRuntime, waitForRuns } from '../src/orchestrate/runtime.js';
import { CLI, TestProject, projectConfig, runCli, type CliResult } from './support/project.js';

const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
});

async function project(streams: Parameters<typeof TestProject.create>[0]): Promise<TestProject> {
  const p = await TestProject.create(streams);
  projects.push(p);
  return p;
}

/** A project whose dip.yaml is the given text (YAML, so errors have meaningful lines). */
async function yamlProject(text: string): Promise<TestProject> {
  const p = await project({});
  await p.write('dip.yaml', text);
  return p;
}

const HEAD = `version: 1
project: t
storage: { kind: local, path: .dip/lake }
catalog: { kind: sqlite, path: .dip/catalog.db }
engine: { threads: 2, memory_limit: 512MB }
`;

/** Runs the CLI with a preloaded module (a seam hook), like runCli. */
function runCliWith(preload: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', preload, CLI, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const STORAGE_MODULE = join(CLI, '..', '..', 'lake', 'storage', 'local.js');

/**
 * A preload that runs `dip gc --grace 0s` in another process right after the first file under
 * `prefix` is published, before the writer commits it: the race of a short grace, made certain.
 */
async function gcOnPublishPreload(dir: string): Promise<string> {
  const file = join(dir, 'gc-on-publish.mjs');
  await writeFile(
    file,
    `import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { LocalStorage } from ${JSON.stringify(STORAGE_MODULE)};
const publish = LocalStorage.prototype.publish;
let done = false;
LocalStorage.prototype.publish = async function (local, path) {
  const stored = await publish.call(this, local, path);
  if (!done && path.startsWith(process.env.GC_ON_PUBLISH)) {
    done = true;
    writeFileSync(process.env.GC_OUT, execFileSync(process.execPath, [${JSON.stringify(CLI)}, 'gc', '--grace', '0s', '--json'], { cwd: process.cwd() }));
  }
  return stored;
};
`,
  );
  return file;
}

describe('runs that may have missed data do not exit 0', () => {
  it('a run whose every record was quarantined is warned; dip run --strict exits 3', async () => {
    const p = await project({ m: { path: 'data/*.csv', csv: { columns: { qty: 'INTEGER' } } } });
    await p.write('data/1.csv', 'id,qty\n1,x\n2,y\n3,z\n');
    const r = await p.run();
    assert.equal(r.status, 'warned');
    assert.deepEqual([r.stats.streams['src.m']?.rows, r.stats.streams['src.m']?.quarantined], [0, 3]);
    assert.match(r.warnings[0] ?? '', /src\.m: all 3 records read were quarantined, none landed/);
    assert.equal((await (await p.lake()).catalog.getRun(r.runId))?.status, 'warned');

    await p.write('data/2.csv', 'id,qty\n4,a\n5,b\n');
    const plain = await runCli(['run', '--quiet'], p.dir);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /warned/);
    assert.match(plain.stderr, /warning: src\.m: all 2 records read were quarantined/);
    await p.write('data/3.csv', 'id,qty\n6,c\n');
    const strict = await runCli(['run', '--quiet', '--strict'], p.dir);
    assert.equal(strict.code, 3, strict.stderr);
    // A run that landed rows beside quarantined ones is not warned.
    await p.write('data/4.csv', 'id,qty\n7,1\n8,d\n');
    const mixed = await runCli(['run', '--quiet', '--strict'], p.dir);
    assert.equal(mixed.code, 0, mixed.stderr);
  });

  it('--as-of a commit past the head is an error naming the head', async () => {
    const p = await project({ o: { path: 'data/*.csv' } });
    await p.write('data/1.csv', 'id\n1\n2\n');
    await p.runOk();
    const lake = await p.lake();
    const head = await lake.catalog.resolveAsOf({});
    assert.ok(head !== undefined && head > 0);
    await assert.rejects(
      query(lake, 'select count(*) from bronze.o', { commit: head + 100 }),
      new RegExp(`no commit ${head + 100}: the head \\(newest commit\\) is commit ${head}$`),
    );
    assert.equal(
      Number(Object.values((await query(lake, 'select count(*) from bronze.o', { commit: head })).rows[0] ?? {})[0]),
      2,
    );
    await p.reopen();
    const cli = await runCli(['query', 'select count(*) from bronze.o', '--as-of', String(head + 1)], p.dir);
    assert.equal(cli.code, 6);
    assert.match(cli.stderr, new RegExp(`no commit ${head + 1}: the head \\(newest commit\\) is commit ${head}`));
  });
});

describe('configuration mistakes are load-time errors with file:line', () => {
  it('two pipelines writing the same table', async () => {
    const p = await yamlProject(`${HEAD}pipelines:
  shop:
    sources:
      files:
        type: files
        streams:
          orders: { path: "a/*.csv" }
  legacy:
    sources:
      old:
        type: files
        streams:
          old_orders: { path: "b/*.csv", table: orders }
`);
    await assert.rejects(loadProject(p.dir), (err: Error) => {
      assert.match(
        err.message,
        /dip\.yaml:18:\d+: pipelines\.legacy\.sources\.old\.streams\.old_orders\.table: table bronze\.orders is written by two pipelines, shop \(pipelines\.shop\.sources\.files\.streams\.orders, \S*dip\.yaml:12\) and legacy: their rows would mix in one table/,
      );
      return true;
    });
    const cli = await runCli(['run'], p.dir);
    assert.equal(cli.code, 2);
    assert.equal(existsSync(p.lakeDir), false, 'nothing was written');
  });

  it('database streams: a CDC change log is a bronze table silver may read; a database table is a writer like a file stream', async () => {
    const ok = await yamlProject(`${HEAD}pipelines:
  db:
    sources:
      pg:
        type: postgres
        connection: { url: "postgres://u@127.0.0.1/x" }
        tables: [{ name: accounts, mode: cdc }, orders]
    silver:
      accounts: { from: accounts_changes, primary_key: [id] }
      orders: { from: orders }
`);
    const loaded = await loadProject(ok.dir);
    assert.deepEqual(Object.keys(loaded.config.pipelines['db']?.silver ?? {}), ['accounts', 'orders']);
    const clash = await yamlProject(`${HEAD}pipelines:
  db:
    sources:
      pg: { type: postgres, connection: { url: "postgres://u@127.0.0.1/x" }, tables: [orders] }
  files:
    sources:
      f: { type: files, streams: { orders: { path: "o/*.csv" } } }
`);
    await assert.rejects(
      loadProject(clash.dir),
      /dip\.yaml:\d+:\d+: pipelines\.files\.sources\.f\.streams\.orders: table bronze\.orders is written by two pipelines, db \(pipelines\.db\.sources\.pg\.tables\[0\], \S*dip\.yaml:9\) and files/,
    );
  });

  it('pipeline trigger cycles, task cycles and a from: naming a missing table', async () => {
    const triggers = await yamlProject(`${HEAD}pipelines:
  a:
    triggers: [{ pipeline: b }]
    sources: {}
    tasks: { t: { shell: "true" } }
  b:
    triggers:
      - pipeline: a
    sources: {}
    tasks: { t: { shell: "true" } }
  c:
    triggers: [{ pipeline: nope }]
    sources: {}
`);
    await assert.rejects(loadProject(triggers.dir), (err: Error) => {
      assert.match(err.message, /\(2 problems\)/);
      assert.match(
        err.message,
        /dip\.yaml:8:\d+: pipelines\.a\.triggers\[0\]\.pipeline: pipeline triggers form a cycle: a → b → a \(each successful run would start the next, forever\)/,
      );
      assert.match(
        err.message,
        /dip\.yaml:17:\d+: pipelines\.c\.triggers\[0\]\.pipeline: no pipeline nope to run after \(pipelines: a, b, c\)/,
      );
      return true;
    });

    const tasks = await yamlProject(`${HEAD}pipelines:
  p:
    sources:
      src: { type: files, streams: { orders: { path: "data/*.csv" } } }
    tasks:
      export:
        shell: "true"
        inputs: [bronze.orders]
        depends_on: [notify]
      notify:
        shell: "true"
        depends_on: [export]
`);
    await tasks.write('data/1.csv', 'id\n1\n');
    const run = await runCli(['run'], tasks.dir);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /dip\.yaml:11:\d+: pipelines\.p\.tasks\.export: tasks form a cycle: (export → notify → export|notify → export → notify)/,
    );
    assert.equal(existsSync(tasks.lakeDir), false, 'the cycle is refused before anything is ingested');

    const from = await yamlProject(`${HEAD}pipelines:
  p:
    sources:
      src: { type: files, streams: { users: { path: "in/*.csv" } } }
    silver:
      people:
        from: usres
`);
    await from.write('in/1.csv', 'id\n1\n');
    const r = await runCli(['run'], from.dir);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /dip\.yaml:12:\d+: pipelines\.p\.silver\.people\.from: usres is not a bronze table of this pipeline \(its streams land in: bronze\.users\)/,
    );
    assert.equal(existsSync(from.lakeDir), false, 'bronze was not committed before the error');
  });
});

describe('accounting', () => {
  it('dip status counts what a crashed run committed', async () => {
    const p = await project({ o: { path: 'data/*.csv' } });
    for (let i = 0; i < 9; i++)
      await p.write(`data/a${i}.csv`, `id,v\n${Array.from({ length: 10 }, (_, k) => `${i * 10 + k},x`).join('\n')}\n`);
    // A last file big enough that the run is still busy with it when killed.
    await p.write(
      'data/z.csv',
      `id,v\n${Array.from({ length: 3_000_000 }, (_, k) => `${k},yyyyyyyyyyyyyyyyyyyy`).join('\n')}\n`,
    );
    const child = spawn(process.execPath, [CLI, 'run', '--quiet', '--no-silver'], { cwd: p.dir, stdio: 'ignore' });
    const lake = await p.lake();
    const deadline = Date.now() + 60_000;
    for (;;) {
      const t = (await lake.catalog.listTables()).find((x) => x.name === 'bronze.o');
      if ((t?.rows ?? 0) >= 90) break;
      if (Date.now() > deadline) throw new Error('the run did not commit 90 rows in time');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await p.reopen();
    const status = await runCli(['status', '--json'], p.dir);
    assert.equal(status.code, 0, status.stderr);
    const runs = (
      JSON.parse(status.stdout) as {
        runs: {
          status: string;
          stats: { streams: Record<string, { rows: number; files: number; commits: number }> };
        }[];
      }
    ).runs;
    assert.equal(runs[0]?.status, 'crashed');
    const committedRows = (await (await p.lake()).catalog.listTables()).find((x) => x.name === 'bronze.o')?.rows;
    assert.equal(committedRows, 90);
    assert.deepEqual(
      runs[0]?.stats.streams['src.o'] && [runs[0].stats.streams['src.o'].rows, runs[0].stats.streams['src.o'].commits],
      [90, 9],
    );
    const text = await runCli(['status'], p.dir);
    assert.match(text.stdout, /crashed\s+\S+\s+\S+ s?\s*90\s/);
  });

  it('two concurrent runs of the same files: only the run whose commit landed a file counts its rows', async () => {
    const p = await project({ o: { path: 'data/*.csv' } });
    for (let i = 0; i < 12; i++)
      await p.write(
        `data/f${String(i).padStart(2, '0')}.csv`,
        `id\n${Array.from({ length: 50 }, (_, k) => i * 50 + k).join('\n')}\n`,
      );
    const config = await loadProject(p.dir);
    for (let attempt = 0; ; attempt++) {
      const [a, b] = [await Lake.open(config), await Lake.open(config)];
      try {
        const [ra, rb] = await Promise.all([runPipeline(a, 'p'), runPipeline(b, 'p')]);
        const sa = ra.stats.streams['src.o'];
        const sb = rb.stats.streams['src.o'];
        const overlap = (sa?.skippedFiles ?? 0) + (sb?.skippedFiles ?? 0);
        const bronze = Number(Object.values((await query(a, 'select count(*) from bronze.o')).rows[0] ?? {})[0]);
        assert.equal(bronze, 600);
        if (overlap === 0 && attempt < 3) {
          // The runs did not race this time; start over.
          await rm(p.path('.dip'), { recursive: true, force: true });
          continue;
        }
        console.log(
          `concurrent runs: ${sa?.rows} + ${sb?.rows} rows reported, ${bronze} landed, ${overlap} files landed by the other run`,
        );
        assert.equal((sa?.rows ?? 0) + (sb?.rows ?? 0), 600);
        assert.equal((sa?.files ?? 0) + (sb?.files ?? 0), 12);
        const saved = await a.catalog.listRuns({ limit: 2 });
        assert.equal(
          saved.reduce((n, r) => n + (r.stats.streams['src.o']?.rows ?? 0), 0),
          600,
          'the run records (dip_rows_total) hold each row once',
        );
        break;
      } finally {
        await a.close();
        await b.close();
      }
    }
  });

  it('gc --dry-run reports exactly what the real gc deletes', async () => {
    const p = await project({ o: { path: 'data/*.csv', write_disposition: 'replace' } });
    await p.write('data/1.csv', 'id\n1\n2\n');
    await p.runOk();
    await p.runOk(); // replaces: the first run's files are removed from the table
    await p.runOk();
    const lake = await p.lake();
    const dry = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0, dryRun: true });
    const real = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
    console.log(`gc: dry run would delete ${dry.deleted.length}, real run deleted ${real.deleted.length}`);
    assert.ok(real.deleted.length >= 2, `real gc deleted ${real.deleted.length}`);
    assert.deepEqual([...dry.deleted].sort(), [...real.deleted].sort());
    assert.deepEqual(
      [dry.expiredFiles, dry.orphanFiles, dry.stagingFiles, dry.bytesFreed],
      [real.expiredFiles, real.orphanFiles, real.stagingFiles, real.bytesFreed],
    );
    assert.equal(await p.count('bronze.o'), 2);
    await p.reopen();
    const again = await runCli(['gc', '--dry-run', '--retention', '0s', '--grace', '0s'], p.dir);
    assert.match(again.stdout, /gc would delete 0 files/);
  });

  it('gc with a short grace beside compact and transform leaves their in-flight files', async () => {
    const p = await yamlProject(`${HEAD}pipelines:
  p:
    sources:
      src: { type: files, streams: { o: { path: "data/*.csv" } } }
    silver:
      o: { from: o }
`);
    for (let i = 0; i < 3; i++) await p.write(`data/${i}.csv`, `id\n${i * 2}\n${i * 2 + 1}\n`);
    const run = await runCli(['run', '--quiet', '--no-silver'], p.dir);
    assert.equal(run.code, 0, run.stderr);
    const preload = await gcOnPublishPreload(p.dir);

    const compact = await runCliWith(preload, ['compact', 'bronze.o'], p.dir, {
      GC_ON_PUBLISH: 'bronze/',
      GC_OUT: p.path('gc-compact.json'),
    });
    assert.equal(compact.code, 0, compact.stderr);
    assert.match(compact.stdout, /bronze\.o: 3 files, 6 rows → 1 file \(commit \d+\)/);
    const gc1 = JSON.parse(await readFile(p.path('gc-compact.json'), 'utf8')) as { deleted: string[] };
    assert.deepEqual(
      gc1.deleted.filter((f) => f.startsWith('bronze/')),
      [],
      'the compacted file was not deleted before its commit',
    );
    const count = await runCli(['query', 'select count(*) as n from bronze.o', '--format', 'csv'], p.dir);
    assert.equal(count.code, 0, count.stderr);
    assert.equal(count.stdout.trim(), 'n\n6');

    const transform = await runCliWith(preload, ['transform', '--quiet'], p.dir, {
      GC_ON_PUBLISH: 'silver/',
      GC_OUT: p.path('gc-transform.json'),
    });
    assert.equal(transform.code, 0, transform.stderr);
    const gc2 = JSON.parse(await readFile(p.path('gc-transform.json'), 'utf8')) as { deleted: string[] };
    assert.deepEqual(
      gc2.deleted.filter((f) => f.startsWith('silver/')),
      [],
      'the silver file was not deleted before its commit',
    );
    const silver = await runCli(['query', 'select count(*) as n from silver.o', '--format', 'csv'], p.dir);
    assert.equal(silver.code, 0, silver.stderr);
    assert.equal(silver.stdout.trim(), 'n\n6');
  });

  it('a shell task printing 300 MB succeeds with a bounded log tail and bounded memory', async () => {
    const p = await project({});
    const config = projectConfig({});
    (config['pipelines'] as Record<string, unknown>)['p'] = {
      sources: {},
      tasks: { chatty: { shell: "head -c 300000000 /dev/zero | tr '\\\\0' 'x' | fold -w 99; echo last-line" } },
    };
    await p.write('dip.yaml', JSON.stringify(config));
    const lake = await p.lake();
    const runtime = startRuntime(lake, { leaseMs: 30_000, pollMs: 50 });
    try {
      const rssBefore = process.memoryUsage().rss;
      const peakBefore = process.resourceUsage().maxRSS * 1024;
      let peak = rssBefore;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 25);
      const started = Date.now();
      const run = await runtime.orchestrator.trigger('p');
      const [done] = await waitForRuns(runtime.orchestrator.store, [run.id], { pollMs: 100 });
      clearInterval(sampler);
      const peakAfter = process.resourceUsage().maxRSS * 1024;
      const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
      console.log(
        `chatty task: ${((Date.now() - started) / 1000).toFixed(1)} s; RSS before ${mb(rssBefore)}, sampled peak during ${mb(peak)} (+${mb(peak - rssBefore)}); process peak RSS before ${mb(peakBefore)}, after ${mb(peakAfter)}`,
      );
      assert.equal(done?.status, 'succeeded');
      const [attempt] = await lake.catalog.orchestration.listAttempts(run.id, 'chatty');
      assert.equal(attempt?.status, 'succeeded');
      const log = attempt?.log ?? '';
      assert.ok(log.length <= 64 * 1024 + 200, `log tail is ${log.length} characters`);
      assert.match(
        log,
        /^\[… \d+ earlier lines \(\d+ characters\) not kept: the log keeps its last 65536 characters\]\n/,
      );
      assert.match(log, /last-line\n$/);
      assert.ok(
        peak - rssBefore < 256 * 2 ** 20,
        `memory grew by ${mb(peak - rssBefore)} while the task printed 300 MB`,
      );
    } finally {
      await runtime.stop();
    }
  });

  it('a failed stream logs at level error', async () => {
    const p = await project({ o: { path: 'data/*.csv', format: 'parquet' } });
    await p.write('data/1.csv', 'id\n1\n');
    const r = await runCli(['run'], p.dir);
    assert.notEqual(r.code, 0);
    const lines = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: string; msg: string });
    const failed = lines.find((l) => l.msg === 'stream_failed');
    assert.equal(failed?.level, 'error');
    assert.equal(lines.find((l) => l.msg === 'run_finished')?.level, 'error');
  });

  it('a full disk exits with the transient code (75), not 1', async () => {
    const p = await project({ o: { path: 'data/*.csv' } });
    // Incompressible rows, several times the 2 MiB the lake gets.
    const rows = Array.from(
      { length: 60_000 },
      (_, i) =>
        `${i},${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`,
    );
    await p.write('data/1.csv', `id,v\n${rows.join('\n')}\n`);
    const mountPoint = p.path('small-disk');
    await mkdir(mountPoint);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]).status === 0;
    try {
      let r: CliResult;
      if (mounted) {
        const config = projectConfig({ o: { path: 'data/*.csv' } });
        config['storage'] = { kind: 'local', path: mountPoint };
        await p.write('dip.yaml', JSON.stringify(config));
        r = await runCli(['run', '--quiet'], p.dir);
      } else {
        // Not root: the storage seam fails the way a full disk does.
        const preload = p.path('enospc.mjs');
        await writeFile(
          preload,
          `import { LocalStorage } from ${JSON.stringify(STORAGE_MODULE)};\nLocalStorage.prototype.publish = async function () { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 }); };\n`,
        );
        r = await runCliWith(preload, ['run', '--quiet'], p.dir);
      }
      console.log(`disk full (${mounted ? '2 MiB tmpfs' : 'simulated ENOSPC at publish'}): exit ${r.code}`);
      assert.equal(r.code, 75, r.stderr);
      assert.match(r.stderr, /the disk is full \(ENOSPC\)/);
    } finally {
      if (mounted) spawnSync('umount', [mountPoint]);
    }
  });
});
