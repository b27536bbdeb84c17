/**
 * What binlog events mean to a row-based change stream: row events become change events (a
 * primary key change a delete of the old key and a create of the new one), and of the
 * statements the binlog carries as SQL text (query events) these matter: transaction
 * boundaries, `TRUNCATE [TABLE] t`, DDL that may change a table's shape or remove it (ALTER,
 * RENAME, DROP TABLE, CREATE/DROP INDEX), and DML logged as statements (a session with
 * binlog_format = STATEMENT or MIXED), whose rows cannot be known.
 */
import { keyChanged, type ChangeEvent, type Tuple } from '../../database/change-batch.js';
import type { DbStream } from '../../database/types.js';
import type { BinlogEvent, RowImage } from './binlog.js';

type RowsEvent = Extract<BinlogEvent, { kind: 'insert' | 'update' | 'delete' }>;

/** A row event's changes for `stream`, values rendered by `render` (one per column). */
export function* rowChanges(
  e: RowsEvent,
  stream: DbStream,
  render: readonly ((value: unknown) => string | null)[],
): Generator<{ op: ChangeEvent['op']; row: Tuple; before: Tuple | null }> {
  const tuple = (image: RowImage): Tuple => {
    const t: Tuple = {};
    stream.columns.forEach((c, i) => (t[c.name] = (render[i] as (v: unknown) => string | null)(image[c.name])));
    return t;
  };
  if (e.kind === 'update') {
    for (const r of e.rows) {
      const before = tuple(r.before);
      const after = tuple(r.after);
      if (keyChanged(stream.spec.primaryKey, before, after)) {
        // A new primary key: the old row is gone and a new one exists (as Debezium reports it).
        yield { op: 'd', row: before, before };
        yield { op: 'c', row: after, before: null };
      } else {
        yield { op: 'u', row: after, before };
      }
    }
    return;
  }
  for (const r of e.rows) {
    const row = tuple(r);
    if (e.kind === 'insert') yield { op: 'c', row, before: null };
    else yield { op: 'd', row, before: row };
  }
}
const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)+\`|[\w$]+)`;
const TRUNCATE = new RegExp(
  String.raw`^TRUNCATE\s+(?:TABLE\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?\s*(?:\/\*[^]*?\*\/)?\s*;?$`,
  'i',
);
const STATEMENT_DML = new RegExp(
  String.raw`^(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*\s+(?:INTO\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?|^(?:UPDATE|DELETE)(?:\s+(?:LOW_PRIORITY|IGNORE|QUICK))*\s+(?:FROM\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?`,
  'i',
);
const unquote = (name: string): string => (name.startsWith('`') ? name.slice(1, -1).replaceAll('``', '`') : name);

/** A statement without its leading comments (`/* … *\/`, `-- …`, `# …`). */
function statementText(query: string): string {
  let s = query.trim();
  for (;;) {
    if (s.startsWith('/*') && !s.startsWith('/*!')) s = s.slice(s.indexOf('*/') + 2 || s.length).trim();
    else if (s.startsWith('#') || s.startsWith('-- ')) s = s.slice(s.indexOf('\n') + 1 || s.length).trim();
    else return s;
  }
}

export type BinlogStatement =
  | { kind: 'begin' }
  | { kind: 'commit' }
  | { kind: 'truncate' | 'dml'; schema: string; table: string }
  | { kind: 'ddl'; tables: { schema: string; table: string }[] }
  | { kind: 'other' };

const NAME = String.raw`(${IDENT})(?:\s*\.\s*(${IDENT}))?`;
const ALTER = new RegExp(String.raw`^ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?${NAME}`, 'i');
const DROP = /^DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?/i;
const RENAME = /^RENAME\s+TABLES?\s+/i;
const INDEX = new RegExp(
  String.raw`^(?:CREATE|DROP)\s+(?:(?:UNIQUE|FULLTEXT|SPATIAL)\s+)?INDEX\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?${IDENT}\s+ON\s+${NAME}`,
  'i',
);

/** `a`, `s.a`, `` `s`.`a` `` as schema and table (`schema` when unqualified). */
function qualifiedName(first: string, second: string | undefined, schema: string): { schema: string; table: string } {
  return second ? { schema: unquote(first), table: unquote(second) } : { schema, table: unquote(first) };
}

/** The names of a comma-separated list (`a, s.b TO c` reads a and s.b when `before` is ' TO '). */
function nameList(text: string, schema: string, pairs: boolean): { schema: string; table: string }[] {
  const names: { schema: string; table: string }[] = [];
  const item = new RegExp(String.raw`^\s*${NAME}\s*(?:TO\s+${NAME}\s*)?(,|$|\/\*|WAIT|NOWAIT|RESTRICT|CASCADE)`, 'i');
  let rest = text;
  for (;;) {
    const m = item.exec(rest);
    if (!m) return names;
    names.push(qualifiedName(m[1] as string, m[2], schema));
    if (pairs && m[3]) names.push(qualifiedName(m[3], m[4], schema));
    if (m[5] !== ',') return names;
    rest = rest.slice(m[0].length);
  }
}

/** What a query event's statement is; `schema` is the event's default schema. */
export function classifyStatement(query: string, schema: string): BinlogStatement {
  const sql = statementText(query);
  if (/^BEGIN$/i.test(sql) || sql === '') return { kind: 'begin' };
  // Transactions on non-transactional tables (MyISAM) end with a COMMIT statement, not an XID.
  if (/^COMMIT$/i.test(sql)) return { kind: 'commit' };
  const truncate = TRUNCATE.exec(sql);
  if (truncate) {
    return truncate[2]
      ? { kind: 'truncate', schema: unquote(truncate[1] as string), table: unquote(truncate[2]) }
      : { kind: 'truncate', schema, table: unquote(truncate[1] as string) };
  }
  const alter = ALTER.exec(sql) ?? INDEX.exec(sql);
  if (alter) return { kind: 'ddl', tables: [qualifiedName(alter[1] as string, alter[2], schema)] };
  const drop = DROP.exec(sql);
  if (drop) return { kind: 'ddl', tables: nameList(sql.slice(drop[0].length), schema, false) };
  const rename = RENAME.exec(sql);
  if (rename) return { kind: 'ddl', tables: nameList(sql.slice(rename[0].length), schema, true) };
  const dml = STATEMENT_DML.exec(sql);
  if (dml) {
    const qualified = dml[2] ?? dml[4];
    const name = unquote((dml[1] ?? dml[3]) as string);
    return qualified ? { kind: 'dml', schema: name, table: unquote(qualified) } : { kind: 'dml', schema, table: name };
  }
  return { kind: 'other' };
}
