/**
 * Loading lake tables into warehouses (PostgreSQL), exactly once. The destination keeps the
 * last lake commit it loaded per target, written in the same transaction as the rows
 * (`Warehouse.load`); a load reads the table as of its head commit now (a consistent cut)
 * and only what changed after the recorded commit:
 * - replace: every row, when the table moved past the recorded commit;
 * - append: the rows of files added after it;
 * - merge: the current rows whose key appears in a file added or removed since, upserted, and
 *   the keys no longer present deleted (CDC current tables: the latest change per key).
 * Rows travel as a CSV file DuckDB writes (nested values as JSON text) and the warehouse
 * streams to its bulk path. Lake-internal columns (`_dip_*`, `_cdc_*`) are not loaded.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { liveRowsSql } from '../lake/merge.js';
import { parquetScan } from '../lake/scan.js';
import { ident, lit } from '../lake/sql.js';
import { destinationSchema } from './destinations.js';
import type { LoadColumn, LoadMode, LoadOutcome, Warehouse, WarehouseModule } from './types.js';

export interface LoadTableSpec {
  /** Lake table, `zone.table`. */
  table: string;
  mode: LoadMode;
  /** Target table name (default: the lake table's name without the zone). */
  target?: string | undefined;
  schema?: string | undefined;
  /** Merge key (default: the lake table's primary key). */
  key?: readonly string[] | undefined;
  indexes?: readonly string[] | undefined;
  comments?: Readonly<Record<string, string>> | undefined;
}

export interface TableLoadResult {
  table: string;
  target: string;
  mode: LoadMode;
  /** The lake commit the target is at after this load. */
  commit: number | null;
  /** False when nothing was new since the recorded commit. */
  loaded: boolean;
  rows: number;
  deleted: number;
  bytes: number;
  ms: number;
}

const internal = (name: string): boolean => name.startsWith('_dip_') || name.startsWith('_cdc_');

/** A nested value (list, struct, map, JSON) as JSON text; everything else as DuckDB writes it. */
function exportExpr(c: LoadColumn): string {
  const t = c.type.toUpperCase();
  const nested = t.endsWith('[]') || t.startsWith('STRUCT') || t.startsWith('MAP') || t.startsWith('UNION');
  if (nested) return `CAST(to_json(${ident(c.name)}) AS VARCHAR) AS ${ident(c.name)}`;
  if (t === 'BLOB') return `'\\x' || hex(${ident(c.name)}) AS ${ident(c.name)}`;
  return ident(c.name);
}

/** Opens a warehouse destination from its config (validated against its kind's schema). */
export async function openWarehouse(config: unknown, baseDir: string): Promise<Warehouse> {
  const parsed = destinationSchema.parse(config);
  const module = (await import(`./${parsed.kind}/index.js`)) as { default: Partial<WarehouseModule> };
  if (!module.default.openWarehouse)
    throw new DipError('config', `destination kind ${parsed.kind} takes messages, not tables (use it with publish)`);
  return module.default.openWarehouse(parsed, { baseDir });
}

/** Loads one lake table into an open warehouse; see the module comment. */
export async function loadTable(lake: Lake, warehouse: Warehouse, spec: LoadTableSpec): Promise<TableLoadResult> {
  const started = Date.now();
  const info = await lake.catalog.getTable(spec.table);
  if (!info) throw new DipError('not_found', `load: no lake table ${spec.table}`);
  const targetTable = spec.target ?? spec.table.split('.').slice(1).join('.');
  const where = { lakeTable: spec.table, schema: spec.schema, table: targetTable };
  const result: TableLoadResult = {
    table: spec.table,
    target: `${spec.schema ?? ''}${spec.schema ? '.' : ''}${targetTable}`,
    mode: spec.mode,
    commit: null,
    loaded: false,
    rows: 0,
    deleted: 0,
    bytes: 0,
    ms: 0,
  };
  const head = info.headCommit;
  const after = await warehouse.lastLoaded(where);
  result.commit = after;
  if (head === null || (after !== null && head <= after)) return { ...result, ms: Date.now() - started };
  const schema = await lake.catalog.schemaAt(spec.table, head);
  const columns: LoadColumn[] = (schema?.schema.columns ?? [])
    .filter((c) => !internal(c.name))
    .map((c) => ({ name: c.name, type: c.type, comment: spec.comments?.[c.name] }));
  const key = [...(spec.key ?? info.primaryKey)];
  for (const k of key)
    if (!columns.some((c) => c.name === k))
      throw new DipError('config', `load ${spec.table}: key column ${k} is not a column of the table`);
  const files = await lake.catalog.liveFiles(spec.table, head);
  const uris = (list: typeof files): string[] => list.map((f) => lake.storage.uri(f.path));
  const select = columns.map(exportExpr).join(', ');
  const dir = await mkdtemp(join(tmpdir(), 'dip-load-'));
  try {
    const rowsCsv = join(dir, 'rows.csv');
    let deletesCsv: string | undefined;
    const copy = (sql: string, file: string): Promise<number> =>
      lake.engine.copy(`COPY (${sql}) TO ${lit(file)} (FORMAT csv, HEADER false)`);
    const current = (): string => liveRowsSql(`(SELECT * FROM ${parquetScan(uris(files))})`, files);
    const empty = `SELECT ${columns.map((c) => `CAST(NULL AS ${c.type}) AS ${ident(c.name)}`).join(', ')} WHERE false`;
    if (spec.mode === 'replace' || (spec.mode === 'merge' && after === null)) {
      await copy(files.length ? `SELECT ${select} FROM ${current()}` : empty, rowsCsv);
    } else if (spec.mode === 'append') {
      const added = files.filter((f) => f.addedCommit > (after ?? 0));
      await copy(added.length ? `SELECT ${select} FROM ${parquetScan(uris(added))}` : empty, rowsCsv);
    } else {
      if (!key.length)
        throw new DipError('config', `load ${spec.table}: mode merge needs a key (key: or a primary key)`);
      const before = await lake.catalog.liveFiles(spec.table, after ?? 0);
      const live = new Set(files.map((f) => f.id));
      const touched = [...files.filter((f) => f.addedCommit > (after ?? 0)), ...before.filter((f) => !live.has(f.id))];
      const keys = key.map(ident).join(', ');
      const changed = touched.length ? `SELECT DISTINCT ${keys} FROM ${parquetScan(uris(touched))}` : null;
      await copy(
        changed && files.length ? `SELECT ${select} FROM ${current()} WHERE (${keys}) IN (${changed})` : empty,
        rowsCsv,
      );
      if (changed) {
        deletesCsv = join(dir, 'deletes.csv');
        const now = files.length ? `SELECT ${keys} FROM ${current()}` : `SELECT ${keys} FROM (${empty})`;
        await copy(`${changed} EXCEPT ${now}`, deletesCsv);
      }
    }
    const outcome: LoadOutcome = await warehouse.load({
      ...where,
      mode: spec.mode,
      key,
      columns,
      indexes: spec.indexes ?? [],
      rowsCsv,
      deletesCsv,
      commit: head,
    });
    return { ...result, ...outcome, commit: head, loaded: true, ms: Date.now() - started };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Loads one declared destination table (the orchestrator's `load.<destination>.<target>` task). */
export async function loadDestinationTable(
  lake: Lake,
  destination: string,
  table: string,
  target: string,
): Promise<TableLoadResult> {
  const entry = lake.project.config.destinations?.[destination];
  if (!entry) throw new DipError('config', `no destination ${destination} in dip.yaml`);
  const spec = entry.tables.find(
    (t) =>
      t.table === table &&
      `${t.schema ? `${t.schema}.` : ''}${t.target ?? t.table.split('.').slice(1).join('.')}` === target,
  );
  if (!spec) throw new DipError('config', `destination ${destination} does not load ${table} into ${target}`);
  const { tables: _tables, ...connection } = entry;
  const warehouse = await openWarehouse(connection, lake.project.dir);
  try {
    return await loadTable(lake, warehouse, spec);
  } finally {
    await warehouse.close();
  }
}
