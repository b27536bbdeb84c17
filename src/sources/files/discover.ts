import { stat } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { DipError } from '../../core/errors.js';

export interface DiscoveredFile {
  path: string;
  bytes: number;
  modifiedMs: number;
}

/**
 * Files matching the stream's paths/globs, sorted by path so every run reads them in the same
 * order. A literal path that does not exist is an error; a glob that matches nothing is not.
 */
export async function discoverFiles(patterns: readonly string[], baseDir: string, label: string): Promise<DiscoveredFile[]> {
  const found = new Map<string, DiscoveredFile>();
  for (const pattern of patterns) {
    const absPattern = isAbsolute(pattern) ? pattern : resolve(baseDir, pattern);
    const paths = isDynamicPattern(pattern)
      ? await glob(absPattern, { absolute: true, onlyFiles: true, dot: false, expandDirectories: false })
      : [absPattern];
    for (const path of paths) {
      let s;
      try {
        s = await stat(path);
      } catch {
        throw new DipError('input', `${label}: file not found: ${path} (from path "${pattern}", relative to ${baseDir})`, {
          details: { path, pattern },
        });
      }
      if (!s.isFile()) throw new DipError('input', `${label}: ${path} is not a file (from path "${pattern}")`);
      found.set(path, { path, bytes: s.size, modifiedMs: Math.trunc(s.mtimeMs) });
    }
  }
  return [...found.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
