/**
 * The SQL of one silver table: bronze rows → flattened → standardized → derived and joined
 * (clear values, where checks run) → masked → deduplicated. Every step is a layer of one
 * DuckDB query, so a silver build is a few scans of bronze, never row-by-row work.
 */
import type { Column } from '../catalog/types.js';
import type { SilverTableConfig } from '../config/silver.js';
import { ConfigError } from '../core/errors.js';
import type { Engine } from '../lake/engine.js';
import { ident, lit } from '../lake/sql.js';
import { flattenColumns, type ArrayColumn } from './flatten.js';
import { maskExpression, type MaskContext } from './mask.js';
import { standardizeColumn, type StandardizedColumn } from './standardize.js';
import type { CompiledRowCheck } from '../quality/checks.js';

/** Columns the input relation carries beside the bronze row: where each row came from. */
export const POSITION_COLUMNS = { file: '_dip_bronze_file', row: '_dip_bronze_row' } as const;

/** Audit columns of every silver row. */
export const SILVER_AUDIT = {
  id: '_dip_id',
  firstSeen: '_dip_first_seen',
  lastSeen: '_dip_last_seen',
  runId: '_dip_run_id',
  sourceFile: '_dip_source_file',
} as const;

const BRONZE_AUDIT = new Set([
  '_dip_run_id',
  '_dip_ingested_at',
  '_dip_source',
  '_dip_source_file',
  POSITION_COLUMNS.file,
  POSITION_COLUMNS.row,
]);

export interface ChildPlan {
  /** Child table name suffix: silver.<table>__<name>. */
  name: string;
  /** The LIST column carried on the (clear) rows. */
  column: string;
  elementType: string;
  /** Element column name for scalar lists. */
  valueColumn: string;
  /** The flattened array (element fields excluded by exclude_columns stay out of the child table). */
  array?: ArrayColumn | undefined;
  /** Masks of child table columns (`columns: {<child>.<column>: {mask}}`): column → SQL over it. */
  masks: Map<string, string>;
}

export interface SilverPlan {
  /**
   * SELECT over the input relation (alias b) giving clear rows: silver columns, list columns of
   * children, audit + position columns, and `extra` input columns passed through unchanged.
   */
  clearSql: (inputRelation: string, extra?: readonly string[]) => string;
  /** Silver data columns in order (clear names and types), without audit columns. */
  columns: Column[];
  /** Conversion failures (declared types/formats) as row checks. */
  conversions: CompiledRowCheck[];
  /** SQL per silver column for the masked output (the column itself when unmasked). */
  outputExpr: Map<string, string>;
  masked: Set<string>;
  children: ChildPlan[];
  primaryKey: string[];
  sortBy: string[];
  deletedColumn: string | undefined;
  /**
   * Input (bronze) columns whose values feed a masked column (of this table or a child table):
   * a quarantined copy of a row keeps them only sealed (encrypted), never in clear.
   */
  sensitiveInputs: string[];
}

export interface PlanInputs {
  table: string;
  config: SilverTableConfig;
  /** Columns of the input relation (bronze columns + position columns). */
  inputColumns: readonly Column[];
  mask: MaskContext;
  /** SQL relation of a joined lake table or reference file. */
  joinRelation: (join: SilverTableConfig['joins'][number]) => Promise<string>;
  engine: Engine;
}

export async function planSilver(inputs: PlanInputs): Promise<SilverPlan> {
  const { table, config, engine } = inputs;
  const where = `silver.${table}`;
  const bronzeColumns = inputs.inputColumns.filter((c) => !BRONZE_AUDIT.has(c.name));
  const flat = flattenColumns(bronzeColumns, {
    maxDepth: config.nested.max_depth,
    arrays: config.nested.arrays,
    naming: config.naming,
    exclude: config.exclude_columns,
  });
  const arrays: ArrayColumn[] = flat.arrays;
  const audit = ['_dip_ingested_at', '_dip_source_file', POSITION_COLUMNS.file, POSITION_COLUMNS.row].filter((c) =>
    inputs.inputColumns.some((i) => i.name === c),
  );
  const flatSelect = [
    ...flat.columns.map((c) => `${c.expr} AS ${ident(c.name)}`),
    ...arrays.map((a) => `${a.expr} AS ${ident(a.name)}`),
    ...audit.map((c) => `b.${ident(c)}`),
  ];
  const flatSql = (input: string, extra: readonly string[] = []) =>
    `SELECT ${[...flatSelect, ...extra.map((c) => `b.${ident(c)}`)].join(', ')} FROM ${input} AS b`;

  // Columns computed from another column or expression (`from`) join the flattened ones.
  const flatNames = new Set(flat.columns.map((c) => c.name));
  const fromExprs = Object.entries(config.columns).filter(([, c]) => c.from !== undefined);
  const srcSql = (input: string, extra: readonly string[] = []) => {
    if (fromExprs.length === 0) return flatSql(input, extra);
    const replaced = fromExprs.filter(([n]) => flatNames.has(n));
    const added = fromExprs.filter(([n]) => !flatNames.has(n));
    const replace = replaced.length
      ? ` REPLACE (${replaced.map(([n, c]) => `(${c.from}) AS ${ident(n)}`).join(', ')})`
      : '';
    return `SELECT *${replace}${added.map(([n, c]) => `, (${c.from}) AS ${ident(n)}`).join('')} FROM (${flatSql(input, extra)}) AS f`;
  };
  const empty = `(SELECT * FROM ${inputTypesRelation(inputs.inputColumns)} LIMIT 0)`;
  let srcColumns: Column[];
  try {
    srcColumns = await engine.describe(srcSql(empty));
  } catch (err) {
    throw new ConfigError(
      `${where}: a column's \`from\` expression is not valid SQL over the input columns (${flat.columns.map((c) => c.name).join(', ')}): ${(err as Error).message}`,
    );
  }
  const srcTypes = new Map(srcColumns.map((c) => [c.name, c.type]));

  const childNames = new Set([...arrays.map((a) => a.name), ...Object.keys(config.children)]);
  for (const [name, cfg] of Object.entries(config.columns)) {
    const dot = name.indexOf('.');
    if (dot > 0) {
      // `<child>.<column>`: a column of the child table silver.<table>__<child>.
      const child = name.slice(0, dot);
      if (!childNames.has(child)) {
        throw new ConfigError(
          `${where}: columns.${name}: ${child} is not a child table of this table (child tables: ${[...childNames].join(', ') || 'none'})`,
        );
      }
      const other = Object.keys(cfg).filter((k) => k !== 'mask' && k !== 'pii');
      if (other.length)
        throw new ConfigError(
          `${where}: columns.${name}: only mask and pii apply to child table columns (got ${other.join(', ')})`,
        );
      if (cfg.pii && !cfg.mask) throw new ConfigError(`${where}: columns.${name} is declared pii but has no mask`);
      continue;
    }
    if (!srcTypes.has(name)) {
      throw new ConfigError(
        `${where}: columns.${name} is not a column of bronze.${bronzeName(config.from)} after flattening and naming (columns: ${[...srcTypes.keys()].filter((n) => !n.startsWith('_dip_') && !arrays.some((a) => a.name === n)).join(', ')})`,
      );
    }
  }

  const defaults = { trim: config.trim, emptyAsNull: config.empty_as_null, timezone: config.timezone };
  const std: StandardizedColumn[] = [];
  for (const c of srcColumns) {
    if (c.name.startsWith('_dip_') || arrays.some((a) => a.name === c.name)) continue;
    const cfg = config.columns[c.name];
    if (cfg?.drop) continue;
    std.push(standardizeColumn(c.name, ident(c.name), c.type, cfg, defaults));
  }
  // A value that does not convert follows the column's contract: discard_value keeps the row with
  // the value null (counted in the report, a warning); every other contract sends the row to
  // quarantine with the reason. Never a breach: mostly 0 (add checks to bound the share).
  const tableDataType = typeof config.contract === 'string' ? config.contract : config.contract.data_type;
  const conversions: CompiledRowCheck[] = std.flatMap((s) => {
    if (!s.failSql) return [];
    const discardValue = (config.columns[s.name]?.contract ?? tableDataType) === 'discard_value';
    return [
      {
        name: `type_${s.name}`,
        table: where,
        columns: [s.name],
        type: 'schema' as const,
        severity: discardValue ? ('warn' as const) : ('error' as const),
        mostly: 0,
        failSql: `coalesce(${s.failSql}, false)`,
        reasonSql: `${s.reasonSql ?? lit(`${s.name}: value does not convert`)}${discardValue ? ` || ' (set to null: contract discard_value)'` : ''}`,
        valueSql: `CAST(${ident(s.name)} AS VARCHAR)`,
      },
    ];
  });
  // A conversion's failure is judged on the unconverted value, so keep it beside the converted one.
  const stdSelect = [
    ...std.flatMap((s) => [
      `${s.expr} AS ${ident(s.name)}`,
      ...(s.offset ? [`${s.offset.expr} AS ${ident(s.offset.name)}`] : []),
    ]),
    ...conversions.map((c, i) => `${c.failSql} AS ${ident(`_dip_conv_${i}`)}`),
    ...conversions.map((c, i) => `CASE WHEN ${c.failSql} THEN ${c.reasonSql} END AS ${ident(`_dip_convr_${i}`)}`),
    ...arrays.map((a) => ident(a.name)),
    ...audit.map(ident),
  ];
  const stdSql = (input: string, extra: readonly string[] = []) =>
    `SELECT ${[...stdSelect, ...extra.map(ident)].join(', ')} FROM (${srcSql(input, extra)}) AS s`;
  const convChecks: CompiledRowCheck[] = conversions.map((c, i) => ({
    ...c,
    failSql: ident(`_dip_conv_${i}`),
    reasonSql: ident(`_dip_convr_${i}`),
  }));

  // Derived columns and joins see the standardized columns by name.
  const joins = await Promise.all(config.joins.map(async (j) => ({ j, relation: await inputs.joinRelation(j) })));
  const derived = Object.entries(config.derive);
  const children: ChildPlan[] = [];
  for (const [name, child] of Object.entries(config.children)) {
    children.push({ name, column: `_dip_child_${name}`, elementType: '', valueColumn: child.column, masks: new Map() });
  }
  for (const a of arrays)
    children.push({
      name: a.name,
      column: a.name,
      elementType: a.elementType,
      valueColumn: 'value',
      array: a,
      masks: new Map(),
    });
  for (const child of children) {
    for (const [key, cfg] of Object.entries(config.columns)) {
      if (!key.startsWith(`${child.name}.`) || !cfg.mask) continue;
      const col = key.slice(child.name.length + 1);
      child.masks.set(col, maskExpression(cfg.mask, ident(col), inputs.mask, key));
    }
  }
  const derSql = (input: string, extra: readonly string[] = []) => {
    const joinCols = joins.flatMap(({ j }) => Object.entries(j.columns).map(([n, e]) => `${e} AS ${ident(n)}`));
    const childCols = Object.entries(config.children).map(
      ([name, c]) => `(${c.expression}) AS ${ident(`_dip_child_${name}`)}`,
    );
    const from = [
      `(${stdSql(input, extra)}) AS s`,
      ...joins.map(({ j, relation }) => `LEFT JOIN ${relation} AS ${ident(j.alias)} ON ${j.on}`),
    ].join(' ');
    // Derived expressions may use each other in declaration order.
    let sql = `SELECT s.*${joinCols.map((c) => `, ${c}`).join('')}${childCols.map((c) => `, ${c}`).join('')} FROM ${from}`;
    for (const [name, expr] of derived) sql = `SELECT *, (${expr}) AS ${ident(name)} FROM (${sql}) AS d`;
    return sql;
  };
  let clearColumns: Column[];
  try {
    clearColumns = await engine.describe(derSql(empty));
  } catch (err) {
    throw new ConfigError(
      `${where}: derive, joins or children do not compile against the silver columns (${std.map((s) => s.name).join(', ')}): ${(err as Error).message}`,
    );
  }
  for (const child of children) {
    const col = clearColumns.find((c) => c.name === child.column);
    if (!child.elementType) {
      const m = col ? /^(.*)\[\]$/.exec(col.type) : null;
      if (!m)
        throw new ConfigError(
          `${where}: children.${child.name}.expression must give a LIST, it gives ${col?.type ?? 'nothing'}`,
        );
      child.elementType = m[1] as string;
    }
  }
  const hidden = new Set([
    ...children.map((c) => c.column),
    ...audit,
    ...conversions.flatMap((_, i) => [`_dip_conv_${i}`, `_dip_convr_${i}`]),
  ]);
  const columns = clearColumns.filter((c) => !hidden.has(c.name));

  const masked = new Set<string>();
  const outputExpr = new Map<string, string>();
  for (const c of columns) {
    const cfg = config.columns[c.name];
    if (cfg?.pii && !cfg.mask) {
      throw new ConfigError(
        `${where}: columns.${c.name} is declared pii but has no mask (set mask: hash | last4 | email | redact | tokenize | null, or a partial mask)`,
      );
    }
    if (cfg?.mask) {
      outputExpr.set(c.name, maskExpression(cfg.mask, ident(c.name), inputs.mask, c.name));
      masked.add(c.name);
    } else outputExpr.set(c.name, ident(c.name));
  }

  const primaryKey = config.primary_key ?? [];
  const sortBy =
    config.dedup?.sort_by === undefined
      ? []
      : Array.isArray(config.dedup.sort_by)
        ? config.dedup.sort_by
        : [config.dedup.sort_by];
  const deletedColumn = config.dedup?.deleted_column;
  const names = new Set(columns.map((c) => c.name));
  for (const [what, list] of [
    ['primary_key', primaryKey],
    ['dedup.sort_by', sortBy],
    ['dedup.deleted_column', deletedColumn ? [deletedColumn] : []],
  ] as const) {
    for (const k of list) {
      if (!names.has(k))
        throw new ConfigError(`${where}: ${what} "${k}" is not a silver column (columns: ${[...names].join(', ')})`);
    }
  }
  if (config.dedup && primaryKey.length === 0) throw new ConfigError(`${where}: dedup needs primary_key`);

  const sensitiveInputs = sensitiveInputColumns(
    bronzeColumns.map((c) => c.name),
    flat.columns,
    arrays,
    [...masked].map((name) => ({ name, from: config.columns[name]?.from })),
    children
      .filter((c) => c.masks.size > 0)
      .map((c) => ({ array: c.array, expression: config.children[c.name]?.expression })),
  );

  return {
    sensitiveInputs,
    clearSql: derSql,
    columns,
    conversions: convChecks,
    outputExpr,
    masked,
    children,
    primaryKey,
    sortBy,
    deletedColumn,
  };
}

/**
 * The top-level input columns a masked column is computed from: the column a flattened one
 * comes from, the columns a `from` expression or a child expression names (directly or by a
 * flattened name). When an expression names none of them, every input column counts: a clear
 * value must never be left in quarantine for want of knowing where it came from.
 */
function sensitiveInputColumns(
  inputs: readonly string[],
  flat: readonly { name: string; sourcePath: string[] }[],
  arrays: readonly ArrayColumn[],
  masked: readonly { name: string; from?: string | undefined }[],
  maskedChildren: readonly { array?: ArrayColumn | undefined; expression?: string | undefined }[],
): string[] {
  const out = new Set<string>();
  const top = (path: readonly string[]) => path[0];
  const byName = new Map<string, string>();
  for (const i of inputs) byName.set(i.toLowerCase(), i);
  for (const f of [...flat, ...arrays]) {
    const t = top(f.sourcePath);
    if (t !== undefined) byName.set(f.name.toLowerCase(), t);
  }
  const fromExpression = (expression: string) => {
    const stripped = expression.replace(/'(?:[^']|'')*'/g, "''");
    let found = false;
    for (const m of stripped.matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)) {
      const name = (m[1] !== undefined ? m[1].replaceAll('""', '"') : (m[2] ?? '')).toLowerCase();
      const input = byName.get(name);
      if (input !== undefined) {
        out.add(input);
        found = true;
      }
    }
    if (!found) for (const i of inputs) out.add(i);
  };
  for (const m of masked) {
    if (m.from !== undefined) {
      fromExpression(m.from);
      continue;
    }
    const input = byName.get(m.name.toLowerCase());
    if (input !== undefined) out.add(input);
    else for (const i of inputs) out.add(i);
  }
  for (const c of maskedChildren) {
    const t = c.array ? top(c.array.sourcePath) : undefined;
    if (t !== undefined) out.add(t);
    else fromExpression(c.expression ?? '');
  }
  return inputs.filter((i) => out.has(i));
}

/** `bronze.posts` or `posts` → `posts`. */
export function bronzeName(from: string): string {
  return from.startsWith('bronze.') ? from.slice('bronze.'.length) : from;
}

/** An empty relation with the given columns, for describing queries without data. */
function inputTypesRelation(columns: readonly Column[]): string {
  return `(SELECT ${columns.map((c) => `NULL::${c.type} AS ${ident(c.name)}`).join(', ')})`;
}
