/** What a PostgreSQL database holds, read from pg_catalog: tables, columns, types, keys. */
import type pg from 'pg';
import { qualified } from '../../lake/sql.js';
import type { DbIntrospector, DbColumn, DbTable } from '../database/types.js';
import { lakeType, selectExpression, type PgTypeInfo } from './types.js';

const COLUMNS_SQL = `
  SELECT a.attname AS name,
         format_type(a.atttypid, a.atttypmod) AS formatted,
         coalesce(bt.typname, t.typname) AS typname,
         et.typname AS element,
         t.typtype AS typtype
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  LEFT JOIN pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A'
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  ORDER BY a.attnum`;

const PRIMARY_KEY_SQL = `
  SELECT a.attname AS name
  FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
  WHERE i.indrelid = $1::regclass AND i.indisprimary
  ORDER BY array_position(i.indkey::int2[], a.attnum)`;

function toColumn(name: string, t: PgTypeInfo): DbColumn {
  return { name, sourceType: t.formatted, lakeType: lakeType(t), select: selectExpression(name, t) };
}

export class PgIntrospector implements DbIntrospector {
  constructor(private readonly client: pg.Client) {}

  async defaultSchema(): Promise<string> {
    const r = await this.client.query<{ s: string | null }>('SELECT current_schema() AS s');
    return r.rows[0]?.s ?? 'public';
  }

  async listTables(schema: string): Promise<string[]> {
    const r = await this.client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition ORDER BY 1`,
      [schema],
    );
    return r.rows.map((row) => row.name);
  }

  async describeTable(schema: string, name: string): Promise<DbTable | undefined> {
    const found = await this.client.query<{ relkind: string }>(
      `SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
      [schema, name],
    );
    const kind = found.rows[0]?.relkind;
    if (!kind) return undefined;
    const regclass = qualified(schema, name);
    const columns = await this.client.query<PgTypeInfo & { name: string }>(COLUMNS_SQL, [regclass]);
    const key = await this.client.query<{ name: string }>(PRIMARY_KEY_SQL, [regclass]);
    return {
      schema,
      name,
      columns: columns.rows.map((c) => toColumn(c.name, c)),
      primaryKey: key.rows.map((k) => k.name),
      // Heap tables can be read in ctid ranges; views and partitioned parents cannot.
      splittable: kind === 'r' || kind === 'm',
    };
  }

  async describeQuery(sql: string): Promise<DbColumn[]> {
    const result = await this.client.query(`SELECT * FROM (${sql}) AS q LIMIT 0`);
    return this.describeTypes(
      result.fields.map((f) => ({ name: f.name, typeOid: f.dataTypeID, typeMod: f.dataTypeModifier })),
    );
  }

  /** Columns by name, type oid and type modifier (a result's fields, a replication relation's columns). */
  async describeTypes(fields: readonly { name: string; typeOid: number; typeMod: number }[]): Promise<DbColumn[]> {
    const columns: DbColumn[] = [];
    for (const f of fields) {
      const t = await this.client.query<PgTypeInfo>(
        `SELECT format_type(t.oid, $2) AS formatted, coalesce(bt.typname, t.typname) AS typname, et.typname AS element, t.typtype
         FROM pg_type t LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
         LEFT JOIN pg_type et ON et.oid = coalesce(bt.typelem, t.typelem) AND coalesce(bt.typcategory, t.typcategory) = 'A'
         WHERE t.oid = $1`,
        [f.typeOid, f.typeMod],
      );
      const info = t.rows[0] ?? { formatted: 'text', typname: 'text', typtype: 'b' };
      columns.push(toColumn(f.name, info));
    }
    return columns;
  }
}
