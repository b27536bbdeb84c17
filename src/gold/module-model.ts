/**
 * TypeScript models: a function receives the input rows in batches and returns output rows
 * (`(rows, {model, batch}) => rows | Promise<rows>`); what it returns is written and committed
 * like any model (checks, quarantine, documented column types). Incremental models get only the
 * input rows committed since the last build and merge by unique_key.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ModuleModelConfig } from '../config/gold.js';
import { ConfigError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { importModule } from '../core/import-module.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { deltaSince, type GoldState } from './inputs.js';
import { commitStateOnly, type GoldModelResult, type GoldTarget, writeGold } from './write.js';

export type ModelRow = Record<string, unknown>;
export type ModelFunction = (
  rows: ModelRow[],
  ctx: { model: string; batch: number },
) => ModelRow[] | Promise<ModelRow[]>;

export interface ModuleBuild {
  name: string;
  model: ModuleModelConfig;
  state: GoldState;
  previous: GoldState | undefined;
  incrementalOk: boolean;
  head: number;
}

export async function buildModuleModel(t: GoldTarget, b: ModuleBuild): Promise<GoldModelResult> {
  const { lake } = t;
  const { name, model } = b;
  const file = resolve(lake.project.dir, model.module);
  const fn = (await importModule(file))[model.export];
  if (typeof fn !== 'function')
    throw new ConfigError(`gold.${name}: ${model.module} has no exported function ${model.export}`);
  const [zone, table] = model.from.split('.') as [string, string];
  let input = `${ident(zone)}.${ident(table)}`;
  let mode: 'full' | 'incremental' = 'full';
  const current = await lake.catalog.liveFiles(`gold.${name}`);
  const since = b.previous?.inputs[model.from];
  if (model.materialized === 'incremental' && b.incrementalOk && current.length && since != null) {
    const delta = await deltaSince(lake, model.from, since, b.head);
    if (delta && !delta.removed) {
      input = delta.added;
      mode = 'incremental';
    }
  }
  const staged = join(await lake.storage.stagingDir(), `${newId('m')}.ndjson`);
  let produced = 0;
  try {
    await lake.engine.run(`CREATE OR REPLACE TEMP TABLE _dip_mod_in AS SELECT * FROM ${input}`);
    const out = createWriteStream(staged);
    try {
      for (let batch = 0; ; batch++) {
        const rows = await lake.engine.all(
          `SELECT * FROM _dip_mod_in LIMIT ${model.batch_rows} OFFSET ${batch * model.batch_rows}`,
        );
        if (rows.length === 0) break;
        const result = await (fn as ModelFunction)(rows, { model: name, batch });
        for (const r of result) {
          out.write(`${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
          produced += 1;
        }
      }
    } finally {
      await new Promise<void>((done, fail) => out.end((err?: Error | null) => (err ? fail(err) : done())));
      await lake.engine.run('DROP TABLE IF EXISTS _dip_mod_in');
    }
    if (produced === 0) return await commitStateOnly(t, name, model, b.state, mode);
    const rows = `SELECT * FROM read_json(${lit(staged)}, format = 'newline_delimited')`;
    const key = model.unique_key;
    if (mode === 'full' || !key)
      return await writeGold(
        t,
        name,
        model,
        { mode, sql: rows, append: mode === 'incremental', primaryKey: key },
        b.state,
      );
    const on = key.map((k) => `e.${ident(k)} IS NOT DISTINCT FROM n.${ident(k)}`).join(' AND ');
    const existing = parquetScan(current.map((f) => lake.storage.uri(f.path)));
    return await writeGold(
      t,
      name,
      model,
      {
        mode,
        sql: `SELECT e.* FROM ${existing} AS e ANTI JOIN (${rows}) AS n ON ${on} UNION ALL BY NAME ${rows}`,
        newRows: produced,
        primaryKey: key,
      },
      b.state,
    );
  } finally {
    await rm(staged, { force: true });
  }
}
