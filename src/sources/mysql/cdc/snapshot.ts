/**
 * The initial snapshot of a MySQL/MariaDB source's CDC tables: every table read in one
 * consistent-snapshot transaction whose binlog position is exact (position.ts), one
 * `snapshot` unit per table. Transactions in the binlog after that position are exactly
 * those the snapshot does not see.
 */
import type { ConnectionOptions } from 'mysql2';
import { DipError, errorMessage } from '../../../core/errors.js';
import { CDC_COLUMN_TYPES } from '../../../lake/zone-schemas.js';
import { snapshotUnit, type CdcUnit } from '../../database/change-batch.js';
import { snapshotRead, tableName, type CdcFeed } from '../../database/cdc-session.js';
import type { DbColumn } from '../../database/types.js';
import { connect, type MysqlConnection } from '../connection.js';
import { readToCsv } from '../extract.js';
import { quoteIdent, quoteQualified } from '../types.js';
import {
  beginSnapshotAt,
  encodePosition,
  type BinlogPosition,
  type MysqlCdcState,
  type ShapeColumn,
} from './position.js';

/** Copies every feed's table; one unit per feed, in order, and the snapshot's position. */
export async function readSnapshot(
  connection: ConnectionOptions,
  label: string,
  feeds: readonly CdcFeed<unknown>[],
  shapeOf: (f: CdcFeed<unknown>) => ShapeColumn[] | undefined = () => undefined,
): Promise<{ at: BinlogPosition; position: bigint; units: CdcUnit[] }> {
  const conn = await connect(connection, label);
  const units: CdcUnit[] = [];
  let clean = false;
  try {
    const at = await beginSnapshotAt(conn, label);
    const position = encodePosition(at.file, at.offset);
    for (const f of feeds) units.push(await snapshotTable(conn, label, f, at, shapeOf(f)));
    await conn.query('COMMIT');
    clean = true;
    return { at, position, units };
  } finally {
    if (clean) await conn.end();
    else {
      conn.destroy();
      for (const unit of units) await unit.dispose?.();
    }
  }
}

/** Copies one feed's table inside the snapshot transaction open on `conn` (taken at `at`). */
export async function snapshotTable(
  conn: MysqlConnection,
  label: string,
  f: CdcFeed<unknown>,
  at: BinlogPosition,
  shape: ShapeColumn[] | undefined,
): Promise<CdcUnit> {
  const position = encodePosition(at.file, at.offset);
  const snapshotAt = `${at.file}:${at.offset}`;
  const { path, sql } = snapshotRead(f, quoteIdent, quoteQualified, position, '0');
  const cdcColumns: DbColumn[] = CDC_COLUMN_TYPES.map((c) => ({
    name: c.name,
    sourceType: c.type,
    lakeType: c.type,
    select: '',
  }));
  const table = tableName(f.table);
  let rows: number;
  try {
    rows = (await readToCsv(conn, sql, [...f.stream.columns, ...cdcColumns], path, f.ctx.signal)).rows;
  } catch (err) {
    if (err instanceof DipError || (err instanceof Error && err.name === 'AbortError')) throw err;
    throw new DipError('transient', `${label}: snapshot of ${table} failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const state: MysqlCdcState = {
    binlog: at.file,
    position: at.offset,
    lsn: position.toString(),
    snapshot_at: snapshotAt,
    ...(shape ? { shape } : {}),
  };
  return snapshotUnit(f.stream, table, path, snapshotAt, position, state, { rows });
}
