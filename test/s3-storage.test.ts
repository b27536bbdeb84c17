/**
 * What the S3 lake does beyond the Storage contract (test/storage.contract.test.ts runs that on
 * s3rver too): DuckDB reads through the read-through cache (httpfs cannot load here), the cache
 * keeps its size bound by evicting the least recently used files, credentials are references.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { DipError } from '../src/core/errors.js';
import { Lake } from '../src/lake/lake.js';
import { lit } from '../src/lake/sql.js';
import type { S3Storage } from '../src/lake/storage/s3.js';
import { projectConfig } from './support/project.js';
import { type S3Server, startS3 } from './support/s3.js';

describe('S3 lake: read cache and configuration', () => {
  let s3: S3Server;
  let dir: string;
  before(async () => {
    s3 = await startS3();
    dir = await mkdtemp(join(tmpdir(), 'dip-s3-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await s3?.stop();
  });

  async function open(prefix: string, cache?: Record<string, unknown>): Promise<Lake> {
    const config = {
      ...projectConfig({ t: { path: 'data/*.csv' } }),
      storage: s3.storage(prefix, cache ? { cache } : {}),
    };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config));
    return Lake.open(await loadProject(dir));
  }

  async function publishParquet(lake: Lake, path: string, rows: number): Promise<void> {
    const local = join(await lake.storage.stagingDir(), `${rows}-${Date.now()}.parquet`);
    await lake.engine.run(`COPY (SELECT range AS id FROM range(${rows})) TO ${lit(local)} (FORMAT parquet)`);
    await lake.storage.publish(local, path);
  }

  it('a file not in the cache is fetched once when a statement names it, then served locally', async () => {
    const lake = await open('fetch');
    try {
      const storage = lake.storage as S3Storage;
      assert.equal(storage.location, 's3://dip-lake/fetch');
      await publishParquet(lake, 'bronze/s/t/date=2026-01-01/a.parquet', 500);
      // Published files move into the cache; drop it to read from the bucket.
      await rm(storage.cache.root, { recursive: true, force: true });
      const uri = storage.uri('bronze/s/t/date=2026-01-01/a.parquet');
      assert.equal(existsSync(uri), false);
      const sql = `SELECT count(*)::INTEGER AS n, sum(id)::INTEGER AS s FROM read_parquet(${lit(uri)})`;
      assert.deepEqual(await lake.engine.all(sql), [{ n: 500, s: 124750 }]);
      assert.deepEqual(await lake.engine.all(sql), [{ n: 500, s: 124750 }]);
      assert.deepEqual([storage.cache.stats.fetched, storage.cache.stats.hits], [1, 1]);
      assert.ok(existsSync(uri));
      // A file the catalog references but the bucket lost: not_found, naming it.
      await storage.delete(['bronze/s/t/date=2026-01-01/a.parquet']);
      await assert.rejects(
        lake.engine.all(sql),
        (err: unknown) =>
          err instanceof DipError &&
          err.kind === 'not_found' &&
          err.message === 'lake file bronze/s/t/date=2026-01-01/a.parquet is missing from s3://dip-lake/fetch',
      );
    } finally {
      await lake.close();
    }
  });

  it('the cache stays within its size bound, evicting the least recently used files first', async () => {
    const lake = await open('lru', { path: '.dip/cache-lru', max_size: '3KB' });
    try {
      const storage = lake.storage as S3Storage;
      const paths = ['a', 'b', 'c', 'd'].map((n) => `bronze/s/t/date=2026-01-01/${n}.parquet`);
      for (const p of paths) await publishParquet(lake, p, 100);
      await rm(storage.cache.root, { recursive: true, force: true });
      const size = (
        await storage
          .list(paths[0] as string)
          [Symbol.asyncIterator]()
          .next()
      ).value?.bytes as number;
      assert.ok(size > 500 && size < 1000, `a file is ${size} bytes`);
      const read = (p: string) =>
        lake.engine.all(`SELECT count(*)::INTEGER AS n FROM read_parquet(${lit(storage.uri(p))})`);
      // Read a, b, c (in that order, a minute apart as far as the cache can tell), then a again.
      let minute = Date.now() - 10 * 60_000;
      for (const p of [paths[0], paths[1], paths[2], paths[0]] as string[]) {
        assert.deepEqual(await read(p), [{ n: 100 }]);
        minute += 60_000;
        await utimes(storage.uri(p), new Date(minute), new Date(minute));
      }
      // d does not fit beside a, b, c (3 files of ~700 bytes is under 3 KB, 4 are not): b goes, the least recent.
      assert.deepEqual(await read(paths[3] as string), [{ n: 100 }]);
      assert.deepEqual(
        paths.map((p) => existsSync(storage.uri(p))),
        [true, false, true, true],
      );
    } finally {
      await lake.close();
    }
  });

  it('credentials must be references, never the values themselves', async () => {
    const storage = { ...s3.storage('x'), credentials: { access_key_id: 'AKIA1234', secret_access_key: '${env:X}' } };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify({ ...projectConfig({ t: { path: 'd/*.csv' } }), storage }));
    await assert.rejects(loadProject(dir), (err: unknown) => {
      assert.ok(err instanceof DipError && err.kind === 'config');
      assert.match(err.message, /storage\.credentials\.access_key_id/);
      assert.match(err.message, /expected a secret reference such as \$\{env:AWS_ACCESS_KEY_ID\}/);
      assert.doesNotMatch(err.message, /AKIA1234/);
      return true;
    });
  });
});
