/**
 * Aggregates: rollups (group columns and measures over one input) that update incrementally —
 * the groups the input rows committed (or removed) since the last build touch are recomputed
 * from the input, every other group is kept as it was.
 */
import type { AggregateModelConfig } from '../config/gold.js';
import { parquetScan } from '../lake/scan.js';
import { ident } from '../lake/sql.js';
import { deltaSince, type GoldState } from './inputs.js';
import { type GoldModelResult, type GoldTarget, writeGold } from './write.js';

export interface AggregateBuild {
  name: string;
  model: AggregateModelConfig;
  state: GoldState;
  previous: GoldState | undefined;
  incrementalOk: boolean;
  head: number;
}

export async function buildAggregate(t: GoldTarget, b: AggregateBuild): Promise<GoldModelResult> {
  const { lake } = t;
  const { name, model } = b;
  const [zone, table] = model.from.split('.') as [string, string];
  const source = `${ident(zone)}.${ident(table)}`;
  const groups = Object.entries(model.group_by);
  const measures = Object.entries(model.measures);
  const where = model.where ? `WHERE ${model.where}` : '';
  const select = `${groups.map(([n, e]) => `(${e}) AS ${ident(n)}`).join(', ')}, ${measures.map(([n, e]) => `${e} AS ${ident(n)}`).join(', ')}`;
  const key = groups.map(([n]) => n);
  const full = `SELECT ${select} FROM (SELECT * FROM ${source} ${where}) GROUP BY ALL`;
  const since = b.previous?.inputs[model.from];
  const current = await lake.catalog.liveFiles(`gold.${name}`);
  if (!b.incrementalOk || since === undefined || since === null || current.length === 0)
    return writeGold(t, name, model, { mode: 'full', sql: full, primaryKey: key }, b.state);
  const delta = await deltaSince(lake, model.from, since, b.head);
  if (!delta) return writeGold(t, name, model, { mode: 'full', sql: full, primaryKey: key }, b.state);
  const touched = delta.removed
    ? `(SELECT * FROM ${delta.added} UNION ALL SELECT * FROM ${delta.removed})`
    : delta.added;
  await lake.engine.run(
    `CREATE OR REPLACE TEMP TABLE _dip_agg_groups AS SELECT DISTINCT ${groups.map(([, e], i) => `(${e}) AS _g${i}`).join(', ')} FROM ${touched}`,
  );
  try {
    const affected = Number((await lake.engine.all('SELECT count(*) AS n FROM _dip_agg_groups'))[0]?.['n'] ?? 0);
    const onRow = groups.map(([, e], i) => `(${e}) IS NOT DISTINCT FROM g._g${i}`).join(' AND ');
    const onOut = groups.map(([n], i) => `o.${ident(n)} IS NOT DISTINCT FROM g._g${i}`).join(' AND ');
    // Only the input rows of affected groups are aggregated again.
    const recomputed = `SELECT ${select} FROM (SELECT r.* FROM (SELECT * FROM ${source} ${where}) AS r SEMI JOIN _dip_agg_groups AS g ON ${onRow}) GROUP BY ALL`;
    const kept = `SELECT o.* FROM ${parquetScan(current.map((f) => lake.storage.uri(f.path)))} AS o ANTI JOIN _dip_agg_groups AS g ON ${onOut}`;
    return await writeGold(
      t,
      name,
      model,
      { mode: 'incremental', sql: `${kept} UNION ALL BY NAME ${recomputed}`, newRows: affected, primaryKey: key },
      b.state,
    );
  } finally {
    await lake.engine.run('DROP TABLE IF EXISTS _dip_agg_groups');
  }
}
