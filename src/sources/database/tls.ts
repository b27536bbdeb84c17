/** TLS settings of a database connection, as Node's TLS options, for either driver. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TlsConfig } from '../../config/database.js';
import { ConfigError, errorMessage } from '../../core/errors.js';

export interface TlsFiles {
  /** Whether the server certificate must chain to `ca` (verify-ca, verify-full). */
  verify: boolean;
  /** Whether it must also match the host name (verify-full). */
  verifyHost: boolean;
  ca?: string;
  cert?: string;
  key?: string;
}

/** undefined for `mode: disable`; PEM contents read from files (or given inline by ${file:…}). */
export function tlsFiles(tls: TlsConfig | undefined, baseDir: string, label: string): TlsFiles | undefined {
  if (!tls || tls.mode === 'disable') return undefined;
  const file = (field: 'ca' | 'cert' | 'key') => {
    const value = tls[field];
    if (value === undefined) return undefined;
    if (value.includes('-----BEGIN')) return value; // ${file:…} already read it
    try {
      return readFileSync(resolve(baseDir, value), 'utf8');
    } catch (err) {
      throw new ConfigError(`${label}.connection.tls.${field}: cannot read ${value}: ${errorMessage(err)}`);
    }
  };
  if ((tls.mode === 'verify-ca' || tls.mode === 'verify-full') && !tls.ca) {
    throw new ConfigError(`${label}.connection.tls: mode ${tls.mode} needs ca: <PEM file of the server's CA>`);
  }
  const out: TlsFiles = { verify: tls.mode !== 'require', verifyHost: tls.mode === 'verify-full' };
  const ca = file('ca');
  const cert = file('cert');
  const key = file('key');
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}
