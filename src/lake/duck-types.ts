/**
 * Over 400 lines: this is the one place that knows DuckDB types (issue 13); the parts use each other.
 *
 * DuckDB type knowledge, in one module:
 * - parsing: type strings (as DESCRIBE prints them) parsed into a tree and rendered back:
 *   `STRUCT(id BIGINT, "display Name" VARCHAR, geo STRUCT(lat DOUBLE, lng DOUBLE))`,
 *   `STRUCT(url VARCHAR, kind VARCHAR)[]`, `INTEGER[3]`, `MAP(VARCHAR, JSON)`, `DECIMAL(18,3)`.
 *   ENUM(...) and UNION(...) are kept as scalars (their full text is the name);
 * - classifying: canonical names and kinds of declared types (aliases: INT, TEXT, NUMERIC(p,s),
 *   …), coarse kinds for checks, whether a schema check's expected type matches a column;
 * - widening: the narrowest type two types can both be stored as, and which casts cannot fail.
 */
import { ConfigError } from '../core/errors.js';
import { ident } from './sql.js';

export type DuckType =
  | { kind: 'struct'; fields: { name: string; type: DuckType }[] }
  /** `size` is set for fixed-size arrays (`INTEGER[3]`). */
  | { kind: 'list'; element: DuckType; size?: number }
  | { kind: 'map'; key: DuckType; value: DuckType }
  | { kind: 'scalar'; name: string };

/**
 * The text each parsed node came from, so rendering a parsed type gives back DuckDB's own spelling
 * (it quotes field names that are keywords, which cannot be decided without its keyword list).
 * Types built by hand render with every field name quoted.
 */
const sourceText = new WeakMap<DuckType, string>();
/** How each parsed struct field's name was written (quoted or not). */
const nameSpelling = new WeakMap<object, string>();

export type StructField = { name: string; type: DuckType };

/** A struct field with another type, keeping how its name was written. */
export function withFieldType(field: StructField, type: DuckType): StructField {
  if (type === field.type) return field;
  const out = { name: field.name, type };
  const spelled = nameSpelling.get(field);
  if (spelled !== undefined) nameSpelling.set(out, spelled);
  return out;
}

class Parser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(expected: string): never {
    throw new ConfigError(
      `invalid DuckDB type ${JSON.stringify(this.text)}: expected ${expected} at position ${this.pos}`,
    );
  }

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] ?? '')) this.pos++;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  expect(ch: string): void {
    this.skipSpace();
    if (this.peek() !== ch) this.fail(`'${ch}'`);
    this.pos++;
  }

  /** A type followed by any number of `[]` / `[n]` suffixes. */
  type(): DuckType {
    this.skipSpace();
    const start = this.pos;
    let t = this.base();
    sourceText.set(t, this.text.slice(start, this.pos).trim());
    for (;;) {
      this.skipSpace();
      if (this.peek() !== '[') break;
      this.pos++;
      const m = /^\s*(\d*)\s*\]/.exec(this.text.slice(this.pos));
      if (!m) this.fail("']' or an array size");
      this.pos += m[0].length;
      t = m[1] ? { kind: 'list', element: t, size: Number(m[1]) } : { kind: 'list', element: t };
      sourceText.set(t, this.text.slice(start, this.pos).trim());
    }
    return t;
  }

  base(): DuckType {
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.pos))?.[0];
    if (!word) this.fail('a type name');
    const upper = word.toUpperCase();
    const after = this.text.slice(this.pos + word.length);
    const opensParen = /^\s*\(/.test(after);
    if (upper === 'STRUCT' && opensParen) {
      this.pos += word.length;
      this.expect('(');
      const fields: { name: string; type: DuckType }[] = [];
      this.skipSpace();
      if (this.peek() === ')') this.fail('a struct field');
      for (;;) {
        this.skipSpace();
        const nameStart = this.pos;
        const name = this.fieldName();
        const spelled = this.text.slice(nameStart, this.pos);
        const type = this.type();
        const field = { name, type };
        nameSpelling.set(field, spelled);
        fields.push(field);
        this.skipSpace();
        if (this.peek() === ',') {
          this.pos++;
          continue;
        }
        this.expect(')');
        return { kind: 'struct', fields };
      }
    }
    if (upper === 'MAP' && opensParen) {
      this.pos += word.length;
      this.expect('(');
      const key = this.type();
      this.expect(',');
      const value = this.type();
      this.expect(')');
      return { kind: 'map', key, value };
    }
    // A scalar: everything up to a top-level ',', ')' or '[' — multi-word names
    // (TIMESTAMP WITH TIME ZONE) and parenthesised arguments (DECIMAL(18,3), ENUM('a', 'b')).
    const start = this.pos;
    let depth = 0;
    while (this.pos < this.text.length) {
      const ch = this.peek();
      if (ch === "'" || ch === '"') {
        this.quoted(ch);
        continue;
      }
      if (ch === '(') depth++;
      else if (ch === ')') {
        if (depth === 0) break;
        depth--;
      } else if (depth === 0 && (ch === ',' || ch === '[')) break;
      this.pos++;
    }
    if (depth !== 0) this.fail("')'");
    const name = this.text.slice(start, this.pos).trim().replace(/\s+/g, ' ');
    if (name === '') this.fail('a type name');
    return { kind: 'scalar', name };
  }

  /** Skips a quoted string or identifier ('' / "" escape the quote). */
  quoted(q: string): string {
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) this.fail(`closing ${q}`);
      const ch = this.peek();
      this.pos++;
      if (ch === q) {
        if (this.peek() === q) {
          out += q;
          this.pos++;
          continue;
        }
        return out;
      }
      out += ch;
    }
  }

  fieldName(): string {
    this.skipSpace();
    if (this.peek() === '"') return this.quoted('"');
    const m = /^[^\s"(),[\]]+/.exec(this.text.slice(this.pos));
    if (!m) this.fail('a field name');
    this.pos += m[0].length;
    return m[0];
  }
}

/** Parses a DuckDB type string; throws ConfigError when it is not one. */
export function parseDuckType(text: string): DuckType {
  const p = new Parser(text);
  const t = p.type();
  p.skipSpace();
  if (p.pos !== text.length) p.fail('end of type');
  return t;
}

/** The DuckDB spelling of a type: a parsed type renders as it was written. */
export function renderDuckType(t: DuckType): string {
  const known = sourceText.get(t);
  if (known !== undefined) return known;
  switch (t.kind) {
    case 'scalar':
      return t.name;
    case 'list':
      return `${renderDuckType(t.element)}[${t.size ?? ''}]`;
    case 'map':
      return `MAP(${renderDuckType(t.key)}, ${renderDuckType(t.value)})`;
    case 'struct':
      return `STRUCT(${t.fields.map((f) => `${nameSpelling.get(f) ?? ident(f.name)} ${renderDuckType(f.type)}`).join(', ')})`;
  }
}

/** The scalar's base name, upper-cased, without arguments: DECIMAL(18,3) → DECIMAL. */
export function scalarBase(t: DuckType): string | undefined {
  if (t.kind !== 'scalar') return undefined;
  return t.name.replace(/\(.*$/s, '').trim().toUpperCase();
}

export function isJsonType(t: DuckType): boolean {
  return scalarBase(t) === 'JSON';
}

// ---------------------------------------------------------------------------------------------
// Declared types: canonical names and kinds

/** What a declared type is, for standardization: which conversions apply. */
export type TypeKind =
  | 'text'
  | 'json'
  | 'integer'
  | 'float'
  | 'decimal'
  | 'boolean'
  | 'date'
  | 'time'
  | 'timestamp'
  | 'timestamptz'
  | 'other';

export interface TypeInfo {
  /** DuckDB's name of the type (what DESCRIBE shows). */
  type: string;
  kind: TypeKind;
}

export const TS_TZ = 'TIMESTAMP WITH TIME ZONE';

/** Every type name and alias a user may declare, upper-case → its canonical type and kind. */
export const KNOWN_TYPES: Record<string, TypeInfo> = {};
function alias(type: string, kind: TypeKind, ...names: string[]): void {
  for (const n of [type, ...names]) KNOWN_TYPES[n] = { type, kind };
}
alias('VARCHAR', 'text', 'TEXT', 'STRING', 'CHAR', 'BPCHAR', 'NVARCHAR', 'CHARACTER VARYING', 'CHARACTER');
alias('JSON', 'json');
alias('TINYINT', 'integer', 'INT1');
alias('SMALLINT', 'integer', 'INT2', 'SHORT', 'INT16');
alias('INTEGER', 'integer', 'INT', 'INT4', 'SIGNED', 'INT32');
alias('BIGINT', 'integer', 'INT8', 'LONG', 'INT64');
alias('HUGEINT', 'integer', 'INT128');
alias('UTINYINT', 'integer', 'UINT8');
alias('USMALLINT', 'integer', 'UINT16');
alias('UINTEGER', 'integer', 'UINT32');
alias('UBIGINT', 'integer', 'UINT64');
alias('UHUGEINT', 'integer', 'UINT128');
alias('FLOAT', 'float', 'FLOAT4', 'REAL');
alias('DOUBLE', 'float', 'FLOAT8', 'DOUBLE PRECISION');
alias('BOOLEAN', 'boolean', 'BOOL', 'LOGICAL');
alias('DATE', 'date');
alias('TIME', 'time');
alias('TIMESTAMP', 'timestamp', 'DATETIME', 'TIMESTAMP WITHOUT TIME ZONE', 'TIMESTAMP_US');
alias('TIMESTAMP_S', 'timestamp');
alias('TIMESTAMP_MS', 'timestamp');
alias('TIMESTAMP_NS', 'timestamp');
alias(TS_TZ, 'timestamptz', 'TIMESTAMPTZ');

/** Integer widths, for casts that cannot fail (a narrower integer into a wider one). */
const INT_RANK: Record<string, number> = { TINYINT: 1, SMALLINT: 2, INTEGER: 3, BIGINT: 4, HUGEINT: 5 };

/** Canonical DuckDB type and its kind, from a type as DESCRIBE prints it or as a user declares it. */
export function typeInfo(text: string): TypeInfo {
  const norm = text.trim().replace(/\s+/g, ' ').toUpperCase();
  const known = KNOWN_TYPES[norm];
  if (known) return known;
  const m = /^(DECIMAL|NUMERIC)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$/.exec(norm);
  if (m) return { type: `DECIMAL(${m[2] ?? 18},${m[2] === undefined ? 3 : (m[3] ?? 0)})`, kind: 'decimal' };
  if (/^(VARCHAR|CHAR|CHARACTER VARYING|CHARACTER)\s*\(\s*\d+\s*\)$/.test(norm))
    return { type: 'VARCHAR', kind: 'text' };
  return { type: text.trim().replace(/\s+/g, ' '), kind: 'other' };
}

export const NUMERIC_KINDS: ReadonlySet<TypeKind> = new Set(['integer', 'float', 'decimal']);
export const TEMPORAL_KINDS: ReadonlySet<TypeKind> = new Set(['date', 'time', 'timestamp', 'timestamptz']);

/** Casts between these types never fail, so they need no quarantine condition. */
export function castCannotFail(from: TypeInfo, to: TypeInfo): boolean {
  if (from.type === to.type) return true;
  if (to.kind === 'text') return true;
  if (from.kind === 'integer' && to.kind === 'integer') {
    const a = INT_RANK[from.type];
    const b = INT_RANK[to.type];
    return a !== undefined && b !== undefined && a <= b;
  }
  if ((from.kind === 'integer' || from.kind === 'float' || from.kind === 'decimal') && to.type === 'DOUBLE')
    return true;
  if (from.type === 'FLOAT' && to.type === 'DOUBLE') return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Column types, coarsely, and schema checks

/** A column's type, coarsely: which quality checks and renderings apply. */
export type CoarseKind = 'numeric' | 'temporal' | 'text' | 'boolean' | 'other';

const NUMERIC = new Set(
  'TINYINT SMALLINT INTEGER INT BIGINT HUGEINT UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT INT1 INT2 INT4 INT8 SHORT LONG SIGNED FLOAT FLOAT4 FLOAT8 REAL DOUBLE DECIMAL NUMERIC VARINT BIGNUM'.split(
    ' ',
  ),
);
/** Types freshness accepts (a point in time). */
export const INSTANT_TYPES: ReadonlySet<string> = new Set([
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

export function coarseKind(type: string): CoarseKind {
  const { base } = splitType(type);
  if (NUMERIC.has(base)) return 'numeric';
  if (INSTANT_TYPES.has(base) || base === 'TIME' || base === 'TIMETZ') return 'temporal';
  if (TEXT.has(base)) return 'text';
  if (base === 'BOOLEAN' || base === 'BOOL' || base === 'LOGICAL') return 'boolean';
  return 'other';
}

/** Aliases a schema check's expected type may use. */
const MATCH_ALIASES: Record<string, string> = {
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
  const eb = MATCH_ALIASES[e.base] ?? e.base;
  const ab = MATCH_ALIASES[a.base] ?? a.base;
  if (eb !== ab) return false;
  if (eb === 'VARCHAR' || eb === 'BLOB') return true;
  if (eb === 'DECIMAL' && e.params === '') return true;
  return e.params === a.params;
}

/** A text column (PII detection samples every text column for every kind). */
export function isTextType(type: string): boolean {
  const t = type.trim().toUpperCase();
  return t === 'VARCHAR' || t.startsWith('VARCHAR(') || t === 'TEXT' || t === 'STRING';
}

/** A whole-number column wide enough to hold a card number written as a number. */
export function isWholeNumberType(type: string): boolean {
  const t = type.trim().toUpperCase();
  return t === 'BIGINT' || t === 'UBIGINT' || t === 'HUGEINT' || t === 'UHUGEINT' || /^DECIMAL\(\d+,\s*0\)$/.test(t);
}

const PLAIN_SCALAR =
  /^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL\(.*\)|DATE|TIME|TIMESTAMP.*|UUID|VARCHAR)$/;

/** A scalar DuckDB type (as DESCRIBE prints it) whose text form casts back to it exactly. */
export function isPlainScalarType(type: string): boolean {
  return PLAIN_SCALAR.test(type);
}

/** A DATE or TIMESTAMP* type (as DESCRIBE prints it). */
export function isDateOrTimestamp(type: string): boolean {
  return /^(DATE|TIMESTAMP)/.test(type);
}

// ---------------------------------------------------------------------------------------------
// Widening

const SIGNED = ['TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT'];
const UNSIGNED = ['UTINYINT', 'USMALLINT', 'UINTEGER', 'UBIGINT'];

function isInteger(t: string): boolean {
  return SIGNED.includes(t) || UNSIGNED.includes(t);
}

/** Widest of two integer types; an unsigned type meets a signed one at the next signed width. */
function commonInteger(a: string, b: string): string {
  const ua = UNSIGNED.indexOf(a);
  const ub = UNSIGNED.indexOf(b);
  if (ua >= 0 && ub >= 0) return UNSIGNED[Math.max(ua, ub)] as string;
  const rank = (t: string) => (UNSIGNED.includes(t) ? UNSIGNED.indexOf(t) + 1 : SIGNED.indexOf(t));
  return SIGNED[Math.max(rank(a), rank(b))] as string;
}

const DECIMAL = /^DECIMAL\((\d+),\s*(\d+)\)$/;

function decimal(type: string): { p: number; s: number } | undefined {
  const m = DECIMAL.exec(type);
  return m ? { p: Number(m[1]), s: Number(m[2]) } : undefined;
}

/** DuckDB's largest DECIMAL precision. */
export const MAX_DECIMAL_PRECISION = 38;

/** A source's exact decimal as DuckDB stores it: DECIMAL(p,s) up to 38 digits, beyond that its exact text. */
export function decimalOrText(precision: number, scale: number): string {
  return precision <= MAX_DECIMAL_PRECISION ? `DECIMAL(${precision},${scale})` : 'VARCHAR';
}

/** The narrowest type both can be stored as without loss, or undefined when there is none. */
export function commonType(a: string, b: string): string | undefined {
  if (a === b) return a;
  if (isInteger(a) && isInteger(b)) return commonInteger(a, b);
  const floatLike = (t: string) => t === 'FLOAT' || t === 'DOUBLE';
  const numeric = isInteger;
  if ((floatLike(a) || numeric(a) || decimal(a)) && (floatLike(b) || numeric(b) || decimal(b))) {
    const da = decimal(a);
    const db = decimal(b);
    if (da && db) {
      const s = Math.max(da.s, db.s);
      const p = Math.max(da.p - da.s, db.p - db.s) + s;
      return p <= MAX_DECIMAL_PRECISION ? `DECIMAL(${p},${s})` : 'DOUBLE';
    }
    return 'DOUBLE';
  }
  const temporal = ['DATE', 'TIMESTAMP', 'TIMESTAMP_NS'];
  if (temporal.includes(a) && temporal.includes(b))
    return a === 'TIMESTAMP_NS' || b === 'TIMESTAMP_NS' ? 'TIMESTAMP_NS' : 'TIMESTAMP';
  if (
    (a === 'TIMESTAMP WITH TIME ZONE' && temporal.includes(b)) ||
    (b === 'TIMESTAMP WITH TIME ZONE' && temporal.includes(a))
  ) {
    return 'TIMESTAMP WITH TIME ZONE';
  }
  return undefined;
}
