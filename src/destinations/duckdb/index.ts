/**
 * Loads lake tables into a DuckDB database file, each load one transaction (rows, swap or
 * upsert, the `dip_loads` row). Types are the lake's own; nested values arrive as JSON text and
 * are cast back. replace builds a staging table and swaps it in by rename.
 */
import { resolve } from 'node:path';
import { DipError, errorMessage } from '../../core/errors.js';
import { defineWarehouse, type LoadColumn, type TableLoad } from '../types.js';
import { duckdbDestinationSpec } from './spec.js';

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const lit = (v: string): string => `'${v.replaceAll("'", "''")}'`;
const nested = (t: string): boolean => /\[\]$|^(STRUCT|MAP|UNION)/i.test(t.trim());

export default defineWarehouse({
  spec: duckdbDestinationSpec,
  async openWarehouse(config, context) {
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const db = await DuckDBInstance.create(resolve(context.baseDir, config.path));
    const c = await db.connect();
    const schema = q(config.schema);
    await c.run(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    const marker = `${schema}.dip_loads`;
    await c.run(
      `CREATE TABLE IF NOT EXISTS ${marker} (target VARCHAR PRIMARY KEY, lake_table VARCHAR, last_commit BIGINT, rows BIGINT, loaded_at TIMESTAMPTZ)`,
    );
    const targetName = (l: { schema: string | undefined; table: string }): string =>
      `${l.schema ?? config.schema}.${l.table}`;
    const read = (file: string, cols: readonly LoadColumn[]): string => {
      const spec = cols.map((col) => `${lit(col.name)}: ${lit(nested(col.type) ? 'VARCHAR' : col.type)}`).join(', ');
      const select = cols
        .map((col) =>
          nested(col.type) ? `CAST(CAST(${q(col.name)} AS JSON) AS ${col.type}) AS ${q(col.name)}` : q(col.name),
        )
        .join(', ');
      return `SELECT ${select} FROM read_csv(${lit(file)}, columns={${spec}}, header=false, auto_detect=false, quote='"', escape='"', allow_quoted_nulls=false)`;
    };
    const count = async (sql: string): Promise<number> => {
      const r = await c.runAndReadAll(sql);
      return Number(r.getRows()[0]?.[0] ?? 0);
    };
    return {
      async lastLoaded(l) {
        const r = await c.runAndReadAll(`SELECT last_commit FROM ${marker} WHERE target = ${lit(targetName(l))}`);
        const v = r.getRows()[0]?.[0];
        return v === undefined || v === null ? null : Number(v);
      },
      async load(l: TableLoad) {
        const s = q(l.schema ?? config.schema);
        const name = `${s}.${q(l.table)}`;
        const cols = l.columns.map((col) => `${q(col.name)} ${col.type}`);
        const pk = l.key.length ? `, PRIMARY KEY (${l.key.map(q).join(', ')})` : '';
        let rows = 0;
        let deleted = 0;
        await c.run('BEGIN TRANSACTION');
        try {
          await c.run(`CREATE SCHEMA IF NOT EXISTS ${s}`);
          const exists =
            (await count(
              `SELECT count(*) FROM duckdb_tables() WHERE schema_name = ${lit(l.schema ?? config.schema)} AND table_name = ${lit(l.table)}`,
            )) > 0;
          if (l.mode === 'replace') {
            const stage = `${s}.${q(`${l.table}__dip_stage`)}`;
            await c.run(`DROP TABLE IF EXISTS ${stage}`);
            await c.run(`CREATE TABLE ${stage} (${cols.join(', ')}${pk})`);
            await c.run(`INSERT INTO ${stage} ${read(l.rowsCsv, l.columns)}`);
            rows = await count(`SELECT count(*) FROM ${stage}`);
            if (exists) await c.run(`DROP TABLE ${name}`);
            await c.run(`ALTER TABLE ${stage} RENAME TO ${q(l.table)}`);
          } else {
            if (!exists) await c.run(`CREATE TABLE ${name} (${cols.join(', ')}${pk})`);
            else
              for (const col of l.columns)
                await c.run(`ALTER TABLE ${name} ADD COLUMN IF NOT EXISTS ${q(col.name)} ${col.type}`);
            const before = await count(`SELECT count(*) FROM ${name}`);
            if (l.mode === 'append') {
              await c.run(
                `INSERT INTO ${name} (${l.columns.map((x) => q(x.name)).join(', ')}) ${read(l.rowsCsv, l.columns)}`,
              );
              rows = (await count(`SELECT count(*) FROM ${name}`)) - before;
            } else {
              await c.run(
                `INSERT OR REPLACE INTO ${name} (${l.columns.map((x) => q(x.name)).join(', ')}) ${read(l.rowsCsv, l.columns)}`,
              );
              rows = await count(`SELECT count(*) FROM (${read(l.rowsCsv, l.columns)})`);
              if (l.deletesCsv) {
                const keyCols = l.columns.filter((x) => l.key.includes(x.name));
                const keys = l.key.map(q).join(', ');
                await c.run(
                  `DELETE FROM ${name} WHERE (${keys}) IN (SELECT ${keys} FROM (${read(l.deletesCsv, keyCols)}))`,
                );
                deleted = before + rows - (await count(`SELECT count(*) FROM ${name}`));
              }
            }
          }
          await c.run(
            `INSERT OR REPLACE INTO ${marker} VALUES (${lit(targetName(l))}, ${lit(l.lakeTable)}, ${l.commit}, ${rows}, now())`,
          );
          await c.run('COMMIT');
        } catch (e) {
          await c.run('ROLLBACK').catch(() => undefined);
          if (e instanceof DipError) throw e;
          throw new DipError('input', `load ${l.lakeTable} into ${targetName(l)} refused: ${errorMessage(e)}`, {
            cause: e,
          });
        }
        const { stat } = await import('node:fs/promises');
        return { rows, bytes: (await stat(l.rowsCsv)).size, deleted };
      },
      async close() {
        c.closeSync();
        db.closeSync();
      },
    };
  },
});
