/**
 * PostgreSQL types to lake (DuckDB) types, and the SQL that renders each column as text DuckDB
 * reads exactly: numerics keep their precision (DECIMAL up to 38 digits, text beyond), times
 * keep microseconds and zones (UTC sessions), json stays JSON, arrays become LISTs, bytea BLOB.
 */
import { ident } from '../../lake/sql.js';
import { decimalOrText } from '../../lake/duck-types.js';

export interface PgTypeInfo {
  /** format_type(): numeric(12,2), timestamp with time zone, integer[] */
  formatted: string;
  /** pg_type.typname of the column's type (of the base type for domains); _int4 for arrays */
  typname: string;
  /** pg_type.typname of the array element type, for arrays */
  element?: string | null | undefined;
  /** pg_type.typtype: b base, e enum, d domain, c composite, r range */
  typtype: string;
}

const SCALARS: Record<string, string> = {
  bool: 'BOOLEAN',
  int2: 'SMALLINT',
  int4: 'INTEGER',
  int8: 'BIGINT',
  oid: 'BIGINT',
  float4: 'FLOAT',
  float8: 'DOUBLE',
  text: 'VARCHAR',
  varchar: 'VARCHAR',
  bpchar: 'VARCHAR',
  name: 'VARCHAR',
  char: 'VARCHAR',
  citext: 'VARCHAR',
  uuid: 'UUID',
  json: 'JSON',
  jsonb: 'JSON',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
  timestamptz: 'TIMESTAMPTZ',
  time: 'TIME',
  timetz: 'TIMETZ',
  interval: 'INTERVAL',
  bytea: 'BLOB',
};

/** Element types whose array_to_json text DuckDB casts to a LIST of the element's lake type. */
const LIST_ELEMENTS = new Set([
  'bool',
  'int2',
  'int4',
  'int8',
  'float4',
  'float8',
  'numeric',
  'text',
  'varchar',
  'bpchar',
  'uuid',
  'date',
  'timestamp',
  'timestamptz',
]);

/** DECIMAL(p,s) for numeric(p,s) with p ≤ 38 (DuckDB's limit); exact text otherwise. */
function numericType(formatted: string): string {
  const m = /^numeric\((\d+),(\d+)\)/.exec(formatted);
  return m ? decimalOrText(Number(m[1]), Number(m[2])) : 'VARCHAR';
}

export function lakeType(t: PgTypeInfo): string {
  if (t.typname.startsWith('_') && t.element) {
    if (!LIST_ELEMENTS.has(t.element)) return 'JSON';
    const element =
      t.element === 'numeric' ? numericType(t.formatted.replace(/\[\]$/, '')) : (SCALARS[t.element] as string);
    return `${element}[]`;
  }
  if (t.typname === 'numeric') return numericType(t.formatted);
  return SCALARS[t.typname] ?? 'VARCHAR';
}

/** The column as text in the form DuckDB reads as its lake type. */
export function selectExpression(column: string, t: PgTypeInfo): string {
  const c = ident(column);
  if (t.typname.startsWith('_') && t.element) return `array_to_json(${c})::text`;
  // DuckDB reads BLOB text as \xHH escapes, one per byte.
  if (t.typname === 'bytea') return `regexp_replace(encode(${c}, 'hex'), '(..)', '\\\\x\\1', 'g')`;
  return c;
}
