/**
 * CLI start-up (issue 13): `dip` imports only the command group named on the command line and
 * the heavy libraries only where they are used. Checked by what gets loaded, never by timing
 * (`npm run bench -- startup` times it): `--help` still lists every command, `--version` prints
 * the version and loads no command module, and a no-op `dip run` of a files project loads no
 * DuckDB, database driver, HTTP client or server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { COMMAND_GROUPS, groupsFor } from '../src/cli/command-groups.js';
import { CLI, REPO_ROOT, makeTempDir, projectConfig } from './support/project.js';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let register: string;

before(async () => {
  dir = await makeTempDir('dip-startup-test-');
  // A resolve hook that reports every module the CLI imports (one line each on stderr).
  await writeFile(
    join(dir, 'hooks.mjs'),
    `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  process.stderr.write('LOADED ' + r.url + '\\n');
  return r;
}\n`,
  );
  register = join(dir, 'register.mjs');
  await writeFile(register, `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the built CLI with the module-reporting hook; `loaded` are the imported URLs. */
function dip(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string; loaded: string[] }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', register, CLI, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const loaded = stderr
        .split('\n')
        .filter((l) => l.startsWith('LOADED '))
        .map((l) => l.slice('LOADED '.length));
      resolvePromise({
        code,
        stdout,
        stderr: stderr
          .split('\n')
          .filter((l) => !l.startsWith('LOADED '))
          .join('\n'),
        loaded,
      });
    });
  });
}

const commandModules = (loaded: string[]) =>
  [...new Set(loaded)]
    .filter((u) => u.includes('/dist/cli/commands/'))
    .map((u) => u.replace(/^.*\/dist\/cli\/commands\//, ''))
    .sort();
const packagesIn = (loaded: string[]) =>
  new Set(loaded.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));

describe('CLI start-up: command groups', () => {
  it('each group registers exactly the top-level commands the manifest names, and no name is in two groups', async () => {
    const seen = new Set<string>();
    for (const group of COMMAND_GROUPS) {
      const program = new Command('dip');
      (await group.load())(program);
      assert.deepEqual(
        program.commands.map((c) => c.name()),
        [...group.names],
      );
      for (const name of group.names) {
        assert.ok(!seen.has(name), `${name} is in two groups`);
        seen.add(name);
      }
    }
    assert.equal(seen.size, 26); // with dip build (17), dip reconcile (16) and dip load (18)
  });

  it('picks the group of the command, skipping global options and their values; all groups otherwise; none for --version', () => {
    const names = (args: string[]) => groupsFor(args).map((g) => g.names[0]);
    const all = COMMAND_GROUPS.map((g) => g.names[0]);
    assert.deepEqual(names(['--version']), []);
    assert.deepEqual(names(['-V']), []);
    assert.deepEqual(names(['--json', '--version']), []);
    assert.deepEqual(names(['run']), ['run']);
    assert.deepEqual(names(['--json', 'runs', 'list']), ['trigger']);
    assert.deepEqual(names(['-p', 'run', 'tables']), ['tables']);
    assert.deepEqual(names(['--project', 'serve', 'describe', 'bronze.x']), ['tables']);
    assert.deepEqual(names(['--project=x', 'gc']), ['gc']);
    assert.deepEqual(names(['run', '--version']), ['run']);
    assert.deepEqual(names([]), all);
    assert.deepEqual(names(['--help']), all);
    assert.deepEqual(names(['--version', '--help']), all);
    assert.deepEqual(names(['help', 'run']), all);
    assert.deepEqual(names(['tabels']), all);
  });
});

describe('CLI start-up: what dip loads', () => {
  it('dip --help lists every command of every group and loads every group', async () => {
    const r = await dip(['--help'], dir);
    assert.equal(r.code, 0, r.stderr);
    const listed = r.stdout
      .split('\n')
      .slice(r.stdout.split('\n').indexOf('Commands:') + 1)
      .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined);
    assert.deepEqual(listed, [...COMMAND_GROUPS.flatMap((g) => g.names), 'help']);
    assert.equal(commandModules(r.loaded).length, COMMAND_GROUPS.length);
  });

  it('dip --version prints the version and imports no command module, config or lake', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await dip([flag], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${VERSION}\n`);
      assert.deepEqual(commandModules(r.loaded), []);
      assert.deepEqual(
        r.loaded.filter((u) => /\/dist\/(config\/load|lake|pipeline|orchestrate)\b/.test(u)),
        [],
      );
      assert.deepEqual([...packagesIn(r.loaded)], ['commander']);
    }
  });

  it('dip tables --help imports only the tables group', async () => {
    const r = await dip(['tables', '--help'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Usage: dip tables \[options\]/);
    assert.deepEqual(commandModules(r.loaded), ['tables.js']);
  });

  it('a no-op dip run of a files project loads no DuckDB, database driver, HTTP client or server', async () => {
    const project = join(dir, 'project');
    await mkdir(join(project, 'data'), { recursive: true });
    await writeFile(join(project, 'data', 'a.csv'), 'id,name\n1,a\n2,b\n');
    await writeFile(
      join(project, 'dip.yaml'),
      JSON.stringify(projectConfig({ items: { path: 'data/*.csv', write_disposition: 'append' } })),
    );
    const first = await dip(['run', '--quiet', '--json'], project);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(
      (JSON.parse(first.stdout) as { stats: { streams: Record<string, { rows: number }> } }[])[0]?.stats.streams[
        'src.items'
      ]?.rows,
      2,
    );
    assert.ok(packagesIn(first.loaded).has('@duckdb/node-api'), 'the first run ingests through DuckDB');

    const again = await dip(['run', '--quiet', '--json'], project);
    assert.equal(again.code, 0, again.stderr);
    const stats = (
      JSON.parse(again.stdout) as {
        status: string;
        stats: { streams: Record<string, { rows: number; commits: number; skippedFiles: number }> };
      }[]
    )[0];
    assert.equal(stats?.status, 'succeeded');
    assert.deepEqual(stats?.stats.streams['src.items'], {
      ...stats?.stats.streams['src.items'],
      rows: 0,
      commits: 0,
      skippedFiles: 1,
    });
    const heavy = [
      '@duckdb/node-api',
      'pg',
      'pg-boss',
      'pg-logical-replication',
      'mysql2',
      '@powersync/mysql-zongji',
      'undici',
      'fastify',
      'nodemailer',
      'prom-client',
      'cli-progress',
      'croner',
    ];
    assert.deepEqual(
      heavy.filter((p) => packagesIn(again.loaded).has(p)),
      [],
    );
    assert.deepEqual(commandModules(again.loaded), ['orchestrate.js', 'run.js']); // run.ts takes parseInterval from orchestrate.ts
    assert.deepEqual(
      // A connector's spec (sources/<type>/spec.js: its config schema) loads with the config; its implementation does not.
      again.loaded.filter(
        (u) =>
          /\/dist\/(sources\/(rest|postgres|mysql)|emulate|serve|transform)\//.test(u) &&
          !/\/dist\/sources\/[a-z]+\/spec\.js$/.test(u),
      ),
      [],
    );
  });
});
