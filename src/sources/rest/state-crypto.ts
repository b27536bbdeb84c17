/**
 * Secret source state (rotated OAuth refresh tokens) is kept in the catalog encrypted with
 * AES-256-GCM. The key comes by reference (`state_key: ${env:DIP_STATE_KEY}`) or, by default,
 * from a random key file `.dip/state-key` (0600) beside — never inside — the lake and catalog.
 * A state written before encryption (clear) still reads; the caller re-encrypts it.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DipError } from '../../core/errors.js';

export const STATE_KEY_FILE = '.dip/state-key';
const ALGORITHM = 'aes-256-gcm';
const AAD = Buffer.from('dip:source-state:v1');

/** What an encrypted state looks like in the catalog. */
export interface EncryptedState {
  encrypted: typeof ALGORITHM;
  /** The first 8 hex digits of SHA-256 of the key: names the key that wrote it, reveals nothing. */
  key_id: string;
  iv: string;
  tag: string;
  data: string;
}

export interface StateKey {
  key: Buffer;
  id: string;
  /** Where the key came from, for error messages (never the key). */
  source: string;
}

/** A 32-byte key from a secret string (scrypt, so a passphrase is as good as it can be). */
export function deriveStateKey(material: string, source: string): StateKey {
  const key = scryptSync(material, 'dip-state-key-v1', 32);
  return { key, id: createHash('sha256').update(key).digest('hex').slice(0, 8), source };
}

/** The project's key file, created with 32 random bytes (0600, exclusive create) when missing. */
export function projectStateKey(projectDir: string): StateKey {
  const file = resolve(projectDir, STATE_KEY_FILE);
  const read = (): StateKey => deriveStateKey(readFileSync(file, 'utf8').trim(), file);
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateKeyError(file, err);
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    // wx: two processes creating it at once must not end up with different keys.
    writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { flag: 'wx', mode: 0o600 });
    chmodSync(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw stateKeyError(file, err);
  }
  return read();
}

function stateKeyError(file: string, err: unknown): DipError {
  const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
  return new DipError(
    'config',
    `cannot read or create the state key ${file} (${code}); set auth.state_key (e.g. \${env:DIP_STATE_KEY}) or make the file readable`,
  );
}

export function isEncryptedState(value: unknown): value is EncryptedState {
  const v = value as Partial<EncryptedState> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.encrypted === ALGORITHM &&
    typeof v.iv === 'string' &&
    typeof v.tag === 'string' &&
    typeof v.data === 'string'
  );
}

export function encryptState(value: unknown, key: StateKey): EncryptedState {
  const iv = randomBytes(12);
  const cipher = createCipheriv(ALGORITHM, key.key, iv);
  cipher.setAAD(AAD);
  const data = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
  return {
    encrypted: ALGORITHM,
    key_id: key.id,
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  };
}

/** The clear value; a config error naming both keys (by id) when this key did not write it. */
export function decryptState(state: EncryptedState, key: StateKey, what: string): unknown {
  try {
    const decipher = createDecipheriv(ALGORITHM, key.key, Buffer.from(state.iv, 'base64'));
    decipher.setAAD(AAD);
    decipher.setAuthTag(Buffer.from(state.tag, 'base64'));
    const clear = Buffer.concat([decipher.update(Buffer.from(state.data, 'base64')), decipher.final()]).toString(
      'utf8',
    );
    return JSON.parse(clear) as unknown;
  } catch {
    throw new DipError(
      'config',
      `${what}: the stored state was encrypted with state key ${state.key_id}, but the key in use (${key.source}) is ${key.id} and cannot decrypt it; restore the key that wrote it (auth.state_key or ${STATE_KEY_FILE})`,
      { details: { stored_key_id: state.key_id, key_id: key.id } },
    );
  }
}
