/**
 * What a MySQL or MariaDB database holds, read from information_schema: tables and views,
 * columns with their declared types, primary keys. Query columns are described from the
 * result metadata of the query run with LIMIT 0 (no extra privileges needed).
 */
import type { FieldPacket } from 'mysql2';
import { ConfigError } from '../../core/errors.js';
import type { DbIntrospector, DbColumn, DbTable } from '../database/types.js';
import type { MysqlConnection } from './connection.js';
import { toColumn, type MysqlValue } from './types.js';

const text = (v: MysqlValue | undefined): string =>
  v === null || v === undefined ? '' : typeof v === 'string' ? v : v.toString('utf8');

// Protocol column types (include/mysql_com.h: enum_field_types).
const T = {
  DECIMAL: 0,
  TINY: 1,
  SHORT: 2,
  LONG: 3,
  FLOAT: 4,
  DOUBLE: 5,
  TIMESTAMP: 7,
  LONGLONG: 8,
  INT24: 9,
  DATE: 10,
  TIME: 11,
  DATETIME: 12,
  YEAR: 13,
  NEWDATE: 14,
  BIT: 16,
  JSON: 245,
  NEWDECIMAL: 246,
  GEOMETRY: 255,
} as const;
const UNSIGNED_FLAG = 32;
const BINARY_CHARSET = 63;

/** A column type as information_schema would spell it, from a result column's metadata. */
export function typeOfField(f: FieldPacket): string {
  const flags = typeof f.flags === 'number' ? f.flags : 0;
  const unsigned = (flags & UNSIGNED_FLAG) !== 0 ? ' unsigned' : '';
  const length = f.columnLength ?? 0;
  const decimals = f.decimals;
  const fraction = decimals > 0 && decimals <= 6 ? `(${decimals})` : '';
  if (f.extendedFormat === 'json') return 'json';
  if (f.extendedTypeName === 'uuid') return 'uuid';
  if (f.extendedTypeName === 'inet4' || f.extendedTypeName === 'inet6') return f.extendedTypeName;
  switch (f.columnType) {
    case T.DECIMAL:
    case T.NEWDECIMAL: {
      // columnLength counts the sign and the decimal point.
      const precision = length - (decimals > 0 ? 1 : 0) - (unsigned ? 0 : 1);
      return `decimal(${Math.max(precision, 1)},${decimals})${unsigned}`;
    }
    case T.TINY:
      return length === 1 && !unsigned ? 'tinyint(1)' : `tinyint${unsigned}`;
    case T.SHORT:
      return `smallint${unsigned}`;
    case T.INT24:
      return `mediumint${unsigned}`;
    case T.LONG:
      return `int${unsigned}`;
    case T.LONGLONG:
      return `bigint${unsigned}`;
    case T.FLOAT:
      return 'float';
    case T.DOUBLE:
      return 'double';
    case T.DATE:
    case T.NEWDATE:
      return 'date';
    case T.DATETIME:
      return `datetime${fraction}`;
    case T.TIMESTAMP:
      return `timestamp${fraction}`;
    case T.TIME:
      return `time${fraction}`;
    case T.YEAR:
      return 'year';
    case T.BIT:
      return `bit(${length})`;
    case T.JSON:
      return 'json';
    case T.GEOMETRY:
      return 'geometry';
    default:
      return f.characterSet === BINARY_CHARSET ? 'longblob' : 'longtext';
  }
}

export class MysqlIntrospector implements DbIntrospector {
  constructor(private readonly conn: MysqlConnection) {}

  private lit(value: string): string {
    return this.conn.escape(value);
  }

  async defaultSchema(): Promise<string> {
    const rows = await this.conn.records('SELECT DATABASE() AS s');
    const schema = text(rows[0]?.['s']);
    if (!schema)
      throw new ConfigError(
        `${this.conn.label}: no database selected; set connection.database (or a database in the url), or the source's schema`,
      );
    return schema;
  }

  async listTables(schema: string): Promise<string[]> {
    const rows = await this.conn.records(
      `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${this.lit(schema)}`,
    );
    // Sorted by code point, not by the server's case-insensitive collation.
    return rows.map((r) => text(r['name'])).sort();
  }

  async describeTable(schema: string, name: string): Promise<DbTable | undefined> {
    const where = `TABLE_SCHEMA = ${this.lit(schema)} AND TABLE_NAME = ${this.lit(name)}`;
    const found = await this.conn.records(`SELECT TABLE_TYPE AS kind FROM information_schema.TABLES WHERE ${where}`);
    if (found.length === 0) return undefined;
    const columns = await this.conn.records(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE ${where} ORDER BY ORDINAL_POSITION`,
    );
    const key = await this.conn.records(
      `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS WHERE ${where} AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
    );
    const json = await this.jsonColumns(schema, name);
    return {
      schema,
      name,
      columns: columns.map((c) => {
        const column = text(c['name']);
        return toColumn(column, json.has(column) ? 'json' : text(c['type']).toLowerCase());
      }),
      primaryKey: key.map((k) => text(k['name'])),
      // Chunks are read by primary-key ranges, not by physical position.
      splittable: false,
    };
  }

  /** MariaDB's JSON is LONGTEXT with a json_valid(col) check; MySQL's has its own type. */
  private async jsonColumns(schema: string, name: string): Promise<Set<string>> {
    try {
      const rows = await this.conn.records(
        `SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS
         WHERE CONSTRAINT_SCHEMA = ${this.lit(schema)} AND TABLE_NAME = ${this.lit(name)}`,
      );
      const columns = new Set<string>();
      for (const r of rows) {
        const m = /^json_valid\(`((?:[^`]|``)+)`\)$/i.exec(text(r['clause']).trim());
        if (m?.[1]) columns.add(m[1].replaceAll('``', '`'));
      }
      return columns;
    } catch {
      return new Set(); // MySQL: no TABLE_NAME in CHECK_CONSTRAINTS (and a JSON type of its own)
    }
  }

  async describeQuery(sql: string): Promise<DbColumn[]> {
    const { fields } = await this.conn.query(`SELECT * FROM (${sql}) AS q LIMIT 0`);
    return fields.map((f) => toColumn(f.name, typeOfField(f)));
  }
}
