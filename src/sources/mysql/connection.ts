/**
 * mysql2 connection settings from a source's `connection`: secrets resolved where they are
 * used, TLS files read, and the session every extract relies on: UTC (`time_zone = '+00:00'`,
 * so TIMESTAMP columns read the same everywhere), utf8mb4, backslash escapes on (literals are
 * escaped that way) and a long net_write_timeout (a paused stream is not a dead client).
 *
 * Values are never parsed in JavaScript: numbers, decimals, dates and times arrive as the
 * server's text, JSON as its text, binary strings (and BIT, GEOMETRY) as Buffers, so the CSV
 * a unit writes carries exactly what the database holds.
 */
import type { Readable } from 'node:stream';
import mysql from 'mysql2';
import type { Connection, ConnectionOptions, FieldPacket, SslOptions, TypeCastField } from 'mysql2';
import { tlsFiles } from '../database/tls.js';
import type { ConnectionConfig } from '../../config/database.js';
import { resolveSecretsDeep } from '../../config/secrets.js';
import { connectionErrorKind } from '../../core/connection-errors.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { MysqlValue } from './types.js';

/** Statements run on every new session, in order. */
export const SESSION_STATEMENTS: readonly string[] = [
  'SET NAMES utf8mb4',
  "SET time_zone = '+00:00'",
  "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))",
  'SET SESSION net_write_timeout = 600',
];

/** Protocol types read as the server's text instead of being parsed into numbers or Dates. */
const TEXT_TYPES = new Set([
  'TINY',
  'SHORT',
  'LONG',
  'INT24',
  'LONGLONG',
  'YEAR',
  'FLOAT',
  'DOUBLE',
  'DECIMAL',
  'NEWDECIMAL',
  'DATE',
  'NEWDATE',
  'DATETIME',
  'DATETIME2',
  'TIMESTAMP',
  'TIMESTAMP2',
  'TIME',
  'TIME2',
]);
const BYTE_TYPES = new Set(['BIT', 'GEOMETRY', 'VECTOR']);

/** Every value as text or bytes; see the module comment. */
export function exactTypeCast(field: TypeCastField, next: () => unknown): unknown {
  // MySQL marks JSON as binary, MariaDB sends it as LONGTEXT flagged json: text either way.
  if (field.type === 'JSON' || field.extendedFormat === 'json') return field.string('utf8');
  if (TEXT_TYPES.has(field.type)) return field.string('ascii');
  if (BYTE_TYPES.has(field.type)) return field.buffer();
  // Character strings decoded from the connection charset; binary strings stay Buffers.
  return next();
}

export function connectionOptions(c: ConnectionConfig, baseDir: string, label: string): ConnectionOptions {
  const resolved = resolveSecretsDeep(c, { baseDir });
  const options: ConnectionOptions = {
    connectTimeout: durationMs(c.connect_timeout, `${label}.connection.connect_timeout`),
    charset: 'UTF8MB4_UNICODE_CI',
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    typeCast: exactTypeCast,
    connectAttributes: { program_name: 'dip' },
  };
  if (resolved.url) options.uri = resolved.url;
  // Explicit fields win over the url's.
  if (resolved.host) options.host = resolved.host;
  if (resolved.port) options.port = resolved.port;
  if (resolved.user) options.user = resolved.user;
  if (resolved.password !== undefined) options.password = resolved.password;
  if (resolved.database) options.database = resolved.database;
  const tls = tlsFiles(resolved.tls, baseDir, label);
  if (tls) {
    // require: encrypted, no checks; verify-ca: chain to ca; verify-full: and the host name.
    const { verify, verifyHost, ...pem } = tls;
    options.ssl = { rejectUnauthorized: verify, verifyIdentity: verifyHost, ...pem } satisfies SslOptions;
  }
  return options;
}

/** A row as its values, in select-list order. */
export type MysqlRow = MysqlValue[];

/** One session on the server, with promises for plain queries and a stream for big reads. */
export class MysqlConnection {
  constructor(
    private readonly conn: Connection,
    readonly label: string,
  ) {}

  /** Runs a statement; rows come back as arrays, with the result's column descriptions. */
  query(sql: string): Promise<{ rows: MysqlRow[]; fields: FieldPacket[] }> {
    return new Promise((resolvePromise, reject) => {
      this.conn.query<MysqlRow[] & mysql.RowDataPacket[]>({ sql, rowsAsArray: true }, (err, rows, fields) => {
        if (err) reject(err);
        else resolvePromise({ rows: Array.isArray(rows) ? rows : [], fields: fields ?? [] });
      });
    });
  }

  /** Runs a query; rows as objects by column name (catalog queries). */
  async records(sql: string): Promise<Record<string, MysqlValue>[]> {
    const { rows, fields } = await this.query(sql);
    return rows.map((row) => Object.fromEntries(fields.map((f, i) => [f.name, row[i] ?? null])));
  }

  /** Rows of a query as an object-mode stream of arrays; pauses the socket when not read. */
  stream(sql: string): Readable {
    return this.conn.query({ sql, rowsAsArray: true }).stream({ highWaterMark: 256 });
  }

  /** A string literal (backslash escapes: the session turns NO_BACKSLASH_ESCAPES off). */
  escape(value: string): string {
    return this.conn.escape(value);
  }

  /** Closes the session politely; errors (an already dead socket) only destroy it. */
  end(): Promise<void> {
    return new Promise<void>((resolvePromise) => {
      this.conn.end((err) => {
        if (err) this.conn.destroy();
        resolvePromise();
      });
    });
  }

  /** Drops the socket at once (a query may still be streaming). */
  destroy(): void {
    this.conn.destroy();
  }
}

/** Connects and sets up the session; a refused connection names the source and the server. */
export async function connect(options: ConnectionOptions, label: string): Promise<MysqlConnection> {
  // A copy: mysql2 writes the url's fields into the options it is given.
  const conn = mysql.createConnection({ ...options });
  // A dropped connection fails the query in progress; it must not crash the process.
  conn.on('error', () => undefined);
  const session = new MysqlConnection(conn, label);
  try {
    await new Promise<void>((resolvePromise, reject) => conn.connect((err) => (err ? reject(err) : resolvePromise())));
    for (const statement of SESSION_STATEMENTS) await session.query(statement);
  } catch (err) {
    conn.destroy();
    throw new DipError(
      connectionErrorKind(err),
      `${label}: cannot connect to MySQL at ${serverOf(options)}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return session;
}

/** host:port for messages (never the url, which may hold a password). */
function serverOf(options: ConnectionOptions): string {
  let host = options.host;
  let port = options.port;
  if (options.uri) {
    try {
      const u = new URL(options.uri);
      host ??= u.hostname;
      port ??= u.port ? Number(u.port) : undefined;
    } catch {
      // an unparsable url: mysql2's own error says so
    }
  }
  return host ? `${host}:${port ?? 3306}` : 'the server in connection.url';
}
