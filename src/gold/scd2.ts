/**
 * SCD Type 2 dimensions. From a silver table (a snapshot per build): the timestamp strategy makes
 * a new version when `updated_at` grew, the check strategy when the hash of the checked columns
 * changed; keys gone from the snapshot are closed, kept, or get a deleted version. From a CDC
 * change log (strategy cdc): the history is a function of the log in log order, so every change
 * is a version, whenever it was read; a build recomputes the whole history of each key the new
 * log rows touch, which also repairs history when changes arrive late or out of order.
 */
import type { Column } from '../catalog/types.js';
import type { Scd2ModelConfig } from '../config/gold.js';
import { ConfigError } from '../core/errors.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { deltaSince, type GoldState } from './inputs.js';
import { withSurrogateKey } from './surrogate.js';
import { commitStateOnly, type GoldModelResult, type GoldTarget, writeGold } from './write.js';

export interface Scd2Names {
  validFrom: string;
  validTo: string;
  isCurrent: string;
  versionHash: string;
  updatedAt: string;
  isDeleted: string;
}

/** Hidden column: the hash of a version's values (what the check strategy compares). */
export const ROW_HASH = '_dip_row_hash';

export function scd2Names(model: Scd2ModelConfig): Scd2Names {
  const preset: Scd2Names =
    model.names === 'dbt'
      ? {
          validFrom: 'dbt_valid_from',
          validTo: 'dbt_valid_to',
          isCurrent: 'dbt_is_current',
          versionHash: 'dbt_scd_id',
          updatedAt: 'dbt_updated_at',
          isDeleted: 'dbt_is_deleted',
        }
      : {
          validFrom: 'valid_from',
          validTo: 'valid_to',
          isCurrent: 'is_current',
          versionHash: 'version_hash',
          updatedAt: 'updated_at',
          isDeleted: 'is_deleted',
        };
  if (typeof model.names === 'string') return preset;
  const n = model.names;
  return {
    validFrom: n.valid_from ?? preset.validFrom,
    validTo: n.valid_to ?? preset.validTo,
    isCurrent: n.is_current ?? preset.isCurrent,
    versionHash: n.version_hash ?? preset.versionHash,
    updatedAt: n.updated_at ?? preset.updatedAt,
    isDeleted: n.is_deleted ?? preset.isDeleted,
  };
}

export interface Scd2Build {
  name: string;
  model: Scd2ModelConfig;
  state: GoldState;
  previous: GoldState | undefined;
  incrementalOk: boolean;
  head: number;
  /** When the input's head commit landed: the check strategy's version start. */
  snapshotAt: Date;
}

const hashOf = (cols: readonly string[], alias = '') =>
  cols.length
    ? `md5(concat_ws(chr(31), ${cols.map((c) => `coalesce(CAST(${alias}${ident(c)} AS VARCHAR), chr(0))`).join(', ')}))`
    : `md5('')`;

function keptColumns(name: string, model: Scd2ModelConfig, input: readonly Column[], history: Scd2Names): string[] {
  const names = input.map((c) => c.name);
  // An input column named like a history column (updated_at) is that history column.
  const reserved = new Set<string>(Object.values(history));
  const kept = (model.columns_from ?? names.filter((c) => !c.startsWith('_dip_') && !c.startsWith('_cdc_'))).filter(
    (c) => !reserved.has(c),
  );
  for (const c of [...kept, ...model.unique_key]) {
    if (!names.includes(c))
      throw new ConfigError(
        `gold.${name}: column ${c} is not a column of ${model.from} (columns: ${names.filter((n) => !n.startsWith('_dip_')).join(', ')})`,
      );
  }
  return [...new Set([...model.unique_key, ...kept])];
}

export async function buildScd2(t: GoldTarget, b: Scd2Build): Promise<GoldModelResult> {
  const { lake } = t;
  const { name, model } = b;
  const N = scd2Names(model);
  const [zone, table] = model.from.split('.') as [string, string];
  const source = `${ident(zone)}.${ident(table)}`;
  const inputColumns = await lake.engine.describe(`SELECT * FROM ${source}`);
  const cols = keptColumns(name, model, inputColumns, N);
  const K = model.unique_key;
  const marker =
    model.valid_to_current === null ? 'NULL::TIMESTAMPTZ' : `CAST(${lit(model.valid_to_current)} AS TIMESTAMPTZ)`;
  const current = await lake.catalog.liveFiles(`gold.${name}`);
  const sk = model.surrogate_key;
  const built = current.length ? parquetScan(current.map((f) => lake.storage.uri(f.path))) : undefined;
  const previous = b.incrementalOk ? built : undefined;
  // The previous versions without the member rows and the surrogate key (added again at the end).
  const prevVersions = previous
    ? `(SELECT * ${sk ? `EXCLUDE (${ident(sk.name)})` : ''} FROM ${previous} ${sk ? `WHERE ${ident(sk.name)} >= 0` : ''})`
    : undefined;
  const finish = (rows: string) =>
    // Sequence keys survive a rebuild: a version keeps the key it had (by natural key and start).
    sk ? withSurrogateKey(rows, sk, [...K, N.validFrom], built) : rows;

  if (model.strategy === 'cdc') {
    const c = model.cdc;
    for (const col of [...c.position, c.timestamp, c.deleted, c.op]) {
      if (!inputColumns.some((x) => x.name === col))
        throw new ConfigError(
          `gold.${name}: strategy cdc needs column ${col} in ${model.from} (a change log, e.g. bronze.<table>_changes); set cdc: to name its columns`,
        );
    }
    const nonKey = cols.filter((x) => !K.includes(x));
    const pos = c.position.map(ident).join(', ');
    const part = K.map(ident).join(', ');
    const history = (events: string) => `
      WITH ev AS (
        SELECT ${cols.map(ident).join(', ')}, ${pos}, CAST(${ident(c.timestamp)} AS TIMESTAMPTZ) AS _ts, coalesce(${ident(c.deleted)}, false) AS _del
        FROM ${events} WHERE coalesce(${ident(c.op)}, '') <> 't' ${model.hard_deletes === 'ignore' ? `AND NOT coalesce(${ident(c.deleted)}, false)` : ''}
        QUALIFY row_number() OVER (PARTITION BY ${part}, ${ident(c.position[0] as string)} ORDER BY ${c.position.map((p) => `${ident(p)} DESC`).join(', ')}) = 1),
      h AS (SELECT *, ${hashOf(nonKey)} AS _h FROM ev),
      f AS (SELECT * FROM h WINDOW w AS (PARTITION BY ${part} ORDER BY ${pos})
            QUALIFY NOT coalesce(lag(_del) OVER w = _del AND (_del OR lag(_h) OVER w = _h), false)),
      v AS (SELECT *, lead(_ts) OVER w AS _next${nonKey.map((x, i) => `, lag(${ident(x)}) OVER w AS _p${i}`).join('')}
            FROM f WINDOW w AS (PARTITION BY ${part} ORDER BY ${pos}))
      SELECT ${K.map(ident).join(', ')}${nonKey.map((x, i) => `, CASE WHEN _del THEN _p${i} ELSE ${ident(x)} END AS ${ident(x)}`).join('')},
        _ts AS ${ident(N.validFrom)}, coalesce(_next, ${marker}) AS ${ident(N.validTo)}, _next IS NULL AS ${ident(N.isCurrent)},
        md5(concat_ws(chr(31), ${K.map((k) => `CAST(${ident(k)} AS VARCHAR)`).join(', ')}, CAST(_ts AS VARCHAR))) AS ${ident(N.versionHash)},
        _ts AS ${ident(N.updatedAt)}, _h AS ${ROW_HASH}${model.hard_deletes === 'new_record' ? `, _del AS ${ident(N.isDeleted)}` : ''}
      FROM v ${model.hard_deletes === 'invalidate' ? 'WHERE NOT _del' : ''}`;
    const since = b.previous?.inputs[model.from];
    const delta =
      prevVersions && since !== undefined && since !== null
        ? await deltaSince(lake, model.from, since, b.head)
        : undefined;
    if (!prevVersions || !delta || delta.removed) {
      return writeGold(
        t,
        name,
        model,
        { mode: 'full', sql: finish(history(source)), primaryKey: sk ? [sk.name] : [] },
        b.state,
      );
    }
    // Keys the new log rows touch get their whole history again; the others are kept as they are.
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE _dip_scd_keys AS SELECT DISTINCT ${part} FROM ${delta.added} WHERE coalesce(${ident(c.op)}, '') <> 't'`,
    );
    try {
      const touched = Number((await lake.engine.all(`SELECT count(*) AS n FROM _dip_scd_keys`))[0]?.['n'] ?? 0);
      if (touched === 0) return commitStateOnly(t, name, model, b.state, 'incremental');
      const on = (a: string) => K.map((k) => `${a}.${ident(k)} = _k.${ident(k)}`).join(' AND ');
      const events = `(SELECT e.* FROM ${source} AS e SEMI JOIN _dip_scd_keys AS _k ON ${on('e')})`;
      const kept = `SELECT d.* FROM ${prevVersions} AS d ANTI JOIN _dip_scd_keys AS _k ON ${on('d')}`;
      return await writeGold(
        t,
        name,
        model,
        {
          mode: 'incremental',
          sql: finish(`${kept} UNION ALL BY NAME SELECT * FROM (${history(events)})`),
          primaryKey: sk ? [sk.name] : [],
        },
        b.state,
      );
    } finally {
      await lake.engine.run('DROP TABLE IF EXISTS _dip_scd_keys');
    }
  }

  // Snapshot strategies: the input's rows now against the current versions.
  let ts: string;
  let changed: string;
  if (model.strategy === 'timestamp') {
    if (!model.updated_at)
      throw new ConfigError(`gold.${name}: strategy timestamp needs updated_at (the column holding the change time)`);
    ts = `CAST(${ident(model.updated_at)} AS TIMESTAMPTZ)`;
    changed = `s._ts > c.${ident(N.updatedAt)}`;
  } else {
    ts = `CAST(${lit(b.snapshotAt.toISOString())} AS TIMESTAMPTZ)`;
    changed = `s._h <> c.${ROW_HASH}`;
  }
  const checked =
    model.strategy === 'check' && model.check_cols !== 'all' ? model.check_cols : cols.filter((x) => !K.includes(x));
  const snapAt = `CAST(${lit(b.snapshotAt.toISOString())} AS TIMESTAMPTZ)`;
  const snapshot = `(SELECT ${cols.map(ident).join(', ')}, ${ts} AS _ts, ${hashOf(checked)} AS _h FROM ${source})`;
  const newVersion = (rel: string, vf: string, deleted: boolean) =>
    `SELECT ${cols.map(ident).join(', ')}, ${vf} AS ${ident(N.validFrom)}, ${marker} AS ${ident(N.validTo)}, true AS ${ident(N.isCurrent)},
       md5(concat_ws(chr(31), ${K.map((k) => `CAST(${ident(k)} AS VARCHAR)`).join(', ')}, CAST(${vf} AS VARCHAR))) AS ${ident(N.versionHash)},
       ${vf} AS ${ident(N.updatedAt)}, _h AS ${ROW_HASH}${model.hard_deletes === 'new_record' ? `, ${deleted} AS ${ident(N.isDeleted)}` : ''}
     FROM ${rel}`;
  const first =
    model.first_valid_from !== undefined ? `CAST(${lit(model.first_valid_from)} AS TIMESTAMPTZ)` : undefined;
  if (!prevVersions) {
    return writeGold(
      t,
      name,
      model,
      { mode: 'full', sql: finish(newVersion(snapshot, first ?? '_ts', false)), primaryKey: sk ? [sk.name] : [] },
      b.state,
    );
  }
  const eq = (a: string, b2: string) => K.map((k) => `${a}.${ident(k)} = ${b2}.${ident(k)}`).join(' AND ');
  const isDeleted = model.hard_deletes === 'new_record' ? `coalesce(c.${ident(N.isDeleted)}, false)` : 'false';
  // Narrow: the key, hash, change time and deleted flag of each current version.
  const curCols = [
    ...K.map(ident),
    ROW_HASH,
    ident(N.updatedAt),
    ...(model.hard_deletes === 'new_record' ? [ident(N.isDeleted)] : []),
  ];
  await lake.engine.run(
    `CREATE OR REPLACE TEMP TABLE _dip_scd_cur AS SELECT ${curCols.join(', ')} FROM ${prevVersions} WHERE ${ident(N.isCurrent)}`,
  );
  try {
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE _dip_scd_ch AS SELECT s.* FROM ${snapshot} AS s LEFT JOIN _dip_scd_cur AS c ON ${eq('s', 'c')}
       WHERE c.${ROW_HASH} IS NULL OR ${isDeleted} OR ${changed}`,
    );
    // A key never seen before starts at first_valid_from.
    if (first)
      await lake.engine.run(
        `UPDATE _dip_scd_ch AS s SET _ts = ${first} WHERE NOT EXISTS (SELECT 1 FROM ${prevVersions} AS d WHERE ${eq('d', 's')})`,
      );
    await lake.engine.run(
      model.hard_deletes === 'ignore'
        ? `CREATE OR REPLACE TEMP TABLE _dip_scd_gone AS SELECT ${K.map(ident).join(', ')} FROM _dip_scd_cur WHERE false`
        : `CREATE OR REPLACE TEMP TABLE _dip_scd_gone AS SELECT ${K.map((k) => `c.${ident(k)}`).join(', ')} FROM _dip_scd_cur AS c ANTI JOIN ${snapshot} AS s ON ${eq('c', 's')} WHERE NOT ${isDeleted}`,
    );
    const count = async (tbl: string) =>
      Number((await lake.engine.all(`SELECT count(*) AS n FROM ${tbl}`))[0]?.['n'] ?? 0);
    const changes = await count('_dip_scd_ch');
    const gone = await count('_dip_scd_gone');
    if (changes + gone === 0) return await commitStateOnly(t, name, model, b.state, 'incremental');
    const closes = `(SELECT ${K.map(ident).join(', ')}, _ts AS _close FROM _dip_scd_ch${gone ? ` UNION ALL SELECT ${K.map(ident).join(', ')}, ${snapAt} FROM _dip_scd_gone` : ''})`;
    const closed = `SELECT d.* REPLACE (CASE WHEN d.${ident(N.isCurrent)} AND x._close IS NOT NULL THEN x._close ELSE d.${ident(N.validTo)} END AS ${ident(N.validTo)},
        d.${ident(N.isCurrent)} AND x._close IS NULL AS ${ident(N.isCurrent)})
      FROM ${prevVersions} AS d LEFT JOIN ${closes} AS x ON ${eq('d', 'x')}`;
    const deletedVersions =
      model.hard_deletes === 'new_record'
        ? ` UNION ALL BY NAME ${newVersion(`(SELECT d.*, d.${ROW_HASH} AS _h FROM ${prevVersions} AS d SEMI JOIN _dip_scd_gone AS g ON ${eq('d', 'g')} WHERE d.${ident(N.isCurrent)})`, snapAt, true)}`
        : '';
    return await writeGold(
      t,
      name,
      model,
      {
        mode: 'incremental',
        sql: finish(`${closed} UNION ALL BY NAME ${newVersion('_dip_scd_ch', '_ts', false)}${deletedVersions}`),
        newRows: changes + (model.hard_deletes === 'new_record' ? gone : 0),
        primaryKey: sk ? [sk.name] : [],
      },
      b.state,
    );
  } finally {
    for (const tmp of ['_dip_scd_cur', '_dip_scd_ch', '_dip_scd_gone'])
      await lake.engine.run(`DROP TABLE IF EXISTS ${tmp}`);
  }
}
