/**
 * The container image and the scaled-out compose set-up cannot be built here (no Docker), so
 * they are checked by reading them: the Dockerfile is multi-stage, installs production
 * dependencies only, runs as a non-root user with a health check, and everything it copies and
 * calls exists; the compose file has the services of the set-up, its dip commands and options
 * exist in the CLI, and the project it mounts loads with the secrets compose provides.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadProject } from '../src/config/load.js';
import { CLI, REPO_ROOT } from './support/project.js';

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (continuation lines joined, comments dropped), with their stage index. */
function dockerfile(): Instruction[] {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const [op = '', ...rest] = t.split(/\s+/);
    if (op.toUpperCase() === 'FROM') stage++;
    out.push({ op: op.toUpperCase(), args: rest.join(' '), stage });
  }
  return out;
}

/** The dip CLI's help for a command: exit 0 and the text, or a failure naming it. */
function help(command: string): string {
  const r = spawnSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `dip ${command} --help: ${r.stderr}`);
  return r.stdout;
}

/** The options a dip command line uses (`--name`) all appear in that command's help or the global one. */
function assertDipCommand(args: string[]): void {
  const [command, ...rest] = args;
  assert.ok(command, 'a dip command');
  const global = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout;
  const text = help(command) + global;
  for (const a of rest) if (a.startsWith('--')) assert.ok(text.includes(a), `dip ${command} has no option ${a}`);
}

describe('container image and compose set-up', () => {
  const ins = dockerfile();
  const last = Math.max(...ins.map((i) => i.stage));
  const final = ins.filter((i) => i.stage === last);

  it('Dockerfile: multi-stage, production dependencies only, non-root, health check', () => {
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args);
    assert.deepEqual(froms, ['node:20-bookworm-slim AS build', 'node:20-bookworm-slim AS runtime']);
    assert.ok(
      final.some((i) => i.op === 'RUN' && /\bnpm ci --omit=dev\b/.test(i.args)),
      'the runtime installs with npm ci --omit=dev',
    );
    assert.ok(
      !final.some((i) => i.op === 'RUN' && /npm (ci|install)(?!.*--omit=dev)/.test(i.args.split('&&')[1] ?? '')),
    );
    assert.ok(
      final.some((i) => i.op === 'COPY' && i.args.startsWith('--from=build /src/dist ')),
      'dist/ from the build stage',
    );
    const users = final.filter((i) => i.op === 'USER');
    assert.deepEqual(
      users.map((u) => u.args),
      ['node'],
    );
    const userAt = final.indexOf(users[0] as Instruction);
    assert.ok(
      final.slice(userAt).every((i) => i.op !== 'RUN'),
      'nothing runs as root after USER',
    );
    const health = final.find((i) => i.op === 'HEALTHCHECK');
    assert.match(health?.args ?? '', /CMD \["node", "\/app\/deploy\/healthcheck\.mjs"\]$/);
  });

  it('Dockerfile: what it copies exists, and what it runs is the built CLI', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').filter(Boolean);
    for (const copy of ins.filter((i) => i.op === 'COPY' && !i.args.includes('--from='))) {
      const sources = copy.args
        .split(/\s+/)
        .filter((a) => !a.startsWith('--'))
        .slice(0, -1);
      for (const s of sources) {
        assert.ok(existsSync(join(REPO_ROOT, s)), `COPY ${s} exists`);
        assert.ok(!ignored.includes(s.split('/')[0] as string), `COPY ${s} is not in .dockerignore`);
      }
    }
    const entry = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
    assert.deepEqual(entry, ['node', '/app/dist/cli/main.js', '-p', '/project']);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(`/app/${pkg.bin['dip']}`, entry[1], 'the entrypoint is the package bin');
    assert.ok(existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js')), 'npm run build makes it');
    assertDipCommand(JSON.parse(final.find((i) => i.op === 'CMD')?.args ?? '[]') as string[]);
    const check = spawnSync(process.execPath, ['--check', join(REPO_ROOT, 'deploy', 'healthcheck.mjs')], {
      encoding: 'utf8',
    });
    assert.equal(check.status, 0, check.stderr);
    assert.match(
      readFileSync(join(REPO_ROOT, 'deploy', 'healthcheck.mjs'), 'utf8'),
      /'status', '--json', '--runs', '1'/,
    );
    assertDipCommand(['status', '--json', '--runs']);
  });

  it('compose: catalog, S3 storage, NATS, Redis, serve and N workers; their dip commands exist; the project loads', async () => {
    const compose = parse(readFileSync(join(REPO_ROOT, 'deploy', 'compose.yaml'), 'utf8'), { merge: true }) as {
      services: Record<string, Record<string, unknown>>;
    };
    const s = compose.services;
    assert.deepEqual(Object.keys(s).sort(), ['minio', 'minio-init', 'nats', 'postgres', 'redis', 'serve', 'worker']);
    assert.match(String(s['postgres']?.['image']), /^postgres:/);
    assert.match(String(s['minio']?.['image']), /^minio\/minio/);
    assert.match(String(s['nats']?.['image']), /^nats:/);
    assert.match(String(s['redis']?.['image']), /^redis:/);
    const worker = s['worker'] as { deploy: { replicas: number }; command: string[] };
    const serve = s['serve'] as { command: string[] };
    assert.ok(worker.deploy.replicas >= 2, 'several workers');
    for (const name of ['serve', 'worker']) {
      const svc = s[name] as { build: { context: string; dockerfile: string }; command: string[]; volumes: string[] };
      assert.ok(
        existsSync(join(REPO_ROOT, 'deploy', svc.build.context, svc.build.dockerfile)),
        `${name} builds the Dockerfile`,
      );
      assertDipCommand(svc.command);
      assert.deepEqual(svc.volumes, ['./project:/project']);
    }
    assert.equal(serve.command[0], 'serve');
    assert.equal(worker.command[0], 'worker');
    // The mounted project loads with the environment compose gives dip (secrets by reference).
    const env = s['serve']?.['environment'] as Record<string, string>;
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const project = await loadProject(join(REPO_ROOT, 'deploy', 'project'));
      const c = project.config;
      assert.equal(c.storage.kind, 's3');
      assert.equal(c.catalog.kind, 'postgres');
      assert.equal(c.serve.executor, 'workers');
      assert.equal(c.coordination?.redis_url, '${env:DIP_REDIS_URL}');
      const refs = [
        ...readFileSync(join(REPO_ROOT, 'deploy', 'project', 'dip.yaml'), 'utf8').matchAll(/\$\{env:([A-Z_]+)\}/g),
      ];
      assert.deepEqual(
        refs.map((m) => m[1]).filter((n) => !(n && n in env)),
        [],
        'compose provides every secret the project names',
      );
    } finally {
      process.env = saved;
    }
  });
});
