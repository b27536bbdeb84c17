/**
 * SQL models: a SELECT over `zone.table` views of the lake. `table` rebuilds from every input;
 * `incremental` reads its driving input (incremental_from, else the first table named) as only
 * the rows committed since the last build, and merges the result by unique_key (or appends);
 * `view` stores nothing but the SELECT, which every query then runs over the tables it reads.
 */
import type { SqlModelConfig } from '../config/gold.js';
import { sqlTableRefs } from '../config/gold.js';
import { ConfigError } from '../core/errors.js';
import { VIEW_STATE_PIPELINE, VIEW_STATE_SOURCE } from '../lake/query.js';
import { parquetScan } from '../lake/scan.js';
import { ident } from '../lake/sql.js';
import { deltaSince, type GoldState } from './inputs.js';
import { type GoldModelResult, type GoldTarget, writeGold } from './write.js';

export interface SqlBuild {
  name: string;
  model: SqlModelConfig;
  state: GoldState;
  previous: GoldState | undefined;
  /** The previous build is comparable (same definition, no --full-refresh). */
  incrementalOk: boolean;
  head: number;
}

function queryOf(name: string, model: SqlModelConfig): string {
  if (!model.query) throw new ConfigError(`gold.${name}: the model has no SELECT (sql: file or query:)`);
  return model.query;
}

export async function buildSqlModel(t: GoldTarget, b: SqlBuild): Promise<GoldModelResult> {
  const { lake } = t;
  const { name, model } = b;
  const sql = queryOf(name, model);
  if (model.materialized === 'view') return buildView(t, b, sql);
  if (model.materialized === 'incremental' && b.incrementalOk && b.previous) {
    const driving = model.incremental_from ?? sqlTableRefs(sql)[0];
    if (!driving) throw new ConfigError(`gold.${name}: an incremental model must read a table (zone.table)`);
    const since = b.previous.inputs[driving];
    const current = await lake.catalog.liveFiles(`gold.${name}`);
    if (since !== undefined && since !== null && current.length > 0) {
      const delta = await deltaSince(lake, driving, since, b.head);
      if (delta && !delta.removed) {
        // The driving table reads as its new rows only, for this statement.
        const [zone, table] = driving.split('.') as [string, string];
        await lake.engine.run(`CREATE OR REPLACE VIEW ${ident(zone)}.${ident(table)} AS SELECT * FROM ${delta.added}`);
        const fresh = `(${sql})`;
        const existing = parquetScan(current.map((f) => lake.storage.uri(f.path)));
        const key = model.unique_key;
        if (!key) return writeGold(t, name, model, { mode: 'incremental', sql, append: true }, b.state);
        await lake.engine.run(`CREATE OR REPLACE TEMP TABLE _dip_gold_new AS SELECT * FROM ${fresh}`);
        try {
          const on = key.map((k) => `e.${ident(k)} IS NOT DISTINCT FROM n.${ident(k)}`).join(' AND ');
          const newRows = Number((await lake.engine.all(`SELECT count(*) AS n FROM _dip_gold_new`))[0]?.['n'] ?? 0);
          return await writeGold(
            t,
            name,
            model,
            {
              mode: 'incremental',
              sql: `SELECT e.* FROM ${existing} AS e ANTI JOIN _dip_gold_new AS n ON ${on} UNION ALL BY NAME SELECT * FROM _dip_gold_new`,
              newRows,
              primaryKey: key,
            },
            b.state,
          );
        } finally {
          await lake.engine.run('DROP TABLE IF EXISTS _dip_gold_new');
        }
      }
      // Rows of the driving table were rewritten or removed: only a full build is exact.
      t.warn(`gold.${name}: ${driving} was rewritten since the last build; rebuilt in full`);
    }
  }
  return writeGold(t, name, model, { mode: 'full', sql, primaryKey: model.unique_key }, b.state);
}

/** A view: its columns are recorded as the table's schema, its SELECT as the view definition. */
async function buildView(t: GoldTarget, b: SqlBuild, sql: string): Promise<GoldModelResult> {
  const { lake } = t;
  const table = `gold.${b.name}`;
  const columns = await lake.engine.describe(`SELECT * FROM (${sql})`);
  const info = await lake.catalog.getTable(table);
  const commit = await lake.catalog.commit({
    runId: t.runId,
    operation: 'replace',
    tables: [
      {
        table,
        zone: 'gold',
        format: 'parquet',
        schema: { columns },
        add: [],
        remove: 'all',
        expectedHead: info?.headCommit ?? null,
      },
    ],
    state: [
      { pipeline: t.pipeline, source: '_gold', stream: b.name, value: b.state },
      { pipeline: VIEW_STATE_PIPELINE, source: VIEW_STATE_SOURCE, stream: b.name, value: { sql } },
    ],
    summary: { rows: 0, mode: 'view' },
  });
  return {
    table,
    kind: 'sql',
    mode: 'view',
    rows: Number((await lake.engine.all(`SELECT count(*) AS n FROM (${sql})`))[0]?.['n'] ?? 0),
    newRows: 0,
    quarantined: 0,
    commit: commit.id,
    warnings: [],
  };
}
