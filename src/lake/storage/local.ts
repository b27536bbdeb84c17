import { copyFile, link, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { DipError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../../core/private-files.js';
import type { Storage, StoredObject } from './types.js';

/** Where staging was inside the lake root before it moved out; `dip gc` still clears leftovers there. */
export const LEGACY_STAGING_PREFIX = '_staging';

/**
 * A lake in a local directory. `publish` hard-links the fsynced staging file into place
 * (atomic, and it refuses to replace an existing file) and fsyncs the directory; from a
 * staging directory on another filesystem (EXDEV) it copies into a temp file beside the
 * target, fsyncs it and links that instead. Files are published 0600 and directories
 * created 0700, whatever the umask (DuckDB writes staging files with the umask's mode; they
 * are tightened before they become lake files).
 */
export class LocalStorage implements Storage {
  readonly kind = 'local';
  readonly location: string;
  private readonly staging: string;
  private readonly madeDirs = new Set<string>();

  private constructor(root: string, staging: string) {
    this.location = root;
    this.staging = staging;
  }

  /** `staging`: an absolute local directory outside `root` (checked by the caller, see `openStorage`). */
  static async create(root: string, staging: string): Promise<LocalStorage> {
    const abs = resolve(root);
    await mkdirPrivate(abs);
    return new LocalStorage(abs, resolve(staging));
  }

  uri(path: string): string {
    return this.abs(path);
  }

  async stagingDir(): Promise<string> {
    await this.ensureDir(this.staging);
    return this.staging;
  }

  async publish(localFile: string, path: string): Promise<StoredObject> {
    const target = this.abs(path);
    const dir = dirname(target);
    await this.ensureDir(dir);
    await syncPrivate(localFile);
    try {
      await linkNoReplace(localFile, target, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EXDEV') await copyInto(localFile, target, path);
      else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK')
        await renameNoReplace(localFile, target, path); // a filesystem without hard links
      else throw err;
    }
    await rm(localFile, { force: true });
    await fsyncDir(dir);
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

function exists(path: string): DipError {
  return new DipError('conflict', `lake file ${path} already exists; lake files are never overwritten`);
}

async function linkNoReplace(from: string, to: string, path: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw exists(path);
    throw err;
  }
}

/** Staging on another filesystem: copy beside the target, fsync, then link into place. */
async function copyInto(localFile: string, target: string, path: string): Promise<void> {
  const temp = join(dirname(target), `.${basename(target)}.${newId()}.tmp`);
  try {
    await copyFile(localFile, temp);
    await syncPrivate(temp);
    try {
      await linkNoReplace(temp, target, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK')
        await renameNoReplace(temp, target, path);
      else throw err;
    }
  } finally {
    await rm(temp, { force: true });
  }
}

/** Without hard links the check and the rename are two steps; lake file names are unique ids, so they never race. */
async function renameNoReplace(from: string, to: string, path: string): Promise<void> {
  const present = await stat(to).then(
    () => true,
    () => false,
  );
  if (present) throw exists(path);
  await rename(from, to);
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
