/** The initial snapshot of a PostgreSQL CDC session, at a new replication slot's consistent point. */
import type pg from 'pg';
import { ident, qualified } from '../../../lake/sql.js';
import { type CdcUnit, snapshotUnit } from '../../database/change-batch.js';
import { type CdcFeed, snapshotRead, tableName } from '../../database/cdc-session.js';
import { connect } from '../connection.js';
import { copyToFile } from '../extract.js';
import { bigintToLsn, lsnToBigint } from './pgoutput.js';
import { tableShape } from './shape.js';
import { createSlotWithSnapshot } from './slot.js';

/**
 * Creates the slot and copies every feed's table as of its consistent point, one snapshot unit
 * per table (with its state from `state`, given the table's shape); `f.shape` and `f.committed`
 * are set. Transactions decoded from the slot are exactly those the snapshot does not see.
 */
export async function snapshotAtNewSlot<S, F extends CdcFeed<S> & { shape?: string | undefined }>(
  client: pg.ClientConfig,
  label: string,
  slot: string,
  feeds: F[],
  state: (point: string, lsn: string, shape: string | undefined) => S,
): Promise<{ point: string; units: [F, CdcUnit][] }> {
  const created = await createSlotWithSnapshot(client, label, slot);
  const point = lsnToBigint(created.consistentPoint);
  const reader = await connect(client, label);
  const units: [F, CdcUnit][] = [];
  try {
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await reader.query(`SET TRANSACTION SNAPSHOT '${created.snapshot}'`);
    for (const f of feeds) {
      const { path, sql } = snapshotRead(f, ident, qualified, point, 'false');
      await copyToFile(reader, sql, path, f.ctx.signal);
      f.shape = await tableShape(reader, f.table.schema, f.table.name);
      const s = state(created.consistentPoint, bigintToLsn(point - 1n), f.shape);
      units.push([f, await snapshotUnit(f.stream, tableName(f.table), path, created.consistentPoint, point - 1n, s)]);
      f.committed = point - 1n;
    }
    await reader.query('COMMIT');
  } finally {
    await reader.end().catch(() => undefined);
    await created.release();
  }
  return { point: created.consistentPoint, units };
}
