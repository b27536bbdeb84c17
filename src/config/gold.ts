/**
 * The gold zone of a pipeline (`gold:` in dip.yaml): modeled tables built from silver, gold and
 * bronze tables — SQL models (a SELECT in a `.sql` file of the models folder, or inline),
 * TypeScript models, SCD Type 2 dimensions, star-schema dimensions and facts, generated date
 * and time-of-day dimensions, and incremental aggregates. Each model's inputs come from the
 * tables it names, so the task graph orders gold builds after what they read.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { identifier } from './primitives.js';
import { checkSchema } from './silver.js';

const tableRef = z
  .string()
  .regex(/^(silver|bronze|gold)\.[a-z_][a-z0-9_]*$/, 'expected a table such as silver.orders or gold.dim_customer');

export const goldColumnDocSchema = z
  .union([
    z.string().describe('What the column means'),
    z.strictObject({
      description: z.string().optional().describe('What the column means'),
      type: z.string().min(1).optional().describe('DuckDB type the column is cast to'),
    }),
  ])
  .describe('Documentation of a gold column');

const common = {
  description: z.string().optional().describe('What the model holds'),
  columns: z
    .record(z.string(), goldColumnDocSchema)
    .default({})
    .describe('Column documentation (shown by dip describe), optionally with a type to cast to'),
  checks: z.array(checkSchema).default([]).describe('Data quality checks, as for silver tables'),
  depends_on: z
    .array(tableRef)
    .default([])
    .describe('Tables this model reads besides those its definition names (e.g. read by a TypeScript model)'),
  cluster_by: z
    .array(z.string().min(1))
    .default([])
    .describe('Columns the table is sorted by when written (a clustering hint carried to loaders)'),
};

const uniqueKey = z
  .array(z.string().min(1))
  .min(1)
  .describe('Columns identifying a row: incremental builds replace rows with the same key');

export const sqlModelSchema = z
  .strictObject({
    kind: z.literal('sql').default('sql'),
    ...common,
    sql: z
      .string()
      .min(1)
      .optional()
      .describe('The .sql file holding the SELECT, relative to dip.yaml (default: <models>/<name>.sql)'),
    query: z.string().min(1).optional().describe('The SELECT inline (instead of a .sql file)'),
    materialized: z
      .enum(['table', 'incremental', 'view'])
      .default('table')
      .describe(
        'table: rebuilt every build; incremental: only the input rows committed since the last build go through the SELECT, merged by unique_key; view: a view, nothing stored',
      ),
    unique_key: uniqueKey.optional(),
    incremental_from: tableRef
      .optional()
      .describe('Incremental: the input read as its new rows only (default: the first table the SELECT names)'),
  })
  .describe('A model defined by a SELECT over lake tables named zone.table');

export const moduleModelSchema = z
  .strictObject({
    kind: z.literal('module'),
    ...common,
    module: z.string().min(1).describe('TypeScript/JavaScript file, relative to dip.yaml'),
    export: z.string().min(1).default('default').describe('The exported function'),
    from: tableRef.describe('The input table whose rows the function receives in batches'),
    materialized: z.enum(['table', 'incremental']).default('table'),
    unique_key: uniqueKey.optional(),
    batch_rows: z.number().int().min(1).default(10_000).describe('Rows per batch handed to the function'),
  })
  .describe('A model computed by a function over batches of input rows (for what SQL cannot say)');

export const scd2NamesSchema = z
  .union([
    z.enum(['dip', 'dbt']).describe('dip: valid_from, valid_to, is_current, version_hash, updated_at; dbt: dbt_*'),
    z.strictObject({
      valid_from: identifier.optional(),
      valid_to: identifier.optional(),
      is_current: identifier.optional(),
      version_hash: identifier.optional(),
      updated_at: identifier.optional(),
      is_deleted: identifier.optional(),
    }),
  ])
  .default('dip')
  .describe(
    'Names of the history columns; dbt gives the dbt-snapshot names (dbt_valid_from, dbt_valid_to, dbt_scd_id, dbt_updated_at)',
  );

export const surrogateKeySchema = z
  .strictObject({
    name: identifier.describe('Column name, e.g. customer_key'),
    strategy: z
      .enum(['hash', 'sequence'])
      .default('hash')
      .describe(
        'hash: a stable 63-bit hash of the natural key (and version start); sequence: 1, 2, … kept across rebuilds',
      ),
  })
  .describe('A surrogate key column; adds the unknown (-1) and not-applicable (-2) member rows');

export const scd2ModelSchema = z
  .strictObject({
    kind: z.literal('scd2'),
    ...common,
    from: tableRef.describe('Silver table (timestamp or check strategy) or CDC change log (cdc strategy)'),
    unique_key: uniqueKey.describe('Natural key of the dimension'),
    strategy: z
      .enum(['timestamp', 'check', 'cdc'])
      .describe(
        'timestamp: a newer updated_at is a new version; check: a changed hash of check_cols is a new version; cdc: every change of a change log, in log order, is a version',
      ),
    updated_at: z.string().min(1).optional().describe('timestamp strategy: the column holding the change time'),
    check_cols: z
      .union([z.literal('all'), z.array(z.string().min(1)).min(1)])
      .default('all')
      .describe('check strategy: the columns whose change makes a new version'),
    columns_from: z
      .array(z.string().min(1))
      .optional()
      .describe('Columns of the input kept in the dimension (default: all but _dip_/_cdc_ audit columns)'),
    hard_deletes: z
      .enum(['ignore', 'invalidate', 'new_record'])
      .default('invalidate')
      .describe(
        'A key gone from the input (cdc: a delete): ignore it, close its current version (invalidate), or add a version flagged deleted (new_record)',
      ),
    names: scd2NamesSchema,
    valid_to_current: z
      .union([z.null(), z.string().min(1)])
      .default(null)
      .describe('valid_to of current versions: null, or a far-future timestamp such as 9999-12-31'),
    surrogate_key: surrogateKeySchema.optional(),
    first_valid_from: z
      .string()
      .min(1)
      .optional()
      .describe(
        "timestamp/check strategies: valid_from of a key's first version, e.g. 1900-01-01, so facts older than the first snapshot find it (default: the change time)",
      ),
    cdc: z
      .strictObject({
        position: z.array(z.string().min(1)).min(1).default(['_cdc_lsn', '_cdc_seq']),
        timestamp: z.string().min(1).default('_cdc_commit_ts'),
        deleted: z.string().min(1).default('_cdc_deleted'),
        op: z.string().min(1).default('_cdc_op'),
      })
      .default({
        position: ['_cdc_lsn', '_cdc_seq'],
        timestamp: '_cdc_commit_ts',
        deleted: '_cdc_deleted',
        op: '_cdc_op',
      })
      .describe('cdc strategy: the change log columns (defaults: a DIP change log)'),
  })
  .describe('A Type 2 slowly changing dimension: every version of every key, with its validity interval');

export const dimensionModelSchema = z
  .strictObject({
    kind: z.literal('dimension'),
    ...common,
    from: tableRef.describe('Table holding one row per natural key'),
    natural_key: uniqueKey.describe('Natural key of the dimension'),
    surrogate_key: surrogateKeySchema,
  })
  .describe('A Type 1 dimension: current rows with a surrogate key and unknown/not-applicable members');

export const dateDimensionSchema = z
  .strictObject({
    kind: z.literal('date_dimension'),
    ...common,
    start: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date such as 2024-01-01'),
    end: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date such as 2030-12-31'),
    fiscal_year_start_month: z.number().int().min(1).max(12).default(1).describe('Month the fiscal year starts in'),
    holidays: z
      .string()
      .min(1)
      .optional()
      .describe('CSV file (relative to dip.yaml) with columns date and name: the holidays'),
  })
  .describe('A generated date dimension (key yyyymmdd): ISO week, fiscal calendar, weekend and holiday flags');

export const timeDimensionSchema = z
  .strictObject({
    kind: z.literal('time_dimension'),
    ...common,
    grain: z.enum(['minute', 'second']).default('minute'),
  })
  .describe('A generated time-of-day dimension (key hhmm or hhmmss)');

export const factLookupSchema = z
  .strictObject({
    dimension: z
      .string()
      .min(1)
      .describe(
        'The dimension: a gold model of this pipeline (dimension, scd2 with surrogate_key, date or time dimension)',
      ),
    key: z
      .record(z.string().min(1), z.string().min(1))
      .describe('Dimension column → SQL over the fact row giving its value, e.g. {customer_id: customer_id}'),
    at: z
      .string()
      .min(1)
      .optional()
      .describe('Event time of the fact row (SQL): an SCD2 dimension is joined AS OF it (the version valid then)'),
    as: identifier.optional().describe("Name of the surrogate key column in the fact (default: the dimension's)"),
  })
  .describe('A surrogate key looked up by natural key; misses get the unknown member (-1), null keys -2');

export const factModelSchema = z
  .strictObject({
    kind: z.literal('fact'),
    ...common,
    from: z
      .union([tableRef, z.strictObject({ query: z.string().min(1) })])
      .describe('The fact rows: a table, or {query: SELECT …}'),
    lookups: z.array(factLookupSchema).default([]),
    grain: z.array(z.string().min(1)).min(1).optional().describe('Columns unique per fact row: checked'),
    drop: z.array(z.string().min(1)).default([]).describe('Columns of the input left out (e.g. natural keys)'),
  })
  .describe(
    'A fact table: input rows with dimension surrogate keys; other input columns are kept (degenerate dimensions)',
  );

export const aggregateModelSchema = z
  .strictObject({
    kind: z.literal('aggregate'),
    ...common,
    from: tableRef,
    group_by: z
      .record(identifier, z.string().min(1))
      .describe('Group columns: name → SQL, e.g. {day: CAST(ts AS DATE)}'),
    measures: z
      .record(identifier, z.string().min(1))
      .describe('Measures: name → aggregate SQL, e.g. {revenue: sum(amount)}'),
    where: z.string().min(1).optional().describe('Rows taken into the aggregate'),
  })
  .describe('A rollup updated incrementally: only the groups new input rows touch are recomputed');

export const goldModelSchema = z
  .discriminatedUnion('kind', [
    sqlModelSchema,
    moduleModelSchema,
    scd2ModelSchema,
    dimensionModelSchema,
    dateDimensionSchema,
    timeDimensionSchema,
    factModelSchema,
    aggregateModelSchema,
  ])
  .describe('A gold model');

export type GoldModelConfig = z.infer<typeof goldModelSchema>;
export type SqlModelConfig = z.infer<typeof sqlModelSchema>;
export type ModuleModelConfig = z.infer<typeof moduleModelSchema>;
export type Scd2ModelConfig = z.infer<typeof scd2ModelSchema>;
export type DimensionModelConfig = z.infer<typeof dimensionModelSchema>;
export type DateDimensionConfig = z.infer<typeof dateDimensionSchema>;
export type TimeDimensionConfig = z.infer<typeof timeDimensionSchema>;
export type FactModelConfig = z.infer<typeof factModelSchema>;
export type FactLookupConfig = z.infer<typeof factLookupSchema>;
export type AggregateModelConfig = z.infer<typeof aggregateModelSchema>;
export type SurrogateKeyConfig = z.infer<typeof surrogateKeySchema>;

/** Default folder of `.sql` model files, relative to dip.yaml. */
export const DEFAULT_MODELS_DIR = 'models';

/**
 * The `zone.table` names a SQL text refers to, in order of first mention: identifiers outside
 * string literals, quoted identifiers and comments. `known` restricts them to tables the
 * project knows of (others, e.g. a CTE alias `silver.x` cannot be, are all lake tables).
 */
export function sqlTableRefs(sql: string): string[] {
  const out: string[] = [];
  for (const m of sqlRefMatches(sql)) if (!out.includes(m.table)) out.push(m.table);
  return out;
}

/** Each `zone.table` reference with its offsets in the text (for rewriting an input). */
export function sqlRefMatches(sql: string): { table: string; start: number; end: number }[] {
  const out: { table: string; start: number; end: number }[] = [];
  const re =
    /'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|\/\*[\s\S]*?\*\/|\b(bronze|silver|gold)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b/gi;
  for (let m = re.exec(sql); m; m = re.exec(sql)) {
    if (m[1] === undefined || m[2] === undefined) continue;
    // `x.silver.orders` would be a column path, not a table.
    if (m.index > 0 && sql[m.index - 1] === '.') continue;
    out.push({ table: `${m[1].toLowerCase()}.${m[2].toLowerCase()}`, start: m.index, end: m.index + m[0].length });
  }
  return out;
}

/** The lake tables a gold model reads (`gold.<name>` of the same pipeline for lookups). */
export function goldModelInputs(name: string, model: GoldModelConfig): string[] {
  const reads: string[] = [];
  switch (model.kind) {
    case 'sql':
      reads.push(...sqlTableRefs(model.query ?? ''));
      break;
    case 'module':
    case 'scd2':
    case 'dimension':
    case 'aggregate':
      reads.push(model.from);
      break;
    case 'fact':
      reads.push(...(typeof model.from === 'string' ? [model.from] : sqlTableRefs(model.from.query)));
      for (const l of model.lookups) reads.push(l.dimension.includes('.') ? l.dimension : `gold.${l.dimension}`);
      break;
    case 'date_dimension':
    case 'time_dimension':
      break;
  }
  for (const c of model.checks) if (c.type === 'relationships') reads.push(c.to);
  reads.push(...model.depends_on);
  return [...new Set(reads)].filter((t) => t !== `gold.${name}`);
}

/**
 * Reads each SQL model's `.sql` file (its `sql:` path, or `<models>/<name>.sql` when the model
 * has no inline `query`) into `query`, so the task graph sees the tables it names. A missing or
 * empty file is a config error naming the model and the file.
 */
export function loadModelSql(
  pipelines: Record<string, { gold?: Record<string, GoldModelConfig> | undefined; models?: string | undefined }>,
  dir: string,
): void {
  for (const [pipeline, p] of Object.entries(pipelines)) {
    for (const [name, model] of Object.entries(p.gold ?? {})) {
      if (model.kind !== 'sql' || (model.query !== undefined && model.sql === undefined)) continue;
      if (model.query !== undefined)
        throw new ConfigError(`pipelines.${pipeline}.gold.${name}: set either sql (a file) or query, not both`);
      const rel = model.sql ?? `${p.models ?? DEFAULT_MODELS_DIR}/${name}.sql`;
      let text: string;
      try {
        text = readFileSync(resolve(dir, rel), 'utf8');
      } catch (err) {
        throw new ConfigError(
          `pipelines.${pipeline}.gold.${name}: cannot read the model's SQL file ${rel} (${(err as NodeJS.ErrnoException).code ?? 'error'}); write the SELECT there, set sql: to its path, or query: inline`,
          { cause: err },
        );
      }
      const trimmed = text.trim().replace(/;\s*$/, '');
      if (!trimmed)
        throw new ConfigError(`pipelines.${pipeline}.gold.${name}: the SQL file ${rel} is empty; expected a SELECT`);
      model.query = trimmed;
    }
  }
}
