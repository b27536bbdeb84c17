/**
 * Whether a failed database connection is worth retrying. A refused or dropped connection, a
 * server starting up or too many clients may pass; a wrong password, an unknown user or database
 * or a missing privilege stays wrong until someone edits the configuration, so retrying it only
 * delays the error (and can lock the account).
 */
import type { ErrorKind } from './errors.js';

/** PostgreSQL SQLSTATEs and classes that no retry can fix. */
const POSTGRES_TERMINAL = ['28', '3D000', '42501', '3F000'] as const; // auth class, no such database, no privilege, no such schema
/** MySQL/MariaDB error numbers that no retry can fix. */
const MYSQL_TERMINAL = new Set([1044, 1045, 1049, 1227, 1698, 1251]); // access denied to db / for user, unknown database, no privilege, auth plugin

/** 'config' for credentials, database names and privileges; 'transient' for everything else. */
export function connectionErrorKind(err: unknown): Extract<ErrorKind, 'config' | 'transient'> {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, errno } = e as { code?: unknown; errno?: unknown };
    if (typeof errno === 'number' && MYSQL_TERMINAL.has(errno)) return 'config';
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && POSTGRES_TERMINAL.some((t) => code.startsWith(t))) return 'config';
  }
  return 'transient';
}
