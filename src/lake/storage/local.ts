import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../../core/private-files.js';
import type { Storage, StoredObject } from './types.js';

const STAGING = '_staging';

/**
 * A lake in a local directory. Writes are temp-file + fsync + rename + directory fsync. Files
 * are published 0600 and directories created 0700, whatever the umask (DuckDB writes staging
 * files with the umask's mode; they are tightened before they become lake files).
 */
export class LocalStorage implements Storage {
  readonly kind = 'local';
  readonly location: string;
  private readonly madeDirs = new Set<string>();

  private constructor(root: string) {
    this.location = root;
  }

  static async create(root: string): Promise<LocalStorage> {
    const abs = resolve(root);
    await mkdirPrivate(abs);
    return new LocalStorage(abs);
  }

  uri(path: string): string {
    return this.abs(path);
  }

  async stagingDir(): Promise<string> {
    const dir = join(this.location, STAGING);
    await this.ensureDir(dir);
    return dir;
  }

  async publish(localFile: string, path: string): Promise<StoredObject> {
    const target = this.abs(path);
    await this.ensureDir(dirname(target));
    await syncPrivate(localFile);
    await rename(localFile, target);
    await fsyncDir(dirname(target));
    const s = await stat(target);
    return { path, bytes: s.size, modifiedAt: s.mtime };
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const start = this.abs(prefix);
    let s;
    try {
      s = await stat(start);
    } catch {
      return;
    }
    if (s.isFile()) {
      yield { path: this.rel(start), bytes: s.size, modifiedAt: s.mtime };
      return;
    }
    const stack = [start];
    while (stack.length) {
      const dir = stack.pop() as string;
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = join(dir, entry.name);
        if (entry.isDirectory()) stack.push(full);
        else if (entry.isFile()) {
          const fs = await stat(full);
          yield { path: this.rel(full), bytes: fs.size, modifiedAt: fs.mtime };
        }
      }
    }
  }

  async delete(paths: readonly string[]): Promise<void> {
    for (const p of paths) await rm(this.abs(p), { force: true });
  }

  private abs(path: string): string {
    const full = resolve(this.location, path);
    if (full !== this.location && !full.startsWith(this.location + sep)) {
      throw new Error(`storage path escapes the lake root: ${path}`);
    }
    return full;
  }

  private rel(full: string): string {
    return relative(this.location, full).split(sep).join('/');
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await mkdirPrivate(dir);
    this.madeDirs.add(dir);
  }
}

async function syncPrivate(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export const STAGING_PREFIX = STAGING;
