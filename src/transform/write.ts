/**
 * Writing a silver table: the winners per key, the rows, the children, and the table change
 * to commit (see docs/architecture.md, "Silver zone").
 */
import type { CommitRequest, NewFile, TableChange, TableSchema } from '../catalog/types.js';
import type { SilverTableConfig } from '../config/silver.js';
import { ConfigError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import {
  TOMBSTONE,
  type MorFile,
  currentEntriesSql,
  morMeta,
  morRowCount,
  morRowsSql,
  nextMorSeq,
  tableRowsSql,
} from '../lake/deletes.js';
import { parquetScan } from '../lake/scan.js';
import { evolveSchema } from '../lake/schema-evolution.js';
import { ident, lit } from '../lake/sql.js';
import { writeLakeFile } from '../lake/write-file.js';
import { childTableSelect } from './flatten.js';
import { POSITION_COLUMNS, SILVER_AUDIT, type SilverPlan } from './plan.js';

export type SilverMode = 'full' | 'incremental' | 'replay';

/** Where a build writes: the lake, the pipeline (the folder under each zone) and the run. */
export interface BuildTarget {
  lake: Lake;
  pipeline: string;
  runId: string;
}

export interface WrittenSilver {
  operation: CommitRequest['operation'];
  changes: TableChange[];
  files: NewFile[];
  /** A relation of the silver table's rows once committed (merged on read). */
  relationAfter: string;
  schema: TableSchema;
  rows: number;
  newRows: number;
}

const WINNERS = '_dip_winners';
const NEW_KEYS = '_dip_new_keys';
const CHILD_GONE = '_dip_child_gone';

/** `_dip_id` of a keyed row: md5 of its (masked) key values, so child rows can point at it. */
function keyIdSql(key: readonly string[], alias: string): string {
  return `md5(concat_ws(chr(31), ${key.map((c) => `CAST(${alias}.${ident(c)} AS VARCHAR)`).join(', ')}))`;
}

/** Judges unmasked columns of a relation for PII; `prefix` names a child table's columns (`<child>.`). */
export type PiiJudge = (
  relation: string,
  columns: readonly { name: string; type: string }[],
  prefix: string,
) => Promise<void>;

/**
 * Writes the silver table (and its children). With a primary key: a narrow pass picks the
 * latest record per key (by sort columns, then arrival) among the new rows and the current
 * rows of those keys, with first/last arrival per key; only the winning new rows are then
 * transformed and masked in full. A full build writes them as the table's base file; later
 * builds write an upsert file (the new winners, and current rows whose arrival times moved)
 * and a delete file naming the keys whose earlier rows they replace or delete
 * (merge-on-read, `lake/deletes.ts`). Without a key: the new rows are appended.
 */
export async function writeSilver(
  ctx: BuildTarget,
  name: string,
  cfg: SilverTableConfig,
  plan: SilverPlan,
  passing: string,
  input: { mode: SilverMode; relation: string },
  dropped: readonly string[],
  judgePii: PiiJudge,
): Promise<WrittenSilver> {
  const { lake } = ctx;
  const table = `silver.${name}`;
  const runId = ctx.runId;
  const uri = (p: string) => lake.storage.uri(p);
  const current = input.mode === 'full' ? [] : await lake.catalog.liveFiles(table);
  const head = (await lake.catalog.getTable(table))?.headCommit ?? null;
  const keep = plan.columns.filter((c) => !dropped.includes(c.name));
  const pk = plan.primaryKey;
  const out = (c: string) => plan.outputExpr.get(c) ?? ident(c);
  const masked = keep.map((c) => `${out(c.name)} AS ${ident(c.name)}`);
  const childCols = plan.children.map((c) => ident(c.column));
  const sourceFile = ident(SILVER_AUDIT.sourceFile);
  const target = { zone: 'silver' as const, source: ctx.pipeline, table: name };
  // A keyed table with rows gets this build's changes as an upsert and a delete file (merge-on-read).
  const onRead = pk.length > 0 && current.length > 0;
  const seq = onRead ? nextMorSeq(current) : 0;
  const meta = { run_id: runId, mode: input.mode, ...(pk.length ? morMeta(onRead ? 'upsert' : 'base', seq) : {}) };

  let rowsSql: string; // the rows this build writes, with _dip_batch (1: new from bronze)
  let operation: CommitRequest['operation'];
  let newRowCount: number | undefined;
  let deleteFile: NewFile | undefined;
  const files: NewFile[] = [];
  let parentFile: NewFile;
  let childChanges: TableChange[] = [];
  try {
    if (pk.length) {
      const keyed = await pickWinners(lake, plan, passing, onRead ? current : []);
      const winning = `(SELECT i.*, w.fs AS _dip_fs, w.ls AS _dip_ls FROM ${input.relation} AS i JOIN ${WINNERS} AS w ON w.b = 1 AND NOT w.d AND hash(i.${POSITION_COLUMNS.file}) = w.f AND i.${POSITION_COLUMNS.row} = w.r)`;
      const fresh = `SELECT *, ${keyIdSql(pk, 'n')} AS ${SILVER_AUDIT.id} FROM (
        SELECT ${[...masked, ...childCols].join(', ')}, ${sourceFile}, _dip_fs AS ${SILVER_AUDIT.firstSeen}, _dip_ls AS ${SILVER_AUDIT.lastSeen}, ${lit(runId)} AS ${SILVER_AUDIT.runId}, 1 AS _dip_batch
        FROM (${plan.clearSql(winning, ['_dip_fs', '_dip_ls'])})) AS n`;
      // Current rows that still win but whose first/last arrival moved are written again.
      const on = pk.map((c) => `c.${ident(c)} IS NOT DISTINCT FROM w.${ident(c)}`).join(' AND ');
      const rewritten =
        keyed.rewritten > 0
          ? ` UNION ALL BY NAME SELECT c.* REPLACE (w.fs AS ${SILVER_AUDIT.firstSeen}, w.ls AS ${SILVER_AUDIT.lastSeen}), 0 AS _dip_batch
          FROM (${morRowsSql(uri, current)}) AS c JOIN ${WINNERS} AS w ON w.b = 0 AND NOT w.d AND w.existed AND ${AUDIT_MOVED} AND ${on}`
          : '';
      rowsSql = `${fresh}${rewritten}`;
      operation = onRead ? 'merge' : 'replace';
      newRowCount = keyed.fresh;
      // Keys whose rows this build replaced or deleted, and tombstones of deleted keys (lake/deletes.ts).
      const sortOut = plan.deletedColumn ? plan.sortBy.map((c, i) => `_v${i} AS ${ident(c)}`) : [];
      const entries = `SELECT ${[...pk.map(ident), `d AS ${TOMBSTONE}`, ...sortOut].join(', ')}, fs AS ${SILVER_AUDIT.firstSeen}, ls AS ${SILVER_AUDIT.lastSeen} FROM ${WINNERS}`;
      if (onRead && keyed.gone + keyed.tombstones > 0) {
        deleteFile = await writeLakeFile(lake, `${entries} WHERE ${GONE} OR ${TOMB}`, target, {
          run_id: runId,
          ...morMeta('delete', seq, { on: pk, hides: keyed.gone, tombstones: true }),
        });
        files.push(deleteFile);
      } else if (!onRead && keyed.tombstones > 0) {
        deleteFile = await writeLakeFile(lake, `${entries} WHERE d`, target, {
          run_id: runId,
          ...morMeta('tombstones', 0, { on: pk, hides: 0, tombstones: true }),
        });
        files.push(deleteFile);
      }
    } else {
      rowsSql = `SELECT ${[...masked, ...childCols].join(', ')}, ${sourceFile},
        md5(concat_ws(':', ${POSITION_COLUMNS.file}, ${POSITION_COLUMNS.row})) AS ${SILVER_AUDIT.id},
        _dip_ingested_at AS ${SILVER_AUDIT.firstSeen}, _dip_ingested_at AS ${SILVER_AUDIT.lastSeen}, ${lit(runId)} AS ${SILVER_AUDIT.runId}, 1 AS _dip_batch
      FROM ${passing}`;
      operation = input.mode === 'full' ? 'replace' : 'append';
    }

    const hiddenOut = ['_dip_batch', ...plan.children.map((c) => c.column)].map(ident).join(', ');
    if (plan.children.length === 0) {
      parentFile = await writeLakeFile(lake, `SELECT * EXCLUDE (${hiddenOut}) FROM (${rowsSql})`, target, meta);
    } else {
      // Parent and children come from the same rows: materialize them once.
      await lake.engine.run(`CREATE OR REPLACE TEMP TABLE _dip_silver_out AS ${rowsSql}`);
      try {
        parentFile = await writeLakeFile(lake, `SELECT * EXCLUDE (${hiddenOut}) FROM _dip_silver_out`, target, meta);
        childChanges = await writeChildren(
          ctx,
          name,
          cfg,
          plan,
          pk.length > 0,
          input.mode === 'full' || (pk.length > 0 && !onRead),
          judgePii,
        );
        files.push(...childChanges.flatMap((c) => c.add));
      } finally {
        await lake.engine.run('DROP TABLE IF EXISTS _dip_silver_out');
      }
    }
  } catch (err) {
    await lake.storage.delete(files.map((f) => f.path)).catch(() => undefined);
    throw err;
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${WINNERS}`);
  }
  files.push(parentFile);
  const replaceAll = (pk.length > 0 && !onRead) || input.mode === 'full';
  const fileColumns = await lake.engine.describe(`SELECT * FROM ${parquetScan([uri(parentFile.path)])}`);
  // Appended (and upsert) files may lack columns older files have: the table's schema is their union.
  const before = replaceAll ? undefined : (await lake.catalog.schemaAt(table))?.schema;
  const schema: TableSchema = before ? evolveSchema(before, fileColumns, 'evolve').schema : { columns: fileColumns };
  const added = [parentFile, ...(deleteFile ? [deleteFile] : [])];
  const after: MorFile[] = replaceAll ? added : [...current, ...added];
  const changes: TableChange[] = [
    {
      table,
      zone: 'silver',
      format: 'parquet',
      primaryKey: pk,
      schema,
      add: added,
      // Even an append: two builds of one table at once must not both add the same bronze rows.
      expectedHead: head,
      ...(replaceAll ? { remove: 'all' as const } : {}),
    },
    ...childChanges,
  ];
  return {
    operation,
    changes,
    files,
    relationAfter: tableRowsSql(uri, after),
    schema,
    rows: morRowCount(after),
    newRows: newRowCount ?? parentFile.rows,
  };
}

/** First or last arrival of the key moved with this build. */
const MOVED = '(fs IS DISTINCT FROM ofs OR ls IS DISTINCT FROM ols)';
/** Winners that replace or delete a row the table held (the old row goes: the delete file). */
const GONE = `(existed AND (b = 1 OR ${MOVED}))`;
/** Deleted keys whose tombstone is new or moved. */
const TOMB = `(d AND (b = 1 OR ${MOVED}))`;
/** A current row that still wins, but whose first or last arrival changed. */
const AUDIT_MOVED = '(w.fs IS DISTINCT FROM w.ofs OR w.ls IS DISTINCT FROM w.ols)';

/**
 * The winner per key (temp table `_dip_winners`): a narrow pass over key and sort columns of
 * the passing new rows and, merging on read, of the current rows with those keys only, by
 * (sort columns, this build over the table, arrival); with first/last arrival per key, and
 * whether the table held the key (`existed`, its first/last arrival then: `ofs`, `ols`).
 */
async function pickWinners(
  lake: Lake,
  plan: SilverPlan,
  passing: string,
  current: readonly MorFile[],
): Promise<{ fresh: number; gone: number; rewritten: number; tombstones: number }> {
  const pk = plan.primaryKey;
  const out = (c: string) => plan.outputExpr.get(c) ?? ident(c);
  const keyCols = [...new Set([...pk, ...plan.sortBy, ...(plan.deletedColumn ? [plan.deletedColumn] : [])])];
  const keys = pk.map(ident).join(', ');
  // Files by hash, not path: a path per row of millions would not fit in memory.
  const pos = `hash(${POSITION_COLUMNS.file}) AS _f, ${POSITION_COLUMNS.row} AS _r`;
  const newKeys = `SELECT ${keyCols.map((c) => `${out(c)} AS ${ident(c)}`).join(', ')}, 1 AS _b, _dip_ingested_at AS _i, _dip_ingested_at AS _fs, _dip_ingested_at AS _ls, ${pos}, false AS _tomb FROM ${passing}`;
  let rows = `(${newKeys})`;
  if (current.length) {
    // Only the current rows (or tombstones) of keys this build brings: read for them, never held.
    await lake.engine.run(`CREATE OR REPLACE TEMP TABLE ${NEW_KEYS} AS ${newKeys}`);
    const audit = [SILVER_AUDIT.firstSeen, SILVER_AUDIT.lastSeen];
    const cur = currentEntriesSql(
      (p) => lake.storage.uri(p),
      current,
      pk,
      [...keyCols, ...audit],
      `(SELECT DISTINCT ${keys} FROM ${NEW_KEYS})`,
    );
    rows = `(SELECT * FROM ${NEW_KEYS} UNION ALL BY NAME
      SELECT ${keyCols.map((c) => `c.${ident(c)}`).join(', ')}, 0 AS _b, NULL::TIMESTAMPTZ AS _i, c.${SILVER_AUDIT.firstSeen} AS _fs, c.${SILVER_AUDIT.lastSeen} AS _ls, 0::UBIGINT AS _f, 0::BIGINT AS _r, c.${SILVER_AUDIT.firstSeen} AS _ofs, c.${SILVER_AUDIT.lastSeen} AS _ols, c._tomb AS _tomb
      FROM (${cur}) AS c)`;
  }
  // Latest by the sort columns (nulls lowest), then this build over the table, then arrival.
  const order = [
    ...plan.sortBy.flatMap((c, i) => [`n${i} := ${ident(c)} IS NOT NULL`, `s${i} := ${ident(c)}`]),
    'b := _b',
    'i := _i',
    'f := _f',
    'r := _r',
  ].join(', ');
  const deleted = plan.deletedColumn
    ? `(_tomb OR coalesce(TRY_CAST(${ident(plan.deletedColumn)} AS BOOLEAN), false))`
    : '_tomb';
  const winner = [
    'b := _b',
    'f := _f',
    'r := _r',
    `d := ${deleted}`,
    ...(plan.deletedColumn ? plan.sortBy.map((c, i) => `v${i} := ${ident(c)}`) : []),
  ].join(', ');
  // A full build holds no current rows: the temp table (every key of the table) stays narrow.
  const old = current.length ? `, bool_or(_b = 0 AND NOT _tomb) AS existed, max(_ofs) AS ofs, max(_ols) AS ols` : '';
  const sortValues = plan.deletedColumn ? plan.sortBy.map((_, i) => `w.v${i} AS _v${i}, `).join('') : '';
  try {
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE ${WINNERS} AS
       SELECT ${keys}, w.b AS b, w.f AS f, w.r AS r, w.d AS d, ${sortValues}fs, ls${current.length ? ', existed, ofs, ols' : ''} FROM (
         SELECT ${keys}, arg_max(struct_pack(${winner}), struct_pack(${order})) AS w, min(_fs) AS fs, max(_ls) AS ls${old}
         FROM ${rows} GROUP BY ${keys})`,
    );
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${NEW_KEYS}`);
  }
  const counts = (
    await lake.engine.all(
      current.length
        ? `SELECT count(*) FILTER (WHERE b = 1 AND NOT d) AS fresh, count(*) FILTER (WHERE ${GONE}) AS gone,
             count(*) FILTER (WHERE existed AND b = 0 AND NOT d AND ${MOVED}) AS rewritten,
             count(*) FILTER (WHERE ${TOMB}) AS tombstones
           FROM ${WINNERS}`
        : `SELECT count(*) FILTER (WHERE b = 1 AND NOT d) AS fresh, 0 AS gone, 0 AS rewritten, count(*) FILTER (WHERE d) AS tombstones FROM ${WINNERS}`,
    )
  )[0];
  return {
    fresh: Number(counts?.['fresh'] ?? 0),
    gone: Number(counts?.['gone'] ?? 0),
    rewritten: Number(counts?.['rewritten'] ?? 0),
    tombstones: Number(counts?.['tombstones'] ?? 0),
  };
}

/**
 * Child tables: rows of the lists on this build's rows (`_dip_silver_out` with _dip_batch 1);
 * with a key, children of parents this build replaced or deleted go, the others stay.
 */
async function writeChildren(
  ctx: BuildTarget,
  name: string,
  cfg: SilverTableConfig,
  plan: SilverPlan,
  keyed: boolean,
  full: boolean,
  judgePii: PiiJudge,
): Promise<TableChange[]> {
  const { lake } = ctx;
  const out: TableChange[] = [];
  for (const child of plan.children) {
    const childTable = `silver.${name}__${child.name}`;
    const current = full ? [] : await lake.catalog.liveFiles(childTable);
    const head = (await lake.catalog.getTable(childTable))?.headCommit ?? null;
    const fresh = childTableSelect(
      `(SELECT * FROM _dip_silver_out WHERE _dip_batch = 1)`,
      child.array ?? {
        name: child.column,
        sourcePath: [child.name],
        expr: ident(child.column),
        elementType: child.elementType,
      },
      ident(SILVER_AUDIT.id),
      { maxDepth: cfg.nested.max_depth, naming: cfg.naming },
    );
    let sql = fresh.sql;
    if (child.valueColumn !== 'value' && fresh.columns.some((c) => c.name === 'value')) {
      sql = `SELECT * EXCLUDE (value), value AS ${ident(child.valueColumn)} FROM (${sql})`;
    }
    if (child.masks.size) {
      const names = new Set(fresh.columns.map((c) => (c.name === 'value' ? child.valueColumn : c.name)));
      const unknown = [...child.masks.keys()].filter((c) => !names.has(c));
      if (unknown.length) {
        throw new ConfigError(
          `silver.${name}: columns.${child.name}.${unknown[0]} is not a column of silver.${name}__${child.name} (columns: ${[...names].join(', ')})`,
        );
      }
      sql = `SELECT * REPLACE (${[...child.masks].map(([c, expr]) => `${expr} AS ${ident(c)}`).join(', ')}) FROM (${sql})`;
    }
    const childColumns = fresh.columns
      .map((c) => (c.name === 'value' ? { ...c, name: child.valueColumn } : c))
      .filter((c) => !c.name.startsWith('_dip_') && !child.masks.has(c.name));
    await judgePii(`(${sql})`, childColumns, `${child.name}.`);
    const target = { zone: 'silver' as const, source: ctx.pipeline, table: `${name}__${child.name}` };
    const onRead = keyed && current.length > 0;
    const seq = onRead ? nextMorSeq(current) : 0;
    const added: NewFile[] = [];
    if (onRead) {
      // Parents this build replaced or deleted lose their children: a delete file of their ids.
      const touched = `SELECT ${keyIdSql(plan.primaryKey, WINNERS)} FROM ${WINNERS} WHERE existed AND b = 1`;
      const cur = morRowsSql((p) => lake.storage.uri(p), current) ?? 'SELECT NULL AS _dip_parent_id WHERE false';
      await lake.engine.run(
        `CREATE OR REPLACE TEMP TABLE ${CHILD_GONE} AS SELECT _dip_parent_id, count(*) AS n FROM (${cur}) WHERE _dip_parent_id IN (${touched}) GROUP BY 1`,
      );
      try {
        const hides = Number(
          (await lake.engine.all(`SELECT coalesce(sum(n), 0) AS n FROM ${CHILD_GONE}`))[0]?.['n'] ?? 0,
        );
        if (hides > 0)
          added.push(
            await writeLakeFile(lake, `SELECT _dip_parent_id FROM ${CHILD_GONE}`, target, {
              run_id: ctx.runId,
              parent: `silver.${name}`,
              ...morMeta('delete', seq, { on: ['_dip_parent_id'], hides }),
            }),
          );
      } finally {
        await lake.engine.run(`DROP TABLE IF EXISTS ${CHILD_GONE}`);
      }
    }
    const file = await writeLakeFile(lake, sql, target, {
      run_id: ctx.runId,
      parent: `silver.${name}`,
      ...(keyed ? morMeta(onRead ? 'upsert' : 'base', seq) : {}),
    });
    added.unshift(file);
    const fileColumns = await lake.engine.describe(`SELECT * FROM ${parquetScan([lake.storage.uri(file.path)])}`);
    const replace = (keyed && !onRead) || full;
    // Upsert files may lack columns older files have (appends keep the file's columns, as before).
    const before = onRead ? (await lake.catalog.schemaAt(childTable))?.schema : undefined;
    const schema = before ? evolveSchema(before, fileColumns, 'evolve').schema : { columns: fileColumns };
    out.push({
      table: childTable,
      zone: 'silver',
      format: 'parquet',
      schema,
      add: added,
      ...(replace ? { remove: 'all' as const, expectedHead: head } : keyed ? { expectedHead: head } : {}),
    });
  }
  return out;
}
