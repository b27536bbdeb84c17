/**
 * The S3 lake under throttling: a loopback proxy in front of s3rver answers every third
 * request with 503 SlowDown (what S3 sends when a prefix is over its request rate). Publish
 * (single PUT and multipart), list and batched delete all succeed through the SDK's retries,
 * and the proxy saw the throttled requests.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { projectConfig } from './support/project.js';
import { type S3Server, startS3 } from './support/s3.js';

const SLOW_DOWN =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

describe('S3 lake: throttled requests are retried', () => {
  let s3: S3Server;
  let proxy: Server;
  let dir: string;
  let seen = 0;
  let throttled = 0;

  before(async () => {
    s3 = await startS3();
    const target = new URL(s3.endpoint);
    proxy = createServer((req, res) => {
      seen++;
      if (seen % 3 === 0) {
        throttled++;
        req.resume();
        req.on('end', () => res.writeHead(503, { 'content-type': 'application/xml' }).end(SLOW_DOWN));
        return;
      }
      const upstream = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    dir = await mkdtemp(join(tmpdir(), 'dip-s3-throttle-'));
  });
  after(async () => {
    await new Promise((r) => proxy.close(r));
    await rm(dir, { recursive: true, force: true });
    await s3?.stop();
  });

  it('publish, multipart publish, list and delete succeed; the server throttled some of them', async () => {
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const storage = { ...s3.storage('throttled', { multipart_size: '5MB' }), endpoint };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify({ ...projectConfig({ t: { path: 'd/*.csv' } }), storage }));
    const lake = await Lake.open(await loadProject(dir));
    try {
      const stage = async (name: string, bytes: number) => {
        const file = join(await lake.storage.stagingDir(), name);
        await writeFile(file, Buffer.alloc(bytes, name.charCodeAt(0)));
        return file;
      };
      const paths = Array.from({ length: 6 }, (_, i) => `bronze/s/t/date=2026-01-01/f${i}.parquet`);
      for (const [i, p] of paths.entries()) await lake.storage.publish(await stage(`s${i}`, 100 + i), p);
      const big = 'bronze/s/t/date=2026-01-01/big.parquet';
      const stored = await lake.storage.publish(await stage('big', 12 * 1024 * 1024), big);
      assert.equal(stored.bytes, 12 * 1024 * 1024);
      const listed: { path: string; bytes: number }[] = [];
      for await (const o of lake.storage.list('bronze')) listed.push({ path: o.path, bytes: o.bytes });
      assert.deepEqual(
        listed.sort((a, b) => a.path.localeCompare(b.path)),
        [...paths.map((p, i) => ({ path: p, bytes: 100 + i })), { path: big, bytes: 12 * 1024 * 1024 }].sort((a, b) =>
          a.path.localeCompare(b.path),
        ),
      );
      await lake.storage.delete([...paths, big]);
      const left: string[] = [];
      for await (const o of lake.storage.list('')) left.push(o.path);
      assert.deepEqual(left, []);
      assert.ok(throttled >= 5, `the proxy throttled ${throttled} of ${seen} requests`);
    } finally {
      await lake.close();
    }
  });
});
