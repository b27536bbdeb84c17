/**
 * A table's shape as the binlog needs it: every column in ordinal order with the type, character
 * set and collation the decoder reads row images by. Row images carry no column names, and
 * information_schema only knows the table as it is now; a stream therefore keeps the shape its
 * table had at the position it has read to (in its state), and changes it only at the DDL
 * statement in the binlog that changed the table.
 */
import type { DbColumn } from '../../database/types.js';
import type { MysqlConnection } from '../connection.js';
import { toColumn, type MysqlValue } from '../types.js';
import type { RawColumnSchema } from './binlog.js';
import type { ShapeColumn } from './position.js';

const text = (v: MysqlValue | undefined): string | null =>
  v === null || v === undefined ? null : typeof v === 'string' ? v : v.toString('utf8');

/** The table's columns now, in order (empty when there is no such table). */
export async function tableShape(conn: MysqlConnection, schema: string, table: string): Promise<ShapeColumn[]> {
  const rows = await conn.records(
    `SELECT COLUMN_NAME AS n, COLUMN_TYPE AS t, CHARACTER_SET_NAME AS c, COLLATION_NAME AS k FROM information_schema.COLUMNS
     WHERE TABLE_SCHEMA = ${conn.escape(schema)} AND TABLE_NAME = ${conn.escape(table)} ORDER BY ORDINAL_POSITION`,
  );
  return rows.map((r) => [text(r['n']) ?? '', text(r['t']) ?? '', text(r['c']), text(r['k'])]);
}

/** The shape as the binlog library reads column names and types. */
export function rawSchemas(shape: readonly ShapeColumn[]): RawColumnSchema[] {
  return shape.map(([name, type, charset, collation]) => ({
    COLUMN_NAME: name,
    COLUMN_TYPE: type,
    CHARACTER_SET_NAME: charset,
    COLLATION_NAME: collation,
    COLUMN_COMMENT: '',
  }));
}

export function sameShape(a: readonly ShapeColumn[], b: readonly ShapeColumn[]): boolean {
  return a.length === b.length && a.every((c, i) => JSON.stringify(c) === JSON.stringify(b[i]));
}

/**
 * A shape's columns as the stream reads them: the described column where it has the same type
 * (which knows MariaDB's JSON columns), else one typed from the shape's COLUMN_TYPE.
 */
export function shapeColumns(shape: readonly ShapeColumn[], described: readonly DbColumn[]): DbColumn[] {
  return shape.map(([name, type]) => {
    const d = described.find((c) => c.name === name);
    const sourceType = type.toLowerCase();
    return d && (d.sourceType === sourceType || (d.sourceType === 'json' && sourceType === 'longtext'))
      ? d
      : toColumn(name, sourceType);
  });
}
