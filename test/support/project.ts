/**
 * Throwaway DIP projects for tests: a temp directory with a dip.yaml (written as JSON, which
 * is YAML) and input files, an opened Lake, and helpers to run pipelines and query zones.
 *
 *   const p = await TestProject.create({ orders: { path: 'data/*.csv' } });
 *   await p.write('data/a.csv', 'id\n1\n');
 *   const result = await p.run();
 *   assert.equal(await p.count('bronze.orders'), 1);
 *   await p.dispose();   // closes the lake, removes the directory
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AsOf } from '../../src/catalog/types.js';
import { loadProject } from '../../src/config/load.js';
import { Lake } from '../../src/lake/lake.js';
import { query } from '../../src/lake/query.js';
import { runPipeline, type RunOptions, type RunResult } from '../../src/pipeline/run.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** The stream config as written in dip.yaml (snake_case keys). */
export type StreamYaml = Record<string, unknown> & { path: string | string[] };

/** A dip.yaml with one pipeline `p`, one files source `src` and the given streams. */
export function projectConfig(
  streams: Record<string, StreamYaml>,
  extra: { raw?: boolean } = {},
): Record<string, unknown> {
  const pipeline: Record<string, unknown> = { sources: { src: { type: 'files', streams } } };
  if (extra.raw === false) pipeline['raw'] = { enabled: false };
  return {
    version: 1,
    project: 'test',
    storage: { kind: 'local', path: '.dip/lake' },
    catalog: { kind: 'sqlite', path: '.dip/catalog.db' },
    engine: { threads: 2, memory_limit: '512MB' },
    pipelines: { p: pipeline },
  };
}

/** A dip.yaml with one pipeline `p` and the given sources (any type), as written in dip.yaml. */
export function projectWithSources(
  sources: Record<string, unknown>,
  extra: { raw?: boolean } = {},
): Record<string, unknown> {
  const config = projectConfig({}, extra);
  const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
  pipeline['sources'] = sources;
  return config;
}

export async function makeTempDir(prefix = 'dip-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export class TestProject {
  private lakeHandle: Lake | undefined;

  private constructor(readonly dir: string) {}

  static async create(streams: Record<string, StreamYaml>, extra: { raw?: boolean } = {}): Promise<TestProject> {
    const p = new TestProject(await makeTempDir());
    await p.writeConfig(streams, extra);
    return p;
  }

  /** A project whose pipeline `p` has the given sources (REST sources, several sources). */
  static async withSources(sources: Record<string, unknown>, extra: { raw?: boolean } = {}): Promise<TestProject> {
    const p = new TestProject(await makeTempDir());
    await p.write('dip.yaml', `${JSON.stringify(projectWithSources(sources, extra), null, 2)}\n`);
    return p;
  }

  get lakeDir(): string {
    return join(this.dir, '.dip', 'lake');
  }

  path(rel: string): string {
    return join(this.dir, rel);
  }

  async writeConfig(streams: Record<string, StreamYaml>, extra: { raw?: boolean } = {}): Promise<void> {
    await this.write('dip.yaml', `${JSON.stringify(projectConfig(streams, extra), null, 2)}\n`);
  }

  async write(rel: string, content: string | Uint8Array): Promise<string> {
    const full = this.path(rel);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content);
    return full;
  }

  /** Sets a file's modification time (ledger identity is path + size + mtime). */
  async touch(rel: string, when = new Date(Date.now() + 5_000)): Promise<void> {
    await utimes(this.path(rel), when, when);
  }

  /** The project's lake, opened on first use (the config is read then). */
  async lake(): Promise<Lake> {
    this.lakeHandle ??= await Lake.open(await loadProject(this.dir));
    return this.lakeHandle;
  }

  /** Closes the lake so the next lake() re-reads dip.yaml. */
  async reopen(): Promise<Lake> {
    await this.lakeHandle?.close();
    this.lakeHandle = undefined;
    return this.lake();
  }

  async run(pipeline = 'p', options: RunOptions = {}): Promise<RunResult> {
    return runPipeline(await this.lake(), pipeline, options);
  }

  /** Runs and fails the test unless the run succeeded. */
  async runOk(pipeline = 'p', options: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(pipeline, options);
    if (r.status !== 'succeeded') throw new Error(`run failed: ${JSON.stringify(r.errors, null, 2)}`);
    return r;
  }

  async rows(sql: string, asOf?: AsOf): Promise<Record<string, unknown>[]> {
    return (await query(await this.lake(), sql, asOf)).rows;
  }

  /** The single value of a one-row, one-column query, as a number. */
  async num(sql: string, asOf?: AsOf): Promise<number> {
    const rows = await this.rows(sql, asOf);
    assertOneRow(rows, sql);
    const v = Object.values(rows[0] as Record<string, unknown>)[0];
    return v === null ? Number.NaN : Number(v);
  }

  async count(table: string, asOf?: AsOf): Promise<number> {
    return this.num(`select count(*) from ${table}`, asOf);
  }

  async dispose(): Promise<void> {
    await this.lakeHandle?.close().catch(() => undefined);
    this.lakeHandle = undefined;
    await rm(this.dir, { recursive: true, force: true });
  }
}

function assertOneRow(rows: unknown[], sql: string): void {
  if (rows.length !== 1) throw new Error(`expected one row from ${sql}, got ${rows.length}`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/cli/main.js) in `cwd`. */
export function runCli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}
