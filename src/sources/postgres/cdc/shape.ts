/**
 * A table's shape as pgoutput describes it (every column's name, type oid and modifier, in
 * order) and the copy a stream takes of its table alone after a DDL statement changed it: in
 * the snapshot of a temporary replication slot, whose consistent point says which
 * transactions the copy holds (those committing before it) and which the stream still reads.
 */
import type pg from 'pg';
import { newId } from '../../../core/ids.js';
import { ident, qualified } from '../../../lake/sql.js';
import { snapshotUnit, type CdcUnit } from '../../database/change-batch.js';
import { snapshotRead, tableName, type CdcFeed } from '../../database/cdc-session.js';
import { chooseColumns, type DbColumn } from '../../database/types.js';
import { connect } from '../connection.js';
import { copyToFile } from '../extract.js';
import { PgIntrospector } from '../introspect.js';
import { bigintToLsn, lsnToBigint } from './pgoutput.js';
import { createSlotWithSnapshot } from './slot.js';

/** Columns as one comparable text. */
export function shapeOf(columns: readonly { name: string; typeOid: number; typeMod: number }[]): string {
  return JSON.stringify(columns.map((c) => [c.name, c.typeOid, c.typeMod]));
}

const SHAPE_SQL = `
  SELECT a.attname AS name, a.atttypid::int AS "typeOid", a.atttypmod AS "typeMod"
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  ORDER BY a.attnum`;

/** The table's shape now, or undefined when there is no such table. */
export async function tableShape(client: pg.Client, schema: string, name: string): Promise<string | undefined> {
  const r = await client.query<{ name: string; typeOid: number; typeMod: number }>(SHAPE_SQL, [schema, name]);
  return r.rows.length ? shapeOf(r.rows) : undefined;
}

export interface TableCopy {
  unit: CdcUnit;
  /** The copy holds the transactions committing before this LSN; the stream reads the others. */
  at: bigint;
  shape: string;
}

/** Copies `f`'s table in a snapshot of its own; undefined when the table is gone. */
export async function copyTable<S>(
  client: pg.ClientConfig,
  label: string,
  slot: string,
  f: CdcFeed<S>,
  state: (lsn: string, shape: string) => S,
): Promise<TableCopy | undefined> {
  const created = await createSlotWithSnapshot(client, label, `${slot}_${newId('c').slice(-8)}`.slice(0, 63), true);
  const reader = await connect(client, label);
  try {
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await reader.query(`SET TRANSACTION SNAPSHOT '${created.snapshot}'`);
    const { schema, name } = f.table;
    const shape = await tableShape(reader, schema, name);
    const described = shape ? await new PgIntrospector(reader).describeTable(schema, name) : undefined;
    if (!shape || !described) {
      await reader.query('COMMIT');
      return undefined;
    }
    const columns: DbColumn[] = chooseColumns(f.stream.columnChoice, described.columns);
    // The copy has the table's columns at its snapshot; the stream's change to them at the relation messages.
    const copy = { ...f, stream: { ...f.stream, columns } };
    const point = lsnToBigint(created.consistentPoint);
    const { path, sql } = snapshotRead(copy, ident, qualified, point, 'false');
    await copyToFile(reader, sql, path, f.ctx.signal);
    await reader.query('COMMIT');
    const unit = await snapshotUnit(
      copy.stream,
      tableName(f.table),
      path,
      created.consistentPoint,
      point - 1n,
      state(bigintToLsn(point - 1n), shape),
    );
    return { unit, at: point, shape };
  } finally {
    await reader.end().catch(() => undefined);
    await created.release();
  }
}

/**
 * The tables as they are now, in order, with the server's WAL position: each one's shape, or
 * null when there is no such table.
 */
export async function currentShapes(
  client: pg.Client,
  tables: { schema: string; name: string }[],
): Promise<{ lsn: string; shape: string | null }[]> {
  const r = await client.query<{ lsn: string; shape: string | null }>(
    `SELECT pg_current_wal_lsn()::text AS lsn,
       (SELECT json_agg(json_build_array(a.attname, a.atttypid::int, a.atttypmod) ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::text AS shape
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(s, t, i)
     LEFT JOIN LATERAL (SELECT to_regclass(quote_ident(x.s) || '.' || quote_ident(x.t))::oid AS oid) r ON true
     ORDER BY x.i`,
    [tables.map((t) => t.schema), tables.map((t) => t.name)],
  );
  return r.rows.map((row) => ({
    lsn: row.lsn,
    shape: row.shape === null ? null : JSON.stringify(JSON.parse(row.shape)),
  }));
}
