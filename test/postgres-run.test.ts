/**
 * The same pipeline file on the scale-out catalog: `dip run` with a PostgreSQL catalog lands
 * the same tables, and a second run skips what the ledger (in PostgreSQL) has seen.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type PostgresServer, postgresTestOptions, startPostgres } from './support/postgres.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

function dip(dir: string, env: NodeJS.ProcessEnv, ...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, '-p', dir, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  assert.equal(r.status, 0, `dip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('dip run on a PostgreSQL catalog', postgresTestOptions(), () => {
  let server: PostgresServer | undefined;
  let dir: string;

  before(async () => {
    server = await startPostgres();
    dir = await mkdtemp(join(tmpdir(), 'dip-pgrun-'));
    await mkdir(join(dir, 'data'));
    for (let f = 0; f < 3; f++) {
      const lines = ['id,name'];
      for (let i = 1; i <= 100; i++) lines.push(`${f * 100 + i},name ${i}`);
      await writeFile(join(dir, 'data', `f${f}.csv`), `${lines.join('\n')}\n`);
    }
    await writeFile(
      join(dir, 'dip.yaml'),
      `version: 1
catalog: { kind: postgres, url: "\${env:DIP_TEST_PG_URL}", schema: dip_run_test }
pipelines:
  p:
    sources:
      files:
        type: files
        streams:
          items: { path: "data/*.csv", primary_key: [id] }
`,
    );
  });

  after(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lands the tables and keeps the ledger in PostgreSQL', async () => {
    const env = { DIP_TEST_PG_URL: server?.url ?? '' };
    const first = JSON.parse(dip(dir, env, 'run', '--quiet', '--json')) as {
      status: string;
      stats: { streams: Record<string, { rows: number; files: number }> };
    }[];
    assert.equal(first[0]?.status, 'succeeded');
    assert.equal(first[0]?.stats.streams['files.items']?.rows, 300);
    const counts = JSON.parse(
      dip(dir, env, 'query', '--json', 'select count(*) as n, sum(id) as s from bronze.items'),
    ) as { n: number; s: string }[];
    assert.equal(Number(counts[0]?.n), 300);
    assert.equal(Number(counts[0]?.s), (300 * 301) / 2);
    const second = JSON.parse(dip(dir, env, 'run', '--quiet', '--json')) as {
      stats: { streams: Record<string, { files: number; skippedFiles: number }> };
    }[];
    assert.deepEqual(
      [second[0]?.stats.streams['files.items']?.files, second[0]?.stats.streams['files.items']?.skippedFiles],
      [0, 3],
    );
    const tables = JSON.parse(dip(dir, env, 'tables', '--json')) as { name: string; rows: number }[];
    assert.deepEqual(
      tables.map((t) => [t.name, t.rows]),
      [
        ['bronze.items', 300],
        ['raw.items', 300],
      ],
    );
  });
});
