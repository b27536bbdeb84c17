/**
 * DuckDB type strings (as DESCRIBE prints them) parsed into a tree and rendered back:
 * `STRUCT(id BIGINT, "display Name" VARCHAR, geo STRUCT(lat DOUBLE, lng DOUBLE))`,
 * `STRUCT(url VARCHAR, kind VARCHAR)[]`, `INTEGER[3]`, `MAP(VARCHAR, JSON)`, `DECIMAL(18,3)`.
 * ENUM(...) and UNION(...) are kept as scalars (their full text is the name).
 */
import { ConfigError } from '../core/errors.js';
import { ident } from '../lake/sql.js';

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
