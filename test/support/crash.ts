/**
 * The SIGKILL crash suite (test/crash.test.ts runs it on the local lake, test/crash-s3.test.ts
 * on an S3 server). Exactly-once under crashes: `dip run` over many input files is killed with SIGKILL at many
 * random moments and re-run until it finishes; the bronze and raw tables must then hold every
 * source record exactly once (append: one commit per file; merge: one commit per stream), so
 * must the silver tables built after each run, and gc must leave no unreferenced file behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const FILES = 24;
const ROWS_PER_FILE = 3000;
const KILLS = 12;
const BALANCE_FILES = 6;
const ACCOUNTS = 400;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function dip(dir: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, '-p', dir, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dip ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function queryOne(dir: string, sql: string): Record<string, unknown> {
  const rows = JSON.parse(dip(dir, 'query', '--json', sql)) as Record<string, unknown>[];
  assert.ok(rows[0], `no result for ${sql}`);
  return rows[0];
}

/** Spawns `dip run` and SIGKILLs it after `ms`; resolves with how it ended. */
function runAndKill(dir: string, ms: number): Promise<{ killed: boolean; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, '-p', dir, 'run', '--quiet'], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: signal === 'SIGKILL', code });
    });
  });
}

export interface CrashSuiteOptions {
  /** Shown in the suite's name. */
  name?: string;
  skip?: string;
  /** The `storage` section of dip.yaml (default: the local lake). */
  storage?: (dir: string) => Record<string, unknown>;
  /** Every file in the lake, by path (default: under `.dip/lake`). */
  lakeFiles?: (dir: string) => Promise<string[]>;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
}

const localLakeFiles = (dir: string): Promise<string[]> => listFiles(join(dir, '.dip', 'lake'));

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

export function crashSuite(options: CrashSuiteOptions = {}): void {
  describe(
    `exactly-once under SIGKILL${options.name ? ` (${options.name})` : ''}`,
    options.skip ? { skip: options.skip } : {},
    () => {
      let dir: string;
      let expectedSum = 0n;
      const expectedBalances = new Map<number, number>();

      before(async () => {
        await options.setup?.();
        dir = await mkdtemp(join(tmpdir(), 'dip-crash-'));
        await mkdir(join(dir, 'data'), { recursive: true });
        const r = rng(42);
        for (let f = 0; f < FILES; f++) {
          const lines = ['id,account,amount,note'];
          for (let i = 0; i < ROWS_PER_FILE; i++) {
            const id = f * ROWS_PER_FILE + i + 1;
            expectedSum += BigInt(id);
            lines.push(`${id},A-${Math.floor(r() * 500)},${(r() * 1000).toFixed(2)},"note ${id}, file ${f}"`);
          }
          await writeFile(join(dir, 'data', `part-${String(f).padStart(3, '0')}.csv`), `${lines.join('\n')}\n`);
        }
        // A merge stream: every file updates overlapping account balances; the last file wins.
        await mkdir(join(dir, 'balances'));
        for (let f = 0; f < BALANCE_FILES; f++) {
          const lines: string[] = [];
          for (let a = 0; a < ACCOUNTS; a++) {
            if ((a + f) % 3 === 0) continue; // each file touches two thirds of the accounts
            const balance = f * 1000 + a;
            expectedBalances.set(a, balance);
            lines.push(JSON.stringify({ account: `A-${a}`, balance, file: f }));
          }
          await writeFile(join(dir, 'balances', `b-${String(f).padStart(2, '0')}.ndjson`), `${lines.join('\n')}\n`);
        }
        await writeFile(
          join(dir, 'dip.yaml'),
          `version: 1
project: crash
${options.storage ? `storage: ${JSON.stringify(options.storage(dir))}\n` : ''}engine: { threads: 1, memory_limit: 512MB }
pipelines:
  ledger:
    sources:
      files:
        type: files
        streams:
          entries:
            path: data/*.csv
            write_disposition: append
          balances:
            path: balances/*.ndjson
            write_disposition: merge
            primary_key: [account]
    silver:
      entries:
        from: entries
        primary_key: [id]
        columns: { note: { mask: redact } }
      balances:
        from: balances
        primary_key: [account]
        checks: [{ type: range, column: balance, min: 0 }]
`,
        );
      });

      after(async () => {
        if (dir) await rm(dir, { recursive: true, force: true });
        await options.teardown?.();
      });

      it('lands every record exactly once after repeated kills', async () => {
        const r = rng(7);
        let kills = 0;
        let attempts = 0;
        // Kill at random moments until KILLS kills have landed mid-run, then let a run finish.
        while (kills < KILLS && attempts < KILLS * 3) {
          attempts++;
          const outcome = await runAndKill(dir, 150 + Math.floor(r() * 1400));
          if (outcome.killed) kills++;
          else assert.equal(outcome.code, 0, 'a run that was not killed must succeed');
        }
        assert.ok(kills >= KILLS / 2, `expected at least ${KILLS / 2} mid-run kills, got ${kills}`);
        const final = await runAndKill(dir, 600_000);
        assert.equal(final.code, 0);

        const total = FILES * ROWS_PER_FILE;
        const bronze = queryOne(dir, 'select count(*) as n, count(distinct id) as d, sum(id) as s from bronze.entries');
        assert.equal(Number(bronze['n']), total, 'bronze row count');
        assert.equal(Number(bronze['d']), total, 'bronze distinct ids');
        assert.equal(BigInt(String(bronze['s'])), expectedSum, 'bronze checksum (sum of ids)');
        const raw = queryOne(dir, `select count(*) as n, count(distinct payload->>'id') as d from raw.entries`);
        assert.equal(Number(raw['n']), total, 'raw envelopes');
        assert.equal(Number(raw['d']), total, 'raw distinct ids');
        const perFile = queryOne(
          dir,
          'select count(distinct _dip_source_file) as files, max(c) as maxc, min(c) as minc from (select _dip_source_file, count(*) c from bronze.entries group by 1)',
        );
        assert.deepEqual(
          [Number(perFile['files']), Number(perFile['maxc']), Number(perFile['minc'])],
          [FILES, ROWS_PER_FILE, ROWS_PER_FILE],
        );

        // The merge stream equals the latest balance of every account, once each.
        const balances = queryOne(
          dir,
          'select count(*) as n, count(distinct account) as d, sum(balance) as s from bronze.balances',
        );
        const balanceSum = [...expectedBalances.values()].reduce((a, b) => a + b, 0);
        assert.deepEqual(
          [Number(balances['n']), Number(balances['d']), Number(balances['s'])],
          [expectedBalances.size, expectedBalances.size, balanceSum],
        );

        // Silver, built after each run (and killed in the middle of builds too), holds the same.
        const silver = queryOne(
          dir,
          "select count(*) as n, count(distinct id) as d, sum(id) as s, count(*) filter (where note like 'note %') as clear from silver.entries",
        );
        assert.deepEqual(
          [Number(silver['n']), Number(silver['d']), BigInt(String(silver['s'])), Number(silver['clear'])],
          [total, total, expectedSum, 0],
        );
        const silverBalances = queryOne(dir, 'select count(*) as n, sum(balance) as s from silver.balances');
        assert.deepEqual(
          [Number(silverBalances['n']), Number(silverBalances['s'])],
          [expectedBalances.size, balanceSum],
        );

        // The run history shows the killed runs as crashed, and one success at the end.
        const status = JSON.parse(dip(dir, 'status', '--json', '--runs', '200')) as { runs: { status: string }[] };
        assert.equal(status.runs[0]?.status, 'succeeded');
        // (a kill during start-up, before the run is recorded, leaves no run behind)
        const crashed = status.runs.filter((x) => x.status === 'crashed').length;
        assert.ok(
          crashed >= 1 && crashed <= kills,
          `killed runs are recorded as crashed (${crashed} of ${kills} kills)`,
        );
        assert.equal(status.runs.filter((x) => x.status === 'running').length, 0, 'no run is left looking alive');

        // A further run finds nothing new.
        const again = JSON.parse(dip(dir, 'run', '--quiet', '--json')) as {
          stats: { streams: Record<string, { files: number; skippedFiles: number }> };
        }[];
        assert.deepEqual(again[0]?.stats.streams['files.entries'], {
          ...again[0]?.stats.streams['files.entries'],
          files: 0,
          skippedFiles: FILES,
        });
        assert.deepEqual(again[0]?.stats.streams['files.balances'], {
          ...again[0]?.stats.streams['files.balances'],
          files: 0,
          skippedFiles: BALANCE_FILES,
        });

        // gc removes what the killed runs left behind, and nothing that is committed.
        const gc = JSON.parse(dip(dir, 'gc', '--json', '--grace', '0s')) as { deleted: string[] };
        const committed = JSON.parse(dip(dir, 'tables', '--json')) as { name: string; files: number }[];
        const committedFiles = committed.reduce((n, t) => n + t.files, 0);
        const lakeFiles = (await (options.lakeFiles ?? localLakeFiles)(dir)).filter((f) =>
          /(^|\/)(raw|bronze|silver|quarantine)\//.test(f),
        );
        assert.equal(
          lakeFiles.length,
          committedFiles,
          `after gc (${gc.deleted.length} deleted) the lake holds only committed files`,
        );
        const after = queryOne(dir, 'select count(*) as n, sum(id) as s from bronze.entries');
        assert.equal(Number(after['n']), total);
        assert.equal(BigInt(String(after['s'])), expectedSum);
      });
    },
  );
}
