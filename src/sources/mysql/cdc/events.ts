/**
 * What binlog events mean to a row-based change stream: row events become change events (a
 * primary key change a delete of the old key and a create of the new one), and of the
 * statements the binlog carries as SQL text (query events) these matter: transaction
 * boundaries, `TRUNCATE [TABLE] t`, and DML logged as statements (a session with
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
  | { kind: 'other' };

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
  const dml = STATEMENT_DML.exec(sql);
  if (dml) {
    const qualified = dml[2] ?? dml[4];
    const name = unquote((dml[1] ?? dml[3]) as string);
    return qualified ? { kind: 'dml', schema: name, table: unquote(qualified) } : { kind: 'dml', schema, table: name };
  }
  return { kind: 'other' };
}
