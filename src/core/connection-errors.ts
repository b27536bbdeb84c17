/**
 * Whether a failed database connection is worth retrying. A refused or dropped connection, a
 * server starting up or too many clients may pass; a wrong password, an unknown user or database,
 * a locked account, a missing privilege or a TLS setup that cannot work stays wrong until someone
 * edits the configuration, so retrying it only delays the error (and can lock the account).
 */
import type { ErrorKind } from './errors.js';

/** PostgreSQL SQLSTATEs and classes no retry can fix: authorization, no such database, no privilege, no such schema. */
const POSTGRES_TERMINAL = ['28', '3D000', '42501', '3F000'] as const;
/**
 * MySQL/MariaDB error numbers no retry can fix: access denied to a database (1044) or for a user
 * (1045), unknown database (1049), host not allowed (1130), no privilege (1227), auth plugin
 * unsupported (1251), access denied without password (1698), password expired (1820, 1862),
 * account locked (MySQL 3118, MariaDB 4151).
 */
const MYSQL_TERMINAL = new Set([1044, 1045, 1049, 1130, 1227, 1251, 1698, 1820, 1862, 3118, 4151]);
/** Client-side codes (mysql2, Node's TLS) that no retry can fix. */
const CLIENT_TERMINAL = new Set([
  'AUTH_SWITCH_PLUGIN_ERROR',
  'HANDSHAKE_NO_SSL_SUPPORT',
  'MYSQL_CLEAR_PASSWORD_NOT_ENABLED',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
/** node-postgres reports these without a code. */
const POSTGRES_CLIENT_TERMINAL = [
  /^SASL: .*password must be a string/,
  /^The server does not support SSL connections$/,
  /password authentication failed/,
];

/** 'config' for credentials, database names, privileges and TLS setup; 'transient' for everything else. */
export function connectionErrorKind(err: unknown): Extract<ErrorKind, 'config' | 'transient'> {
  for (
    let e: unknown = err, depth = 0;
    e && typeof e === 'object' && depth < 5;
    e = (e as { cause?: unknown }).cause, depth++
  ) {
    const { code, errno, message } = e as { code?: unknown; errno?: unknown; message?: unknown };
    if (typeof errno === 'number' && MYSQL_TERMINAL.has(errno)) return 'config';
    if (typeof code === 'string') {
      if (CLIENT_TERMINAL.has(code)) return 'config';
      if (/^[0-9A-Z]{5}$/.test(code) && POSTGRES_TERMINAL.some((t) => code.startsWith(t))) return 'config';
    }
    if (typeof message === 'string' && POSTGRES_CLIENT_TERMINAL.some((re) => re.test(message))) return 'config';
  }
  return 'transient';
}

/** The SQLSTATE (PostgreSQL) or driver code an error carries, if any. */
export function sqlState(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}
