/**
 * Files and directories DIP creates are private to the user running it: files 0600,
 * directories 0700, whatever the umask (modes are set with chmod after creation, since open
 * and mkdir only ever remove bits of the mode asked for). Lake files, the catalog and its WAL,
 * the token vault, the hash salt and scaffolded projects all go through here.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/** The directories `mkdir -p dir` would create, outermost first (none when `dir` exists). */
function missingDirs(dir: string): string[] {
  const missing: string[] = [];
  let current = resolve(dir);
  for (;;) {
    try {
      statSync(current);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') break;
    }
    missing.unshift(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return missing;
}

/** `mkdir -p` where every directory created is 0700 (existing ones are left as they are). */
export async function mkdirPrivate(dir: string): Promise<void> {
  const created = missingDirs(dir);
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  for (const d of created) await chmod(d, PRIVATE_DIR_MODE).catch(() => undefined);
}

export function mkdirPrivateSync(dir: string): void {
  const created = missingDirs(dir);
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  for (const d of created) {
    try {
      chmodSync(d, PRIVATE_DIR_MODE);
    } catch {
      // created by someone else in between: theirs to set
    }
  }
}

/**
 * Makes sure `file` exists and is 0600, before a library (SQLite) opens it: SQLite gives its
 * -wal and -shm files the mode of the database file. Existing files of the user are tightened
 * too (a project from a version that created them 0644); files of other users are left alone.
 */
export function ensurePrivateFileSync(file: string, companions: readonly string[] = []): void {
  mkdirPrivateSync(dirname(file));
  try {
    closeSync(openSync(file, 'wx', PRIVATE_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const f of [file, ...companions]) {
    try {
      chmodSync(f, PRIVATE_FILE_MODE);
    } catch {
      // absent (a companion not created yet) or not ours
    }
  }
}

export async function ensurePrivateFile(file: string, companions: readonly string[] = []): Promise<void> {
  await mkdirPrivate(dirname(file));
  try {
    await (await open(file, 'wx', PRIVATE_FILE_MODE)).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  for (const f of [file, ...companions]) await chmod(f, PRIVATE_FILE_MODE).catch(() => undefined);
}

/**
 * A random secret kept in a file (the hash salt, the quarantine and state keys): read when it
 * exists, else created with `bytes` random bytes, base64url, 0600 in a 0700 directory. Exclusive
 * create, so two processes creating it at once end up with the same secret.
 */
export function readOrCreateSecretSync(file: string, bytes: number): string {
  const read = () => readFileSync(file, 'utf8').trim();
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirPrivateSync(dirname(file));
  try {
    writeFileSync(file, `${randomBytes(bytes).toString('base64url')}\n`, { flag: 'wx', mode: PRIVATE_FILE_MODE });
    chmodSync(file, PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return read();
}
