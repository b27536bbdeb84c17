/**
 * Binlog positions and what the server says about its binary log.
 *
 * A position is a file (`mysql-bin.000003`) and a byte offset in it; as one 64-bit number
 * that grows with the log it is `(file sequence number << 32) | offset` (offsets are 32-bit in
 * the replication protocol), printed `mysql-bin.000003:1234`.
 */
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import type { MysqlConnection } from '../connection.js';
import type { MysqlValue } from '../types.js';

/** State a CDC stream commits with each unit. */
export interface MysqlCdcState {
  /** Binlog file of the last transaction whose events are in the lake… */
  binlog: string;
  /** …and where its commit (XID) event ends in that file: reading resumes there. */
  position: number;
  /** The same position as one 64-bit number, `(file number << 32) | position`, as text. */
  lsn: string;
  /** Where the stream's snapshot was taken (file:position). */
  snapshot_at: string;
  /**
   * The table's columns at `position` (all of them, in order): the binlog's row images name no
   * columns, and after an ALTER TABLE the table no longer says what they were.
   */
  shape?: ShapeColumn[] | undefined;
  /** A DDL statement before `position` changed the table and the copy taken after it has not landed: take it again. */
  copy_due?: true | undefined;
}

/** A column of a table's shape: name, COLUMN_TYPE, character set, collation. */
export type ShapeColumn = [name: string, type: string, charset: string | null, collation: string | null];

/** The state of a stream complete up to `lsn`, in binlog files named `base`.NNNNNN. */
export function cdcState(base: string, lsn: bigint, snapshotAt: string, shape?: ShapeColumn[]): MysqlCdcState {
  return {
    binlog: positionFile(base, lsn),
    position: positionOffset(lsn),
    lsn: lsn.toString(),
    snapshot_at: snapshotAt,
    ...(shape ? { shape } : {}),
  };
}

export function isMysqlCdcState(value: unknown): value is MysqlCdcState {
  const v = value as Partial<MysqlCdcState> | null | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.binlog === 'string' &&
    typeof v.lsn === 'string' &&
    /^\d+$/.test(v.lsn)
  );
}

/** The binlog file resuming at `start` reads first; an error when the server purged it. */
export function resumeLog(
  logs: readonly { name: string }[],
  start: bigint,
  stream: string,
  state: MysqlCdcState | undefined,
  o: { label: string; pipeline: string },
): string {
  const log = logs.find((l) => binlogNumber(l.name) === Number(start >> 32n));
  if (log) return log.name;
  throw new ConfigError(
    `${o.label}: stream ${stream} stopped at ${state?.binlog}:${state?.position}, and the server no longer has that binary log file (purged: binlog_expire_logs_seconds / expire_logs_days; it has ${logs[0]?.name ?? 'none'} to ${logs[logs.length - 1]?.name ?? 'none'}). The changes since are lost to the change stream: run \`dip state ${o.pipeline} --reset\` to take a new snapshot of the cdc tables`,
  );
}

export interface BinlogPosition {
  file: string;
  offset: number;
}

/** The sequence number of a binlog file: mysql-bin.000003 → 3. */
export function binlogNumber(file: string): number {
  const m = /\.(\d+)$/.exec(file);
  if (!m) throw new DipError('internal', `not a binlog file name: ${file}`);
  return Number(m[1]);
}

/** mysql-bin.000003 → mysql-bin */
export const binlogBase = (file: string): string => file.replace(/\.\d+$/, '');

export function encodePosition(file: string, offset: number): bigint {
  return (BigInt(binlogNumber(file)) << 32n) | BigInt(offset);
}

export const positionOffset = (value: bigint): number => Number(value & 0xffffffffn);

/** The file of a position, given the log's base name. */
export function positionFile(base: string, value: bigint): string {
  return `${base}.${String(value >> 32n).padStart(6, '0')}`;
}

export function positionText(base: string, value: bigint): string {
  return `${positionFile(base, value)}:${positionOffset(value)}`;
}

const text = (v: MysqlValue | undefined): string =>
  v === null || v === undefined ? '' : typeof v === 'string' ? v : v.toString('utf8');

const REPLICATION_GRANT =
  'GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user> (MariaDB 10.5+: REPLICATION SLAVE, BINLOG MONITOR; MySQL 8.4: REPLICATION SLAVE, REPLICATION CLIENT)';

export function isPrivilegeError(err: unknown): boolean {
  const e = err as { code?: string; errno?: number } | undefined;
  return (
    e?.code === 'ER_SPECIFIC_ACCESS_DENIED_ERROR' ||
    e?.errno === 1227 ||
    e?.code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR'
  );
}

/** Binary logging on, row-based, full row images; otherwise says what to set. */
export async function checkBinlog(conn: MysqlConnection, label: string): Promise<void> {
  const rows = await conn.records(
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'log_bin_compress', 'binlog_transaction_compression')`,
  );
  const vars = new Map(rows.map((r) => [text(r['Variable_name']).toLowerCase(), text(r['Value']).toUpperCase()]));
  const settings =
    'log_bin (e.g. log_bin = mysql-bin), binlog_format = ROW and binlog_row_image = FULL in the server configuration, and a unique server_id, then restart the server';
  if (vars.get('log_bin') !== 'ON' && vars.get('log_bin') !== '1') {
    throw new ConfigError(
      `${label}: change data capture reads the binary log, and binary logging is off on this server (log_bin = OFF). Enable ${settings}`,
    );
  }
  const format = vars.get('binlog_format');
  if (format !== undefined && format !== 'ROW') {
    throw new ConfigError(
      `${label}: change data capture needs row-based binary logging; binlog_format is ${format}. Set binlog_format = ROW (SET GLOBAL binlog_format = 'ROW' and in the configuration; sessions must not override it) and binlog_row_image = FULL`,
    );
  }
  const image = vars.get('binlog_row_image');
  if (image !== undefined && image !== 'FULL') {
    throw new ConfigError(
      `${label}: change data capture needs every column in the binary log's row images; binlog_row_image is ${image}. Set binlog_row_image = FULL (SET GLOBAL binlog_row_image = 'FULL' and in the configuration)`,
    );
  }
  // Compressed events are not decoded: their changes would be missed.
  for (const name of ['log_bin_compress', 'binlog_transaction_compression']) {
    if (vars.get(name) === 'ON' || vars.get(name) === '1') {
      throw new ConfigError(
        `${label}: change data capture cannot read compressed binary log events, and ${name} is ON. Set ${name} = OFF`,
      );
    }
  }
}

/** The binary log files on the server, oldest first, with their sizes. */
export async function binaryLogs(conn: MysqlConnection, label: string): Promise<{ name: string; size: number }[]> {
  try {
    const rows = await conn.records('SHOW BINARY LOGS');
    return rows.map((r) => ({ name: text(r['Log_name']), size: Number(text(r['File_size'])) }));
  } catch (err) {
    throw binlogQueryError(label, 'SHOW BINARY LOGS', err);
  }
}

/** Where the binary log ends now (SHOW MASTER STATUS; SHOW BINARY LOG STATUS on MySQL 8.4). */
export async function currentPosition(conn: MysqlConnection, label: string): Promise<BinlogPosition> {
  let rows: Record<string, MysqlValue>[];
  try {
    rows = await conn.records('SHOW MASTER STATUS');
  } catch (err) {
    if (isPrivilegeError(err)) throw binlogQueryError(label, 'SHOW MASTER STATUS', err);
    try {
      rows = await conn.records('SHOW BINARY LOG STATUS');
    } catch {
      throw binlogQueryError(label, 'SHOW MASTER STATUS', err);
    }
  }
  const row = rows[0];
  if (!row || !text(row['File'])) {
    throw new ConfigError(
      `${label}: the server reports no binary log position (binary logging is off?). Enable log_bin, binlog_format = ROW and binlog_row_image = FULL`,
    );
  }
  return { file: text(row['File']), offset: Number(text(row['Position'])) };
}

function binlogQueryError(label: string, statement: string, err: unknown): Error {
  if (isPrivilegeError(err)) {
    return new ConfigError(
      `${label}: ${statement} was refused: change data capture needs the REPLICATION CLIENT and REPLICATION SLAVE privileges (${REPLICATION_GRANT}): ${errorMessage(err)}`,
      { cause: err },
    );
  }
  if ((err as { errno?: number }).errno === 1381) {
    return new ConfigError(
      `${label}: binary logging is off on this server. Enable log_bin, binlog_format = ROW and binlog_row_image = FULL`,
      { cause: err },
    );
  }
  return new DipError('transient', `${label}: ${statement} failed: ${errorMessage(err)}`, { cause: err });
}

/** The message for a dump refused for lack of REPLICATION SLAVE. */
export function replicationPrivilegeMessage(label: string, detail: string): string {
  return `${label}: the server refused to stream its binary log: change data capture needs the REPLICATION SLAVE and REPLICATION CLIENT privileges (${REPLICATION_GRANT}): ${detail}`;
}

/**
 * Starts a REPEATABLE READ, read-only transaction whose snapshot is exactly the binary log up
 * to the returned position: every transaction committed before it is in the snapshot, none
 * after it.
 *
 * MariaDB reports that position without any lock (`binlog_snapshot_file` / `_position`,
 * fixed at START TRANSACTION WITH CONSISTENT SNAPSHOT). MySQL has no such status: the global
 * read lock is held (FLUSH TABLES WITH READ LOCK, which needs the RELOAD privilege, and waits
 * for running statements) for the moment it takes to start the transaction and read
 * SHOW MASTER STATUS, so that no commit falls between the two.
 */
export async function beginSnapshotAt(conn: MysqlConnection, label: string): Promise<BinlogPosition> {
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
  const status = new Map(
    (await conn.records(`SHOW STATUS LIKE 'binlog_snapshot_%'`)).map((r) => [
      text(r['Variable_name']).toLowerCase(),
      text(r['Value']),
    ]),
  );
  const file = status.get('binlog_snapshot_file');
  const position = status.get('binlog_snapshot_position');
  if (file && position) return { file, offset: Number(position) };
  // MySQL
  await conn.query('ROLLBACK');
  try {
    await conn.query('FLUSH TABLES WITH READ LOCK');
  } catch (err) {
    if (isPrivilegeError(err)) {
      throw new ConfigError(
        `${label}: on MySQL the initial snapshot briefly takes the global read lock (FLUSH TABLES WITH READ LOCK) to pair it with its exact binlog position, which needs the RELOAD privilege: GRANT RELOAD ON *.* TO <user>: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    throw err;
  }
  try {
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    return await currentPosition(conn, label);
  } finally {
    await conn.query('UNLOCK TABLES');
  }
}
