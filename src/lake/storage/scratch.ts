/**
 * Scratch space beside the lake, never inside it (a remote lake holds no scratch files):
 * the staging directory files are written to before they are published, and DuckDB's spill
 * directory, one subdirectory per open engine (DuckDB deletes every `duckdb_temp_*` file of
 * its temp directory on close, so engines must not share one). Everything here is 0700/0600
 * and removable by `dip gc` once its writer is gone.
 */
import { readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';

export const DEFAULT_STAGING_DIR = '.dip/staging';
export const DEFAULT_TEMP_DIR = '.dip/tmp';

/** A file found in a scratch directory, by absolute path. */
export interface ScratchFile {
  path: string;
  bytes: number;
  modifiedAt: Date;
}

/** Whether `dir` is `root` or lies inside it (both resolved). */
export function isInside(dir: string, root: string): boolean {
  const rel = relative(resolve(root), resolve(dir));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Refuses a scratch directory inside the lake root, naming the setting. */
export function assertOutsideLake(dir: string, lakeRoot: string, setting: string, file: string): void {
  if (isInside(dir, lakeRoot))
    throw new ConfigError(
      `${file}: ${setting} (${dir}) is inside the lake root (${lakeRoot}); scratch files must live outside the lake, e.g. ${setting === 'storage.staging' ? DEFAULT_STAGING_DIR : DEFAULT_TEMP_DIR}`,
    );
}

/** A spill directory of its own for one engine of this process: `<root>/<pid>@<host>.<id>`. */
export function engineTempDir(root: string): string {
  return join(root, `${process.pid}@${hostname()}.${newId()}`);
}

/** The process an engine spill directory belongs to (undefined for a name not made by `engineTempDir`). */
export function engineTempOwner(name: string): { pid: number; host: string } | undefined {
  const m = /^(\d+)@(.+)\.[^.]+$/.exec(name);
  return m ? { pid: Number(m[1]), host: m[2] as string } : undefined;
}

/** Every regular file under `dir` (recursive), none when it does not exist. */
export async function* listScratch(dir: string): AsyncIterable<ScratchFile> {
  const stack = [dir];
  while (stack.length) {
    const current = stack.pop() as string;
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const entry of entries) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) stack.push(full);
      else if (entry.isFile()) {
        try {
          const s = await stat(full);
          yield { path: full, bytes: s.size, modifiedAt: s.mtime };
        } catch {
          // removed by its writer meanwhile
        }
      }
    }
  }
}
