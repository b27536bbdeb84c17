/**
 * A local read-through cache of immutable lake files, for a remote lake DuckDB cannot read
 * directly. A file is fetched once, written beside its place and renamed into it (readers see
 * whole files only), and its mtime is its last use. Beyond the size bound the least recently
 * used files go, except those the current statement names and those used in the last
 * `pinMs` (another engine, here or in another process sharing the directory, may be reading
 * them): the bound is soft by what is in use. Lake files never change, so an entry is never stale.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { newId } from '../../core/ids.js';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../../core/private-files.js';
import { listScratch } from './scratch.js';

export interface ReadCacheOptions {
  maxBytes: number;
  /** Files used this recently are never evicted (default 60 s). */
  pinMs?: number;
  /** Parallel fetches (default 8). */
  concurrency?: number;
}

const PART = /\.[0-9a-z]+\.part$/;
const STALE_PART_MS = 3_600_000;

export class ReadCache {
  readonly root: string;
  private readonly maxBytes: number;
  private readonly pinMs: number;
  private readonly concurrency: number;
  /** Bytes fetched since the last scan, added to what the scan found: eviction scans again only past the bound. */
  private estimate: number | undefined;
  /** Statistics for tests and benchmarks. */
  readonly stats = { hits: 0, fetched: 0, evicted: 0 };

  constructor(root: string, options: ReadCacheOptions) {
    this.root = root;
    this.maxBytes = options.maxBytes;
    this.pinMs = options.pinMs ?? 60_000;
    this.concurrency = options.concurrency ?? 8;
  }

  /** Where `path` is (or will be) cached. */
  pathOf(path: string): string {
    return join(this.root, path);
  }

  /** Makes every path local (fetching the missing ones), marks them used, then keeps the size bound. */
  async ensure(paths: readonly string[], fetch: (path: string) => Promise<Readable>): Promise<void> {
    const queue = [...new Set(paths)];
    const worker = async () => {
      for (let p = queue.shift(); p !== undefined; p = queue.shift()) await this.ensureOne(p, fetch);
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, queue.length) }, worker));
    await this.evict(new Set(paths));
  }

  /** Takes a local file that now has `path`'s content into the cache (moved, or left alone across filesystems). */
  async adopt(localFile: string, path: string): Promise<boolean> {
    const target = this.pathOf(path);
    try {
      await mkdirPrivate(dirname(target));
      await rename(localFile, target);
      const s = await stat(target);
      this.estimate = (this.estimate ?? 0) + s.size;
      await this.evict(new Set([path]));
      return true;
    } catch {
      return false;
    }
  }

  private async ensureOne(path: string, fetch: (path: string) => Promise<Readable>): Promise<void> {
    const target = this.pathOf(path);
    const now = new Date();
    try {
      await utimes(target, now, now);
      this.stats.hits++;
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Made every time: the cache directory may have been removed meanwhile (it is only a cache).
    await mkdirPrivate(dirname(target));
    const part = `${target}.${newId()}.part`;
    try {
      const body = await fetch(path);
      await pipeline(body, createWriteStream(part, { mode: PRIVATE_FILE_MODE }));
      await rename(part, target);
    } finally {
      await rm(part, { force: true });
    }
    const s = await stat(target);
    this.stats.fetched++;
    this.estimate = (this.estimate ?? 0) + s.size;
  }

  /** Evicts least recently used files until the cache is within its bound. */
  async evict(keep: ReadonlySet<string> = new Set()): Promise<void> {
    if (this.estimate !== undefined && this.estimate <= this.maxBytes) return;
    const now = Date.now();
    const files: { path: string; bytes: number; usedAt: number }[] = [];
    let total = 0;
    for await (const f of listScratch(this.root)) {
      if (PART.test(f.path)) {
        if (now - f.modifiedAt.getTime() > STALE_PART_MS) await rm(f.path, { force: true });
        continue;
      }
      files.push({ path: f.path, bytes: f.bytes, usedAt: f.modifiedAt.getTime() });
      total += f.bytes;
    }
    if (total > this.maxBytes) {
      const kept = new Set([...keep].map((p) => this.pathOf(p)));
      files.sort((a, b) => a.usedAt - b.usedAt);
      for (const f of files) {
        if (total <= this.maxBytes) break;
        if (kept.has(f.path) || now - f.usedAt < this.pinMs) continue;
        await rm(f.path, { force: true });
        total -= f.bytes;
        this.stats.evicted++;
      }
    }
    this.estimate = total;
  }
}
