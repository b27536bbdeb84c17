/**
 * Star schemas: Type 1 dimensions with surrogate keys, the generated date and time-of-day
 * dimensions, and facts whose rows get each dimension's surrogate key by natural key — for an
 * SCD2 dimension the version valid at the fact's event time (DuckDB ASOF JOIN). A natural key
 * found nowhere gets the unknown member (-1) and is counted in the quality report; a fact row
 * without a natural key gets the not-applicable member (-2). The declared grain is checked unique.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CheckConfig } from '../config/silver.js';
import type {
  DateDimensionConfig,
  DimensionModelConfig,
  FactModelConfig,
  GoldModelConfig,
  TimeDimensionConfig,
} from '../config/gold.js';
import { ConfigError } from '../core/errors.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { percentOf, type CheckResult } from '../quality/report.js';
import type { GoldState } from './inputs.js';
import { scd2Names } from './scd2.js';
import { NOT_APPLICABLE_MEMBER, UNKNOWN_MEMBER, withSurrogateKey } from './surrogate.js';
import { type GoldModelResult, type GoldTarget, writeGold } from './write.js';

const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;

const tableSql = (ref: string) => {
  const [zone, table] = ref.split('.') as [string, string];
  return `${ident(zone)}.${ident(table)}`;
};

export async function buildDimension(
  t: GoldTarget,
  name: string,
  model: DimensionModelConfig,
  state: GoldState,
): Promise<GoldModelResult> {
  const current = await t.lake.catalog.liveFiles(`gold.${name}`);
  const previous = current.length ? parquetScan(current.map((f) => t.lake.storage.uri(f.path))) : undefined;
  const sql = withSurrogateKey(
    `SELECT * FROM ${tableSql(model.from)}`,
    model.surrogate_key,
    model.natural_key,
    previous,
  );
  return writeGold(t, name, model, { mode: 'full', sql, primaryKey: [model.surrogate_key.name] }, state);
}

/** What a date dimension's definition depends on besides its config: the holiday file's content. */
export function holidaysFingerprint(dir: string, model: DateDimensionConfig): string {
  if (!model.holidays) return '';
  try {
    return createHash('sha256')
      .update(readFileSync(resolve(dir, model.holidays)))
      .digest('hex');
  } catch (err) {
    throw new ConfigError(
      `date dimension: cannot read holidays file ${model.holidays} (${(err as NodeJS.ErrnoException).code ?? 'error'}); expected a CSV with columns date,name`,
      { cause: err },
    );
  }
}

export async function buildDateDimension(
  t: GoldTarget,
  name: string,
  model: DateDimensionConfig,
  state: GoldState,
): Promise<GoldModelResult> {
  const m = model.fiscal_year_start_month;
  const holidays = model.holidays
    ? `(SELECT CAST(date AS DATE) AS h_date, min(name) AS h_name FROM read_csv(${lit(resolve(t.lake.project.dir, model.holidays))}, header = true, columns = {'date': 'DATE', 'name': 'VARCHAR'}) GROUP BY 1)`
    : `(SELECT NULL::DATE AS h_date, NULL::VARCHAR AS h_name WHERE false)`;
  if (model.end < model.start) throw new ConfigError(`gold.${name}: end ${model.end} is before start ${model.start}`);
  const sql = `SELECT CAST(strftime(d, '%Y%m%d') AS INTEGER) AS date_key, d AS date, year(d) AS year, quarter(d) AS quarter,
      month(d) AS month, monthname(d) AS month_name, day(d) AS day_of_month, isodow(d) AS day_of_week, dayname(d) AS day_name,
      dayofyear(d) AS day_of_year, week(d) AS iso_week, isoyear(d) AS iso_year, isodow(d) >= 6 AS is_weekend,
      ((month(d) - ${m} + 12) % 12) + 1 AS fiscal_month,
      year(d) + CASE WHEN ${m} > 1 AND month(d) >= ${m} THEN 1 ELSE 0 END AS fiscal_year,
      (((month(d) - ${m} + 12) % 12) // 3) + 1 AS fiscal_quarter,
      h_date IS NOT NULL AS is_holiday, h_name AS holiday_name
    FROM (SELECT CAST(range AS DATE) AS d FROM range(DATE ${lit(model.start)}, DATE ${lit(model.end)} + INTERVAL 1 DAY, INTERVAL 1 DAY))
    LEFT JOIN ${holidays} ON h_date = d
    UNION ALL BY NAME SELECT ${UNKNOWN_MEMBER} AS date_key UNION ALL BY NAME SELECT ${NOT_APPLICABLE_MEMBER} AS date_key
    ORDER BY date_key`;
  return writeGold(t, name, model, { mode: 'full', sql, primaryKey: ['date_key'] }, state);
}

export async function buildTimeDimension(
  t: GoldTarget,
  name: string,
  model: TimeDimensionConfig,
  state: GoldState,
): Promise<GoldModelResult> {
  const seconds = model.grain === 'second';
  const sql = `SELECT ${seconds ? 'h * 10000 + m * 100 + s' : 'h * 100 + m'} AS time_key, make_time(h, m, ${seconds ? 's' : '0'}) AS time,
      h AS hour, m AS minute${seconds ? ', s AS second' : ''}, CASE WHEN h < 12 THEN 'AM' ELSE 'PM' END AS am_pm,
      CASE WHEN h < 6 THEN 'night' WHEN h < 12 THEN 'morning' WHEN h < 18 THEN 'afternoon' ELSE 'evening' END AS day_part
    FROM range(0, 24) AS a(h), range(0, 60) AS b(m)${seconds ? ', range(0, 60) AS c(s)' : ''}
    UNION ALL BY NAME SELECT ${UNKNOWN_MEMBER} AS time_key UNION ALL BY NAME SELECT ${NOT_APPLICABLE_MEMBER} AS time_key
    ORDER BY time_key`;
  return writeGold(t, name, model, { mode: 'full', sql, primaryKey: ['time_key'] }, state);
}

interface DimKeys {
  table: string;
  key: string;
  validity?: { from: string; to: string } | undefined;
  current?: string | undefined;
}

function dimensionKeys(fact: string, dim: string, models: Record<string, GoldModelConfig>): DimKeys {
  const name = dim.startsWith('gold.') ? dim.slice('gold.'.length) : dim;
  const model = Object.hasOwn(models, name) ? models[name] : undefined;
  const table = `gold.${name}`;
  if (!model)
    throw new ConfigError(
      `gold.${fact}: lookup dimension ${dim} is not a gold model of this pipeline (models: ${Object.keys(models).join(', ')})`,
    );
  switch (model.kind) {
    case 'scd2': {
      if (!model.surrogate_key)
        throw new ConfigError(
          `gold.${fact}: dimension ${table} has no surrogate_key; set one to look it up from facts`,
        );
      const n = scd2Names(model);
      return {
        table,
        key: model.surrogate_key.name,
        validity: { from: n.validFrom, to: n.validTo },
        current: n.isCurrent,
      };
    }
    case 'dimension':
      return { table, key: model.surrogate_key.name };
    case 'date_dimension':
      return { table, key: 'date_key' };
    case 'time_dimension':
      return { table, key: 'time_key' };
    default:
      throw new ConfigError(
        `gold.${fact}: ${table} is a ${model.kind} model, not a dimension (dimension, scd2, date_dimension, time_dimension)`,
      );
  }
}

export async function buildFact(
  t: GoldTarget,
  name: string,
  model: FactModelConfig,
  models: Record<string, GoldModelConfig>,
  state: GoldState,
): Promise<GoldModelResult> {
  const base = typeof model.from === 'string' ? `SELECT * FROM ${tableSql(model.from)}` : model.from.query;
  const computed: string[] = [];
  const joins: string[] = [];
  const keys: string[] = [];
  const hidden: string[] = [];
  model.lookups.forEach((l, i) => {
    const dim = dimensionKeys(name, l.dimension, models);
    const out = l.as ?? dim.key;
    const pairs = Object.entries(l.key);
    // A plain column is referred to as it is; an expression is computed once into a hidden column
    // (copies of plain columns would travel through every join).
    const factSide = pairs.map(([, expr], j) => {
      if (PLAIN.test(expr)) return `f.${ident(expr)}`;
      computed.push(`(${expr}) AS _lk${i}_${j}`);
      hidden.push(`_lk${i}_${j}`);
      return `f._lk${i}_${j}`;
    });
    const asOf = dim.validity && l.at !== undefined;
    let at = '';
    if (asOf && l.at !== undefined) {
      if (PLAIN.test(l.at)) at = `f.${ident(l.at)}`;
      else {
        computed.push(`CAST(${l.at} AS TIMESTAMPTZ) AS _la${i}`);
        hidden.push(`_la${i}`);
        at = `f._la${i}`;
      }
    }
    const dimCols = [
      `${ident(dim.key)} AS _sk${i}`,
      ...pairs.map(([col], j) => `${ident(col)} AS _dk${i}_${j}`),
      ...(asOf && dim.validity
        ? [`${ident(dim.validity.from)} AS _vf${i}`, `${ident(dim.validity.to)} AS _vt${i}`]
        : []),
    ];
    // Without an event time an SCD2 dimension is joined on its current versions.
    const where = `${ident(dim.key)} >= 0${dim.validity && !asOf && dim.current ? ` AND ${ident(dim.current)}` : ''}`;
    const rel = `(SELECT ${dimCols.join(', ')} FROM ${tableSql(dim.table)} WHERE ${where}) AS _d${i}`;
    const on = factSide.map((f, j) => `_d${i}._dk${i}_${j} = ${f}`).join(' AND ');
    joins.push(asOf ? `ASOF LEFT JOIN ${rel} ON ${on} AND ${at} >= _d${i}._vf${i}` : `LEFT JOIN ${rel} ON ${on}`);
    const anyNull = factSide.map((f) => `${f} IS NULL`).join(' OR ');
    const expired = asOf ? ` OR (_d${i}._vt${i} IS NOT NULL AND ${at} >= _d${i}._vt${i})` : '';
    keys.push(
      `CASE WHEN ${anyNull} THEN ${NOT_APPLICABLE_MEMBER} WHEN _d${i}._sk${i} IS NULL${expired} THEN ${UNKNOWN_MEMBER} ELSE _d${i}._sk${i} END AS ${ident(out)}`,
    );
  });
  const exclude = [...hidden, ...model.drop].map((c) => ident(c));
  const from = computed.length ? `(SELECT *${computed.map((c) => `, ${c}`).join('')} FROM (${base}))` : `(${base})`;
  const sql = `SELECT f.* ${exclude.length ? `EXCLUDE (${exclude.join(', ')})` : ''}${keys.map((k) => `, ${k}`).join('')}
    FROM ${from} AS f ${joins.join(' ')}`;
  const outs = model.lookups.map((l) => l.as ?? dimensionKeys(name, l.dimension, models).key);
  const grain: CheckConfig[] = model.grain
    ? [{ type: 'unique', name: 'grain', columns: model.grain, severity: 'error', mostly: 1 } as CheckConfig]
    : [];
  return writeGold(
    t,
    name,
    model,
    {
      mode: 'full',
      sql,
      checks: grain,
      afterWrite: async (relation) => {
        if (outs.length === 0) return { results: [] };
        const row =
          (
            await t.lake.engine.all(
              `SELECT count(*) AS n${outs.map((o, i) => `, count(*) FILTER (WHERE ${ident(o)} = ${UNKNOWN_MEMBER}) AS m${i}`).join('')} FROM ${relation}`,
            )
          )[0] ?? {};
        const rows = Number(row['n'] ?? 0);
        const misses: Record<string, number> = {};
        const results = outs.map((o, i): CheckResult => {
          const failed = Number(row[`m${i}`] ?? 0);
          misses[o] = failed;
          return {
            name: `lookup_${o}`,
            type: 'relationships',
            level: 'row',
            severity: 'warn',
            mostly: 1,
            evaluated: rows,
            failed,
            percent: percentOf(rows, failed),
            passed: failed === 0,
            message: `${failed} of ${rows} rows found no ${o} (unknown member ${UNKNOWN_MEMBER})`,
            samples: [],
          };
        });
        return { results, misses };
      },
    },
    state,
  );
}
