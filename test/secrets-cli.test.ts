/**
 * Secrets by reference stay secret end to end: a catalog URL with a password, resolved from
 * the environment, never reaches stdout or stderr, even when the connection fails and the
 * error is printed.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { rm } from 'node:fs/promises';
import { makeTempDir, runCli } from './support/project.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

it('a failing PostgreSQL catalog connection never prints the password from ${env:…}', async () => {
  const dir = await makeTempDir('dip-secret-');
  dirs.push(dir);
  await writeFile(
    join(dir, 'dip.yaml'),
    'version: 1\ncatalog: { kind: postgres, url: "${env:DIP_TEST_CATALOG_URL}" }\npipelines:\n  p:\n    sources:\n      f:\n        type: files\n        streams:\n          s: { path: "*.csv" }\n',
  );
  const secret = 'Sup3r-S3cret-Pa55';
  const url = `postgres://dip:${secret}@127.0.0.1:${await closedPort()}/dip`;
  for (const args of [['status'], ['run'], ['status', '--json']]) {
    const r = await runCli(args, dir, { DIP_TEST_CATALOG_URL: url });
    assert.notEqual(r.code, 0, `dip ${args.join(' ')} fails without a catalog`);
    assert.ok(
      !`${r.stdout}${r.stderr}`.includes(secret),
      `dip ${args.join(' ')} output contains the password: ${r.stdout}${r.stderr}`,
    );
    assert.match(`${r.stdout}${r.stderr}`, /ECONNREFUSED|connect/i, 'the error still says what went wrong');
  }
  const missing = await runCli(['status'], dir, { DIP_TEST_CATALOG_URL: '' });
  assert.notEqual(missing.code, 0);
});
