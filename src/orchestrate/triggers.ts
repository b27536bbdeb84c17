/** Data-driven triggers: a fingerprint of the files a glob matches, so new or changed files start a run. */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { glob } from 'tinyglobby';

export async function fileTriggerFingerprint(
  baseDir: string,
  pattern: string,
): Promise<{ files: number; hash: string }> {
  const paths = (await glob(pattern, { cwd: baseDir, absolute: true, onlyFiles: true })).sort();
  const hash = createHash('sha256');
  let files = 0;
  for (const path of paths) {
    const s = await stat(path).catch(() => undefined);
    if (!s) continue;
    files++;
    hash.update(`${path}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return { files, hash: hash.digest('hex').slice(0, 32) };
}
