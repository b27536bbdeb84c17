/**
 * MySQL / MariaDB types to lake (DuckDB) types, the SQL that selects each column, and how a
 * value read over the text protocol becomes CSV text DuckDB reads exactly.
 *
 * Values arrive as the server's text (the connection's typeCast never parses numbers or dates)
 * or as bytes for binary strings. Choices:
 * - tinyint(1) (MySQL's BOOL/BOOLEAN) → BOOLEAN: 0 is false, any other value true, as in
 *   MySQL conditions. Other tinyints stay TINYINT.
 * - unsigned integers widen to the next signed type (tinyint unsigned → SMALLINT,
 *   smallint unsigned → INTEGER, int unsigned → BIGINT); bigint unsigned → UBIGINT;
 *   mediumint (signed or not) → INTEGER.
 * - decimal(p,s) → DECIMAL(p,s) up to p = 38 (DuckDB's limit), else VARCHAR with the exact text.
 * - float → FLOAT, selected as `col + 0e0`: the server prints FLOAT with 6 digits, the double
 *   it converts to prints every digit, and DuckDB rounds that back to the same float.
 * - double → DOUBLE (the server prints the shortest text that round-trips).
 * - date → DATE, datetime → TIMESTAMP (as stored, no zone), timestamp → TIMESTAMPTZ (read in a
 *   +00:00 session, written with +00). Zero dates ('0000-00-00', or a zero month or day, which
 *   lax sql_modes store) have no DuckDB value: they become NULL instead of a rejected row.
 * - time → VARCHAR ('838:59:59', '-01:00:00.000': MySQL TIME is a duration up to ±839 hours).
 * - year → SMALLINT; bit(n) → UBIGINT (selected as CAST(col AS UNSIGNED)).
 * - json (MySQL) and MariaDB's JSON alias (longtext with a json_valid check) → JSON.
 * - char, varchar, text, enum, set → VARCHAR; binary, varbinary, blob → BLOB.
 * - MariaDB uuid → UUID; inet4/inet6 → VARCHAR; spatial types → VARCHAR as WKT (ST_AsText).
 * - Anything else → VARCHAR.
 */
import { DipError } from '../../core/errors.js';
import { blobText } from '../database/csv.js';
import type { DbColumn } from '../database/types.js';
import { decimalOrText } from '../../lake/duck-types.js';

/** A value as the connection returns it: server text, bytes for binary strings, or NULL. */
export type MysqlValue = string | Buffer | null;

export function quoteIdent(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}

export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

const SPATIAL = new Set([
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geometrycollection',
  'geomcollection',
]);
const BINARY = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);
const INTEGERS = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const DECIMALS = new Set(['decimal', 'numeric', 'fixed', 'dec']);
const FLOATS = new Set(['float', 'double', 'real']);

/** The base type of a column type: `bigint(20) unsigned` → bigint, `double precision` → double. */
export function baseType(sourceType: string): string {
  return (/^[a-z0-9]+/i.exec(sourceType.trim())?.[0] ?? '').toLowerCase();
}

const isUnsigned = (sourceType: string) => /\bunsigned\b/i.test(sourceType);

/** DECIMAL(p,s) for p ≤ 38; exact text otherwise. `decimal` alone is decimal(10,0). */
function decimalType(sourceType: string): string {
  const m = /\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)/.exec(sourceType);
  const precision = m ? Number(m[1]) : 10;
  const scale = m?.[2] !== undefined ? Number(m[2]) : 0;
  return decimalOrText(precision, scale);
}

/**
 * The lake type of a column, from its COLUMN_TYPE (`int(11) unsigned`, `decimal(12,2)`,
 * `tinyint(1)`, `json`). MariaDB's JSON columns are described as `json` by the catalog.
 */
export function lakeType(sourceType: string): string {
  const base = baseType(sourceType);
  const unsigned = isUnsigned(sourceType);
  switch (base) {
    case 'tinyint':
      if (unsigned) return 'SMALLINT';
      return /^tinyint\s*\(\s*1\s*\)/i.test(sourceType) ? 'BOOLEAN' : 'TINYINT';
    case 'bool':
    case 'boolean':
      return 'BOOLEAN';
    case 'smallint':
      return unsigned ? 'INTEGER' : 'SMALLINT';
    case 'mediumint':
      return 'INTEGER';
    case 'int':
    case 'integer':
      return unsigned ? 'BIGINT' : 'INTEGER';
    case 'bigint':
      return unsigned ? 'UBIGINT' : 'BIGINT';
    case 'float':
      return 'FLOAT';
    case 'double':
    case 'real':
      return 'DOUBLE';
    case 'json':
      return 'JSON';
    case 'date':
      return 'DATE';
    case 'datetime':
      return 'TIMESTAMP';
    case 'timestamp':
      return 'TIMESTAMPTZ';
    case 'year':
      return 'SMALLINT';
    case 'bit':
      return 'UBIGINT';
    case 'uuid':
      return 'UUID';
  }
  if (DECIMALS.has(base)) return decimalType(sourceType);
  if (BINARY.has(base)) return 'BLOB';
  return 'VARCHAR';
}

/** The SQL selecting a column so its text is what `lakeType` reads exactly. */
export function selectExpression(column: string, sourceType: string): string {
  const c = quoteIdent(column);
  const base = baseType(sourceType);
  if (base === 'float') return `(${c} + 0e0)`;
  if (base === 'bit') return `CAST(${c} AS UNSIGNED)`;
  if (SPATIAL.has(base)) return `ST_AsText(${c})`;
  return c;
}

export function toColumn(name: string, sourceType: string): DbColumn {
  return { name, sourceType, lakeType: lakeType(sourceType), select: selectExpression(name, sourceType) };
}

const ZERO_DATE = /^\d{4}-(?:00|\d\d-00)/;

const asText = (v: string | Buffer): string => (typeof v === 'string' ? v : v.toString('utf8'));

/** Turns a value of the column into its CSV text (null = NULL) for the column's lake type. */
export function valueRenderer(column: DbColumn): (value: MysqlValue) => string | null {
  switch (column.lakeType) {
    case 'BLOB':
      return (v) => (v === null ? null : blobText(typeof v === 'string' ? Buffer.from(v, 'utf8') : v));
    case 'BOOLEAN':
      return (v) => (v === null ? null : Number(asText(v)) === 0 ? 'false' : 'true');
    case 'DATE':
    case 'TIMESTAMP':
      return (v) => (v === null || ZERO_DATE.test(asText(v)) ? null : asText(v));
    case 'TIMESTAMPTZ':
      return (v) => (v === null || ZERO_DATE.test(asText(v)) ? null : `${asText(v)}+00`);
    default:
      return (v) => (v === null ? null : asText(v));
  }
}

/**
 * A value as the binlog decoder gives it (cdc/binlog.ts: text for decimals, dates and times,
 * numbers for integers and floats, bytes for binary strings and BIT) in the form the text
 * protocol gives the same value: the change stream then renders it with `valueRenderer`, like
 * the snapshot. BIT, which the snapshot selects as CAST(col AS UNSIGNED), becomes that number.
 */
export function binlogValue(value: unknown, bit = false): MysqlValue {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value))
    return bit ? (value.length ? BigInt(`0x${value.toString('hex')}`).toString() : '0') : value;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? '1' : '0';
  return JSON.stringify(value);
}

/**
 * Turns a binlog value of the column into change-event text: exactly the snapshot's CSV text,
 * except binary values, which travel as hex (readable in the raw zone's envelopes) and become
 * BLOB text through `binlogConverter`.
 */
export function binlogRenderer(column: DbColumn): (value: unknown) => string | null {
  if (column.lakeType === 'BLOB') {
    return (v) =>
      v === null || v === undefined ? null : (Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'utf8')).toString('hex');
  }
  const render = valueRenderer(column);
  const bit = baseType(column.sourceType) === 'bit';
  return (v) => render(binlogValue(v, bit));
}

/** The conversion of change-event text to the snapshot's CSV text (hex → BLOB text), if any. */
export function binlogConverter(column: DbColumn): ((text: string) => string) | undefined {
  return column.lakeType === 'BLOB' ? (hex) => blobText(Buffer.from(hex, 'hex')) : undefined;
}

/** A key or cursor value as it is kept in stream state: the server's text, hex for bytes. */
export function stateValue(value: MysqlValue): string | null {
  if (value === null) return null;
  return typeof value === 'string' ? value : value.toString('hex');
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;
const HEX = /^(?:[0-9a-f]{2})*$/i;

/**
 * A state value as a SQL literal compared against the column: numbers unquoted (a quoted
 * number would be compared as a double, losing bigint and decimal digits), bytes as X'…',
 * everything else a string literal the server converts to the column's type.
 */
export function keyLiteral(column: DbColumn, value: string | null, escapeString: (text: string) => string): string {
  if (value === null) return 'NULL';
  const base = baseType(column.sourceType);
  if (
    INTEGERS.has(base) ||
    DECIMALS.has(base) ||
    FLOATS.has(base) ||
    base === 'bit' ||
    base === 'year' ||
    base === 'bool' ||
    base === 'boolean'
  ) {
    if (!NUMBER.test(value))
      throw new DipError(
        'config',
        `${column.name}: the saved position ${JSON.stringify(value)} is not a number; reset the stream's state (dip state reset)`,
      );
    return value;
  }
  if (BINARY.has(base)) {
    if (!HEX.test(value))
      throw new DipError(
        'config',
        `${column.name}: the saved position ${JSON.stringify(value)} is not hex; reset the stream's state (dip state reset)`,
      );
    return `X'${value}'`;
  }
  return escapeString(value);
}
