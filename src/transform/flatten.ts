/**
 * Nested JSON in bronze (STRUCT, LIST, MAP and JSON columns) turned into flat, typed silver
 * columns: structs become parent__child columns down to a depth, deeper objects and maps become
 * JSON, lists go to child tables, JSON or stay lists. Pure SQL builders: nothing here runs a query.
 */
import { ident } from '../lake/sql.js';
import {
  isJsonType,
  parseDuckType,
  renderDuckType,
  withFieldType,
  type DuckType,
  type StructField,
} from '../lake/duck-types.js';
import { pathName, uniqueNames, type NamingMode } from './naming.js';

export interface FlatColumn {
  /** Output name: the path's segments named and joined with `__` (author__display_name), unique. */
  name: string;
  /** Source field names from the top-level column down: ['author', 'displayName']. */
  sourcePath: string[];
  /** SQL over the bronze alias, e.g. b."author"."displayName" (null when a parent is null). */
  expr: string;
  /** DuckDB type of `expr`. */
  type: string;
}

export interface ArrayColumn {
  /** Output name (the child table is <silver table>__<name>). */
  name: string;
  sourcePath: string[];
  /** SQL of the list over the bronze alias. */
  expr: string;
  /** DuckDB type of one element. */
  elementType: string;
  /** Paths inside the element (field names) excluded by `exclude_columns`; childTableSelect leaves them out. */
  excludePaths?: string[][];
}

export interface Flattened {
  columns: FlatColumn[];
  arrays: ArrayColumn[];
  /** `exclude` entries that matched no input column or path (e.g. a column the source no longer sends). */
  unmatchedExclude: string[];
}

export type ArraysMode = 'child_table' | 'json' | 'list';

export interface FlattenOptions {
  /** Struct levels flattened into parent__child columns; deeper structs become JSON. 0: none. */
  maxDepth: number;
  arrays: ArraysMode;
  naming: NamingMode;
  /** Input columns left out: top-level names, dotted paths (author.email, media.url) or flattened names (author__email). */
  exclude?: readonly string[];
}

export const PARENT_ID_COLUMN = '_dip_parent_id';
export const LIST_INDEX_COLUMN = '_dip_list_idx';

/** Matches paths against exclude entries (dotted source paths or flattened names), case-insensitively. */
class Excluder {
  private readonly entries: { raw: string; key: string }[];
  readonly used = new Set<string>();

  constructor(
    exclude: readonly string[],
    private readonly naming: NamingMode,
    /** Further excluded paths, matched exactly (child tables: the element paths excluded upstream). */
    private readonly extraPaths: readonly (readonly string[])[] = [],
  ) {
    this.entries = exclude.map((raw) => ({ raw, key: raw.toLowerCase() }));
  }

  excluded(path: readonly string[]): boolean {
    if (this.extraPaths.some((p) => samePath(p, path))) return true;
    if (this.entries.length === 0) return false;
    const dotted = path.join('.').toLowerCase();
    const named = pathName(path, this.naming).toLowerCase();
    let hit = false;
    for (const e of this.entries) {
      if (e.key === dotted || e.key === named) {
        this.used.add(e.raw);
        hit = true;
      }
    }
    return hit;
  }

  /** True when some path strictly below `path` in `type` is excluded. */
  excludesBelow(type: DuckType, path: readonly string[]): boolean {
    if (this.entries.length === 0 && this.extraPaths.length === 0) return false;
    switch (type.kind) {
      case 'struct':
        return type.fields.some((f) => {
          const p = [...path, f.name];
          return this.excluded(p) || this.excludesBelow(f.type, p);
        });
      case 'list':
        return this.excludesBelow(type.element, path);
      default:
        return false;
    }
  }

  /** Every excluded path strictly below `path` in `type`, relative to `path`. */
  excludedBelow(type: DuckType, path: readonly string[], rel: string[] = []): string[][] {
    switch (type.kind) {
      case 'struct':
        return type.fields.flatMap((f) => {
          const p = [...path, f.name];
          const r = [...rel, f.name];
          return this.excluded(p) ? [r] : this.excludedBelow(f.type, p, r);
        });
      case 'list':
        return this.excludedBelow(type.element, path, rel);
      default:
        return [];
    }
  }
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((s, i) => s.toLowerCase() === b[i]?.toLowerCase());
}

/**
 * A value with excluded descendants removed: structs rebuilt with struct_pack (null stays null),
 * lists through list_transform. Returns the SQL and the type of the result.
 */
function prune(
  expr: string,
  type: DuckType,
  path: readonly string[],
  ex: Excluder,
  lambdaDepth = 0,
): { expr: string; type: DuckType } {
  if (!ex.excludesBelow(type, path)) return { expr, type };
  if (type.kind === 'struct') {
    const fields: StructField[] = [];
    const parts: string[] = [];
    for (const f of type.fields) {
      const p = [...path, f.name];
      if (ex.excluded(p)) continue;
      const child = prune(fieldExpr(expr, f.name), f.type, p, ex, lambdaDepth);
      fields.push(withFieldType(f, child.type));
      parts.push(`${ident(f.name)} := ${child.expr}`);
    }
    if (parts.length === 0) return { expr: 'NULL::JSON', type: { kind: 'scalar', name: 'JSON' } };
    return {
      expr: `CASE WHEN ${expr} IS NULL THEN NULL ELSE struct_pack(${parts.join(', ')}) END`,
      type: { kind: 'struct', fields },
    };
  }
  if (type.kind === 'list') {
    const v = `_dip_x${lambdaDepth}`;
    const el = prune(v, type.element, path, ex, lambdaDepth + 1);
    return { expr: `list_transform(${expr}, lambda ${v}: ${el.expr})`, type: { kind: 'list', element: el.type } };
  }
  return { expr, type };
}

function fieldExpr(parent: string, field: string): string {
  return `${parent}.${ident(field)}`;
}

type Item =
  | { kind: 'column'; path: string[]; expr: string; type: string }
  | { kind: 'array'; path: string[]; expr: string; elementType: string; excludePaths: string[][] };

const JSON_TYPE = 'JSON';

/** A node as one JSON column: to_json of the (pruned) value; JSON values as they are. */
function jsonItem(path: string[], expr: string, type: DuckType, ex: Excluder): Item {
  if (isJsonType(type)) return { kind: 'column', path, expr, type: JSON_TYPE };
  const pruned = prune(expr, type, path, ex);
  return { kind: 'column', path, expr: `to_json(${pruned.expr})`, type: JSON_TYPE };
}

interface WalkOptions {
  maxDepth: number;
  arrays: ArraysMode;
}

/**
 * Appends the output columns of one node (a top-level column, a struct field or a list element)
 * in source order; `depth` is the number of struct levels already flattened above it.
 */
function walk(
  path: string[],
  expr: string,
  type: DuckType,
  depth: number,
  opts: WalkOptions,
  ex: Excluder,
  out: Item[],
): void {
  if (ex.excluded(path)) return;
  switch (type.kind) {
    case 'struct':
      if (depth < opts.maxDepth) {
        for (const f of type.fields) walk([...path, f.name], fieldExpr(expr, f.name), f.type, depth + 1, opts, ex, out);
      } else {
        out.push(jsonItem(path, expr, type, ex));
      }
      return;
    case 'list':
      if (opts.arrays === 'child_table') {
        out.push({
          kind: 'array',
          path,
          expr,
          elementType: renderDuckType(type.element),
          excludePaths: ex.excludedBelow(type, path),
        });
      } else if (opts.arrays === 'json') {
        out.push(jsonItem(path, expr, type, ex));
      } else {
        const pruned = prune(expr, type, path, ex);
        out.push({ kind: 'column', path, expr: pruned.expr, type: renderDuckType(pruned.type) });
      }
      return;
    case 'map':
      out.push(jsonItem(path, expr, type, ex));
      return;
    case 'scalar':
      out.push({ kind: 'column', path, expr, type: renderDuckType(type) });
      return;
  }
}

/**
 * The flat columns of a bronze relation. Structs are flattened into parent__child columns down to
 * `maxDepth` levels (0: none); a struct below that depth becomes one JSON column (to_json), so
 * silver stays flat. Lists: 'child_table' → returned in `arrays` (not in `columns`), 'json' → a
 * JSON column, 'list' → kept as the list. MAP → JSON; JSON columns stay JSON. Output names are
 * unique across columns and arrays (case-insensitively; later duplicates get _2, _3, …).
 * `alias` is the bronze relation's alias in the SELECT the expressions go into.
 */
export function flattenColumns(
  columns: readonly { name: string; type: string }[],
  options: FlattenOptions,
  alias = 'b',
): Flattened {
  const ex = new Excluder(options.exclude ?? [], options.naming);
  const items: Item[] = [];
  const rel = /^[a-z_][a-z0-9_]*$/.test(alias) ? alias : ident(alias);
  for (const c of columns) walk([c.name], `${rel}.${ident(c.name)}`, parseDuckType(c.type), 0, options, ex, items);
  const names = uniqueNames(items.map((it) => pathName(it.path, options.naming)));
  const out: Flattened = { columns: [], arrays: [], unmatchedExclude: [] };
  items.forEach((it, i) => {
    const name = names[i] ?? '';
    if (it.kind === 'column') out.columns.push({ name, sourcePath: it.path, expr: it.expr, type: it.type });
    else {
      const a: ArrayColumn = { name, sourcePath: it.path, expr: it.expr, elementType: it.elementType };
      if (it.excludePaths.length) a.excludePaths = it.excludePaths;
      out.arrays.push(a);
    }
  });
  out.unmatchedExclude = (options.exclude ?? []).filter((e) => !ex.used.has(e));
  return out;
}

export interface ChildTableOptions {
  /** Struct levels of the element flattened into columns (the element's own fields are level 1). */
  maxDepth: number;
  naming: NamingMode;
  /** DuckDB type of parentIdSql, reported in `columns` (default VARCHAR, e.g. an md5). */
  parentIdType?: string;
}

/**
 * The child table of one array: one row per element, in list order —
 * `_dip_parent_id` (parentIdSql), `_dip_list_idx` (0-based position), then the element: a struct
 * element flattened like the parent (fields → columns down to maxDepth, deeper structs, maps and
 * nested lists → JSON), any other element as the column `value`. Null and empty lists give no rows;
 * a null element gives a row of nulls. `parentRelation` (a table name or a parenthesised query) is
 * aliased `p` and must have the list in a column named `array.name`; parentIdSql is SQL over it
 * (e.g. md5(CAST(p.id AS VARCHAR)), or an unqualified column of it).
 */
export function childTableSelect(
  parentRelation: string,
  array: ArrayColumn,
  parentIdSql: string,
  options: ChildTableOptions,
): { sql: string; columns: { name: string; type: string }[] } {
  const element = parseDuckType(array.elementType);
  const ex = new Excluder([], options.naming, array.excludePaths ?? []);
  const elem = '_dip_c._dip_elem';
  const items: Item[] = [];
  if (element.kind === 'struct' && options.maxDepth > 0) {
    const opts: WalkOptions = { maxDepth: options.maxDepth, arrays: 'json' };
    for (const f of element.fields) walk([f.name], fieldExpr(elem, f.name), f.type, 1, opts, ex, items);
  } else if (element.kind === 'scalar') {
    items.push({ kind: 'column', path: [], expr: elem, type: renderDuckType(element) });
  } else {
    items.push(jsonItem([], elem, element, ex));
  }
  const names = uniqueNames(
    items.map((it) => (it.path.length ? pathName(it.path, options.naming) : 'value')),
    [PARENT_ID_COLUMN, LIST_INDEX_COLUMN],
  );
  const columns = [
    { name: PARENT_ID_COLUMN, type: options.parentIdType ?? 'VARCHAR' },
    { name: LIST_INDEX_COLUMN, type: 'BIGINT' },
  ];
  const select = [PARENT_ID_COLUMN, LIST_INDEX_COLUMN];
  items.forEach((it, i) => {
    const name = names[i] ?? 'value';
    if (it.kind !== 'column') return; // arrays: 'json' never yields arrays
    select.push(`${it.expr} AS ${ident(name)}`);
    columns.push({ name, type: it.type });
  });
  // unnest and generate_subscripts in one SELECT list walk the list in step (a LATERAL
  // `unnest(...) WITH ORDINALITY` join gives the same rows but measured ~30x slower). The cast
  // makes fixed-size arrays lists (a null ARRAY would otherwise unnest to nulls); on a list it is a no-op.
  const list = `CAST(p.${ident(array.name)} AS ${array.elementType}[])`;
  const inner =
    `SELECT ${parentIdSql} AS ${PARENT_ID_COLUMN}, generate_subscripts(${list}, 1) - 1 AS ${LIST_INDEX_COLUMN}, unnest(${list}) AS _dip_elem ` +
    `FROM ${parentRelation} AS p`;
  const sql = `SELECT ${select.join(', ')} FROM (${inner}) AS _dip_c`;
  return { sql, columns };
}
