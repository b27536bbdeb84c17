/**
 * Sealed quarantine values. A quarantined row keeps the input columns that feed a masked column
 * only sealed: AES-256-GCM under a key derived (HKDF-SHA256) from `privacy.quarantine_key`, or
 * from a random key kept in `.dip/quarantine-key` beside (never inside) the lake, created 0600.
 * `dip quarantine replay` unseals them to run the rows through the silver step again.
 */
import { hkdfSync } from 'node:crypto';
import { aeadOpen, aeadSeal, IV_BYTES, TAG_BYTES } from '../core/aead.js';
import { DipError } from '../core/errors.js';

const PREFIX = 'dipq1:';
const INFO = 'dip quarantine seal v1';

export interface Sealer {
  /** `dipq1:` + base64url(iv ‖ tag ‖ ciphertext) of `text`. */
  seal(text: string): string;
  /** The text sealed; a DipError when the key is not the one that sealed it. */
  unseal(sealed: string): string;
}

export function sealerFromSecret(secret: string): Sealer {
  const key = Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.from(secret, 'utf8'),
      Buffer.from('dip-quarantine', 'utf8'),
      Buffer.from(INFO, 'utf8'),
      32,
    ),
  );
  return {
    seal(text) {
      const { iv, tag, ciphertext } = aeadSeal(key, text);
      return PREFIX + Buffer.concat([iv, tag, ciphertext]).toString('base64url');
    },
    unseal(sealed) {
      if (!sealed.startsWith(PREFIX))
        throw new DipError('input', `a sealed quarantine value does not start with ${PREFIX}`);
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url');
      try {
        const sealed = {
          iv: raw.subarray(0, IV_BYTES),
          tag: raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES),
          ciphertext: raw.subarray(IV_BYTES + TAG_BYTES),
        };
        return aeadOpen(key, sealed).toString('utf8');
      } catch (err) {
        throw new DipError(
          'config',
          "a sealed quarantine row does not open with this project's quarantine key (privacy.quarantine_key or .dip/quarantine-key): was the key changed or the project moved without it?",
          { cause: err },
        );
      }
    },
  };
}
