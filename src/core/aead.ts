/**
 * AES-256-GCM, the one authenticated encryption DIP uses for what it keeps secret at rest (the
 * token vault, sealed quarantine values, secret source state). Each caller keeps its own stored
 * format; this module only seals and opens.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface Sealed {
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

export function aeadSeal(key: Buffer, plain: Buffer | string, aad?: Buffer): Sealed {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  if (aad) cipher.setAAD(aad);
  const ciphertext = Buffer.concat([
    cipher.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain),
    cipher.final(),
  ]);
  return { iv, tag: cipher.getAuthTag(), ciphertext };
}

/** The clear bytes; throws when the key, the associated data or the bytes are not the ones sealed. */
export function aeadOpen(key: Buffer, sealed: Sealed, aad?: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv);
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(sealed.tag);
  return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
}
