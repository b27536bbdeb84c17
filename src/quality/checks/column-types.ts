/** DuckDB column types as the checks see them: their kind, and whether a column satisfies an expected type. */
export type TypeKind = 'numeric' | 'temporal' | 'text' | 'boolean' | 'other';

const NUMERIC = new Set([
  'TINYINT',
  'SMALLINT',
  'INTEGER',
  'INT',
  'BIGINT',
  'HUGEINT',
  'UTINYINT',
  'USMALLINT',
  'UINTEGER',
  'UBIGINT',
  'UHUGEINT',
  'INT1',
  'INT2',
  'INT4',
  'INT8',
  'SHORT',
  'LONG',
  'SIGNED',
  'FLOAT',
  'FLOAT4',
  'FLOAT8',
  'REAL',
  'DOUBLE',
  'DECIMAL',
  'NUMERIC',
  'VARINT',
  'BIGNUM',
]);
/** Types freshness accepts (a point in time). */
export const INSTANT = new Set([
  'DATE',
  'TIMESTAMP',
  'DATETIME',
  'TIMESTAMPTZ',
  'TIMESTAMP WITH TIME ZONE',
  'TIMESTAMP_S',
  'TIMESTAMP_MS',
  'TIMESTAMP_NS',
]);
const TEXT = new Set(['VARCHAR', 'TEXT', 'STRING', 'CHAR', 'BPCHAR', 'NVARCHAR']);

/** `DECIMAL(12, 2)` → { base: 'DECIMAL', params: '12,2' }; nested types keep everything in base. */
export function splitType(type: string): { base: string; params: string } {
  const t = type.trim().toUpperCase().replace(/\s+/g, ' ');
  const m = /^([A-Z_][A-Z0-9_ ]*?)\s*\(([^()]*)\)$/.exec(t);
  if (m) return { base: m[1] as string, params: (m[2] as string).replace(/\s+/g, '') };
  return { base: t, params: '' };
}

export function typeKind(type: string): TypeKind {
  const { base } = splitType(type);
  if (NUMERIC.has(base)) return 'numeric';
  if (INSTANT.has(base) || base === 'TIME' || base === 'TIMETZ') return 'temporal';
  if (TEXT.has(base)) return 'text';
  if (base === 'BOOLEAN' || base === 'BOOL' || base === 'LOGICAL') return 'boolean';
  return 'other';
}

const TYPE_ALIASES: Record<string, string> = {
  INT: 'INTEGER',
  INT4: 'INTEGER',
  SIGNED: 'INTEGER',
  INT8: 'BIGINT',
  LONG: 'BIGINT',
  INT2: 'SMALLINT',
  SHORT: 'SMALLINT',
  INT1: 'TINYINT',
  FLOAT4: 'FLOAT',
  REAL: 'FLOAT',
  FLOAT8: 'DOUBLE',
  NUMERIC: 'DECIMAL',
  TEXT: 'VARCHAR',
  STRING: 'VARCHAR',
  CHAR: 'VARCHAR',
  BPCHAR: 'VARCHAR',
  NVARCHAR: 'VARCHAR',
  BOOL: 'BOOLEAN',
  LOGICAL: 'BOOLEAN',
  DATETIME: 'TIMESTAMP',
  'TIMESTAMP WITHOUT TIME ZONE': 'TIMESTAMP',
  'TIMESTAMP WITH TIME ZONE': 'TIMESTAMPTZ',
  'TIME WITH TIME ZONE': 'TIMETZ',
  'TIME WITHOUT TIME ZONE': 'TIME',
  BYTEA: 'BLOB',
  BINARY: 'BLOB',
  VARBINARY: 'BLOB',
  BIGNUM: 'VARINT',
};

/**
 * Whether a column of DuckDB type `actual` satisfies the `expected` type of a schema check:
 * names are case-insensitive and aliases agree (INT = INTEGER, TEXT = VARCHAR, TIMESTAMP WITH
 * TIME ZONE = TIMESTAMPTZ, …); VARCHAR(n) is VARCHAR; DECIMAL without precision matches any
 * DECIMAL(p,s); `any` matches everything.
 */
export function typeMatches(expected: string, actual: string): boolean {
  if (expected.trim().toLowerCase() === 'any') return true;
  const e = splitType(expected);
  const a = splitType(actual);
  const eb = TYPE_ALIASES[e.base] ?? e.base;
  const ab = TYPE_ALIASES[a.base] ?? a.base;
  if (eb !== ab) return false;
  if (eb === 'VARCHAR' || eb === 'BLOB') return true;
  if (eb === 'DECIMAL' && e.params === '') return true;
  return e.params === a.params;
}
