import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { DipError } from '../../core/errors.js';

export interface DiscoveredFile {
  path: string;
  bytes: number;
  modifiedMs: number;
}

export interface Discovery {
  /** Matching files, sorted by path. */
  files: DiscoveredFile[];
  /** Globs that matched no file. */
  unmatched: string[];
}

/**
 * Files matching the stream's paths/globs, sorted by path so every run reads them in the same
 * order. A literal path that does not exist is an error; a glob that matches nothing is
 * reported in `unmatched` (the caller warns, or fails when the stream requires files).
 */
export async function discoverFiles(patterns: readonly string[], baseDir: string, label: string): Promise<Discovery> {
  const found = new Map<string, DiscoveredFile>();
  const unmatched: string[] = [];
  for (const pattern of patterns) {
    const absPattern = isAbsolute(pattern) ? pattern : resolve(baseDir, pattern);
    const paths = isDynamicPattern(pattern)
      ? await glob(absPattern, { absolute: true, onlyFiles: true, dot: false, expandDirectories: false })
      : [absPattern];
    if (paths.length === 0) unmatched.push(pattern);
    for (const path of paths) {
      let s;
      try {
        s = await stat(path);
      } catch {
        throw new DipError(
          'input',
          `${label}: file not found: ${path} (from path "${pattern}", relative to ${baseDir})`,
          {
            details: { path, pattern },
          },
        );
      }
      if (!s.isFile()) throw new DipError('input', `${label}: ${path} is not a file (from path "${pattern}")`);
      found.set(path, { path, bytes: s.size, modifiedMs: Math.trunc(s.mtimeMs) });
    }
  }
  return { files: [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), unmatched };
}

/** Inputs up to this size get a content hash in the ledger (one extra read, from the page cache for the ingest that follows). */
export const HASH_MAX_BYTES = 64 * 1024 * 1024;

/** sha256 of a file's content, hex. */
export async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
