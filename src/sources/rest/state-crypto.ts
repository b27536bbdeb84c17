/**
 * Secret source state (rotated OAuth refresh tokens) is kept in the catalog encrypted with
 * AES-256-GCM. The key comes by reference (`state_key: ${env:DIP_STATE_KEY}`) or, by default,
 * from a random key file `.dip/state-key` (0600) beside — never inside — the lake and catalog.
 * A state written before encryption (clear) still reads; the caller re-encrypts it.
 */
import { createHash, scryptSync } from 'node:crypto';
import { resolve } from 'node:path';
import { aeadOpen, aeadSeal } from '../../core/aead.js';
import { DipError } from '../../core/errors.js';
import { readOrCreateSecretSync } from '../../core/private-files.js';

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
  try {
    return deriveStateKey(readOrCreateSecretSync(file, 32), file);
  } catch (err) {
    throw stateKeyError(file, err);
  }
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
  const sealed = aeadSeal(key.key, JSON.stringify(value), AAD);
  return {
    encrypted: ALGORITHM,
    key_id: key.id,
    iv: sealed.iv.toString('base64'),
    tag: sealed.tag.toString('base64'),
    data: sealed.ciphertext.toString('base64'),
  };
}

/** The clear value; a config error naming both keys (by id) when this key did not write it. */
export function decryptState(state: EncryptedState, key: StateKey, what: string): unknown {
  try {
    const clear = aeadOpen(
      key.key,
      {
        iv: Buffer.from(state.iv, 'base64'),
        tag: Buffer.from(state.tag, 'base64'),
        ciphertext: Buffer.from(state.data, 'base64'),
      },
      AAD,
    ).toString('utf8');
    return JSON.parse(clear) as unknown;
  } catch {
    throw new DipError(
      'config',
      `${what}: the stored state was encrypted with state key ${state.key_id}, but the key in use (${key.source}) is ${key.id} and cannot decrypt it; restore the key that wrote it (auth.state_key or ${STATE_KEY_FILE})`,
      { details: { stored_key_id: state.key_id, key_id: key.id } },
    );
  }
}
