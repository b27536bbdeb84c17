/**
 * Loads lake tables into PostgreSQL. Every load is ONE transaction: the rows (COPY FROM STDIN,
 * CSV), the swap or upsert, and the row of `dip_loads` naming the lake commit loaded, so a
 * crash leaves the target as of the last load and the next load starts after it.
 *
 * replace: COPY into a staging table, then rename the target away, the staging table in, drop
 * the old one (readers block for the rename only and then see the new table, never a partial
 * one). append: COPY into the target. merge: COPY into a temporary table, `INSERT … ON
 * CONFLICT (key) DO UPDATE`, then delete the deleted keys.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { DipError, errorMessage } from '../../core/errors.js';
import { resolveSecrets } from '../../config/secrets.js';
import { connectionErrorKind } from '../../core/connection-errors.js';
import { splitType, typeInfo } from '../../lake/duck-types.js';
import { defineWarehouse, type LoadColumn, type TableLoad } from '../types.js';
import { postgresDestinationSpec } from './spec.js';

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const lit = (v: string): string => `'${v.replaceAll("'", "''")}'`;

/** The PostgreSQL type of a lake (DuckDB) type: exact decimals, timestamptz, JSON for nested. */
export function postgresType(duck: string): string {
  const t = duck.trim().toUpperCase();
  if (t.endsWith('[]') || t.startsWith('STRUCT') || t.startsWith('MAP') || t.startsWith('UNION') || t === 'JSON')
    return 'jsonb';
  const info = typeInfo(t);
  if (info.kind === 'decimal') return `numeric(${splitType(info.type).params})`;
  const map: Record<string, string> = {
    BOOLEAN: 'boolean',
    TINYINT: 'smallint',
    SMALLINT: 'smallint',
    INTEGER: 'integer',
    BIGINT: 'bigint',
    HUGEINT: 'numeric(39,0)',
    UTINYINT: 'smallint',
    USMALLINT: 'integer',
    UINTEGER: 'bigint',
    UBIGINT: 'numeric(20,0)',
    FLOAT: 'real',
    DOUBLE: 'double precision',
    VARCHAR: 'text',
    DATE: 'date',
    TIME: 'time',
    TIMESTAMP: 'timestamp',
    'TIMESTAMP WITH TIME ZONE': 'timestamptz',
    TIMESTAMPTZ: 'timestamptz',
    TIMESTAMP_MS: 'timestamp',
    TIMESTAMP_S: 'timestamp',
    TIMESTAMP_NS: 'timestamp',
    UUID: 'uuid',
    BLOB: 'bytea',
    INTERVAL: 'interval',
  };
  return map[t] ?? 'text';
}

export default defineWarehouse({
  spec: postgresDestinationSpec,
  async openWarehouse(config, context) {
    const pg = (await import('pg')).default;
    const { from: copyFrom } = await import('pg-copy-streams');
    const client = new pg.Client({ connectionString: resolveSecrets(config.url, { baseDir: context.baseDir }) });
    await client.connect().catch((e: unknown) => {
      // A wrong password or unknown database is a config error (never retried), as for the PostgreSQL source.
      throw new DipError(connectionErrorKind(e), `destination postgres: cannot connect: ${errorMessage(e)}`);
    });
    const markerSchema = config.schema;
    const marker = `${q(markerSchema)}.dip_loads`;
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${q(markerSchema)}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${marker} (target text PRIMARY KEY, lake_table text NOT NULL, last_commit bigint NOT NULL, rows bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())`,
    );
    const targetName = (l: { schema: string | undefined; table: string }): string =>
      `${l.schema ?? config.schema}.${l.table}`;
    const target = (l: { schema: string | undefined; table: string }): string =>
      `${q(l.schema ?? config.schema)}.${q(l.table)}`;

    async function copyInto(table: string, columns: readonly string[], file: string): Promise<number> {
      const stream = client.query(copyFrom(`COPY ${table} (${columns.map(q).join(', ')}) FROM STDIN (FORMAT csv)`));
      await pipeline(createReadStream(file), stream);
      return Number(stream.rowCount ?? 0);
    }

    async function existingColumns(schema: string, table: string): Promise<Set<string> | undefined> {
      const r = await client.query<{ column_name: string }>(
        'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2',
        [schema, table],
      );
      return r.rows.length ? new Set(r.rows.map((x) => x.column_name)) : undefined;
    }

    function createSql(name: string, l: TableLoad, withKey: boolean): string {
      const cols = l.columns.map((c) => `${q(c.name)} ${postgresType(c.type)}`);
      if (withKey && l.key.length) cols.push(`PRIMARY KEY (${l.key.map(q).join(', ')})`);
      return `CREATE TABLE ${name} (${cols.join(', ')})`;
    }

    async function decorate(l: TableLoad, name: string, table: string): Promise<void> {
      for (const c of l.columns as LoadColumn[])
        if (c.comment) await client.query(`COMMENT ON COLUMN ${name}.${q(c.name)} IS ${lit(c.comment)}`);
      for (const col of l.indexes)
        await client.query(`CREATE INDEX IF NOT EXISTS ${q(`${table}_${col}_idx`)} ON ${name} (${q(col)})`);
    }

    /** Names the row and column a refused COPY reports (PostgreSQL's `where`: "COPY t, line 3, column c: …"). */
    function refused(l: TableLoad, e: unknown): DipError {
      const err = e as { message?: string; where?: string; column?: string };
      const where = err.where ? ` (${err.where})` : '';
      return new DipError('input', `load ${l.lakeTable} into ${targetName(l)} refused: ${errorMessage(e)}${where}`, {
        cause: e,
      });
    }

    return {
      async lastLoaded(l) {
        const r = await client.query<{ last_commit: string }>(`SELECT last_commit FROM ${marker} WHERE target = $1`, [
          targetName(l),
        ]);
        const v = r.rows[0]?.last_commit;
        return v === undefined ? null : Number(v);
      },
      async load(l) {
        const schema = l.schema ?? config.schema;
        const name = target(l);
        const bytes = (await stat(l.rowsCsv)).size;
        const names = l.columns.map((c) => c.name);
        let rows = 0;
        let deleted = 0;
        await client.query('BEGIN');
        try {
          await client.query(`CREATE SCHEMA IF NOT EXISTS ${q(schema)}`);
          const existing = await existingColumns(schema, l.table);
          if (l.mode === 'replace') {
            const stage = `${q(schema)}.${q(`${l.table}__dip_stage`)}`;
            await client.query(`DROP TABLE IF EXISTS ${stage}`);
            await client.query(createSql(stage, l, true));
            rows = await copyInto(stage, names, l.rowsCsv);
            if (existing) {
              await client.query(`ALTER TABLE ${name} RENAME TO ${q(`${l.table}__dip_old`)}`);
              await client.query(`ALTER TABLE ${stage} RENAME TO ${q(l.table)}`);
              await client.query(`DROP TABLE ${q(schema)}.${q(`${l.table}__dip_old`)}`);
            } else {
              await client.query(`ALTER TABLE ${stage} RENAME TO ${q(l.table)}`);
            }
            if (l.key.length) {
              // The primary key's index carries the staging name; give it the table's.
              await client.query(
                `ALTER INDEX IF EXISTS ${q(schema)}.${q(`${l.table}__dip_stage_pkey`)} RENAME TO ${q(`${l.table}_pkey`)}`,
              );
            }
            await decorate(l, name, l.table);
          } else {
            if (!existing) {
              await client.query(createSql(name, l, true));
              await decorate(l, name, l.table);
            } else {
              for (const c of l.columns)
                if (!existing.has(c.name))
                  await client.query(`ALTER TABLE ${name} ADD COLUMN ${q(c.name)} ${postgresType(c.type)}`);
            }
            if (l.mode === 'append') {
              rows = await copyInto(name, names, l.rowsCsv);
            } else {
              if (!l.key.length) throw new DipError('config', `load ${l.lakeTable}: mode merge needs a key`);
              const stage = q(`${l.table}__dip_merge`);
              await client.query(
                `CREATE TEMP TABLE ${stage} (${l.columns.map((c) => `${q(c.name)} ${postgresType(c.type)}`).join(', ')}) ON COMMIT DROP`,
              );
              await copyInto(stage, names, l.rowsCsv);
              const keys = l.key.map(q).join(', ');
              const others = names.filter((n) => !l.key.includes(n));
              const set = others.length
                ? `DO UPDATE SET ${others.map((n) => `${q(n)} = EXCLUDED.${q(n)}`).join(', ')}`
                : 'DO NOTHING';
              const r = await client.query(
                `INSERT INTO ${name} (${names.map(q).join(', ')}) SELECT ${names.map(q).join(', ')} FROM ${stage} ON CONFLICT (${keys}) ${set}`,
              );
              rows = r.rowCount ?? 0;
              if (l.deletesCsv) {
                const dstage = q(`${l.table}__dip_deletes`);
                const keyCols = l.columns.filter((c) => l.key.includes(c.name));
                await client.query(
                  `CREATE TEMP TABLE ${dstage} (${keyCols.map((c) => `${q(c.name)} ${postgresType(c.type)}`).join(', ')}) ON COMMIT DROP`,
                );
                await copyInto(
                  dstage,
                  keyCols.map((c) => c.name),
                  l.deletesCsv,
                );
                const d = await client.query(
                  `DELETE FROM ${name} t USING ${dstage} d WHERE ${l.key.map((k) => `t.${q(k)} = d.${q(k)}`).join(' AND ')}`,
                );
                deleted = d.rowCount ?? 0;
              }
            }
          }
          await client.query(
            `INSERT INTO ${marker} (target, lake_table, last_commit, rows, loaded_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (target) DO UPDATE SET lake_table = EXCLUDED.lake_table, last_commit = EXCLUDED.last_commit, rows = EXCLUDED.rows, loaded_at = now()`,
            [targetName(l), l.lakeTable, l.commit, rows],
          );
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          if (e instanceof DipError) throw e;
          throw refused(l, e);
        }
        return { rows, bytes, deleted };
      },
      async close() {
        await client.end();
      },
    };
  },
});
