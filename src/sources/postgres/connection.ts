/**
 * pg client settings from a source's `connection`: secrets resolved where they are used, TLS
 * files read, and the session settings every extract relies on (UTC timestamps, ISO dates,
 * hex bytea, shortest exact floats) so text values mean the same on every connection.
 */
import type { ClientConfig } from 'pg';
import pg from 'pg';
import type { ConnectionConfig } from '../../config/database.js';
import { resolveSecretsDeep } from '../../config/secrets.js';
import { connectionErrorKind } from '../../core/connection-errors.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { tlsFiles } from '../database/tls.js';
import { durationMs } from '../../core/time.js';

/** `-c` settings for every session: the text forms extracts and change events are read in. */
export const SESSION_SETTINGS: Record<string, string> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
  client_encoding: 'UTF8',
};

const sessionOptions = () =>
  Object.entries(SESSION_SETTINGS)
    .map(([k, v]) => `-c ${k}=${v.replaceAll(' ', '\\ ')}`)
    .join(' ');

export function clientConfig(c: ConnectionConfig, baseDir: string, label: string): ClientConfig {
  const resolved = resolveSecretsDeep(c, { baseDir });
  const config: ClientConfig = {
    connectionTimeoutMillis: durationMs(c.connect_timeout, `${label}.connection.connect_timeout`),
    options: sessionOptions(),
    application_name: 'dip',
  };
  if (resolved.url) config.connectionString = resolved.url;
  if (resolved.host) config.host = resolved.host;
  if (resolved.port) config.port = resolved.port;
  if (resolved.user) config.user = resolved.user;
  if (resolved.password !== undefined) config.password = resolved.password;
  if (resolved.database) config.database = resolved.database;
  const tls = tlsFiles(resolved.tls, baseDir, label);
  if (tls) {
    const { verify, verifyHost, ...pem } = tls;
    config.ssl = {
      rejectUnauthorized: verify,
      ...pem,
      ...(verify && !verifyHost ? { checkServerIdentity: () => undefined } : {}),
    };
  }
  return config;
}

/** Connects, turning a refused connection into an error that names the source and the server. */
export async function connect(config: ClientConfig, label: string): Promise<pg.Client> {
  const client = new pg.Client(config);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    const where = config.host ? `${config.host}:${config.port ?? 5432}` : 'the server in connection.url';
    throw new DipError(
      connectionErrorKind(err),
      `${label}: cannot connect to PostgreSQL at ${where}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
  // A dropped connection must fail the read in progress, not crash the process.
  client.on('error', () => undefined);
  return client;
}
