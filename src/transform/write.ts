/**
 * Writing a silver table: the winners per key, the rows, the children, and the table change
 * to commit (see docs/architecture.md, "Silver zone").
 */
import type { CommitRequest, NewFile, TableChange, TableSchema } from '../catalog/types.js';
import type { SilverTableConfig } from '../config/silver.js';
import { ConfigError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
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
  /** Paths of the silver table's live files once committed. */
  liveAfter: string[];
  schema: TableSchema;
  rows: number;
  newRows: number;
}

const WINNERS = '_dip_winners';

/** `_dip_id` of a keyed row: md5 of its (masked) key values, so child rows can point at it. */
function keyIdSql(key: readonly string[], alias: string): string {
  return `md5(concat_ws(chr(31), ${key.map((c) => `CAST(${alias}.${ident(c)} AS VARCHAR)`).join(', ')}))`;
}

/**
 * Writes the silver table (and its children). With a primary key: a narrow pass picks the
 * latest record per key (by sort columns, then arrival) among the new rows and the table's
 * current rows, with first/last arrival per key; only the winning new rows are then
 * transformed and masked in full, and written together with the current rows that still win
 * (copy-on-write). Without a key: the new rows are appended.
 */
/** Judges unmasked columns of a relation for PII; `prefix` names a child table's columns (`<child>.`). */
export type PiiJudge = (
  relation: string,
  columns: readonly { name: string; type: string }[],
  prefix: string,
) => Promise<void>;

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
  const current = input.mode === 'full' ? [] : await lake.catalog.liveFiles(table);
  const head = (await lake.catalog.getTable(table))?.headCommit ?? null;
  const keep = plan.columns.filter((c) => !dropped.includes(c.name));
  const pk = plan.primaryKey;
  const out = (c: string) => plan.outputExpr.get(c) ?? ident(c);
  const masked = keep.map((c) => `${out(c.name)} AS ${ident(c.name)}`);
  const childCols = plan.children.map((c) => ident(c.column));
  const sourceFile = ident(SILVER_AUDIT.sourceFile);
  const target = { zone: 'silver' as const, source: ctx.pipeline, table: name };
  const meta = { run_id: runId, mode: input.mode };

  let rowsSql: string; // the table's rows after this build, with _dip_batch (1: from this build)
  let operation: CommitRequest['operation'];
  let newRowCount: number | undefined;
  if (pk.length) {
    const keyCols = [...new Set([...pk, ...plan.sortBy, ...(plan.deletedColumn ? [plan.deletedColumn] : [])])];
    // Files by hash, not path: a path per row of millions would not fit in memory.
    const pos = `hash(${POSITION_COLUMNS.file}) AS _f, ${POSITION_COLUMNS.row} AS _r`;
    const newKeys = `SELECT ${keyCols.map((c) => `${out(c)} AS ${ident(c)}`).join(', ')}, 1 AS _b, _dip_ingested_at AS _i, _dip_ingested_at AS _fs, _dip_ingested_at AS _ls, ${pos} FROM ${passing}`;
    const curScan = current.length
      ? parquetScan(
          current.map((f) => lake.storage.uri(f.path)),
          ['filename=true', 'file_row_number=true'],
        )
      : undefined;
    const curKeys = curScan
      ? ` UNION ALL BY NAME SELECT ${keyCols.map(ident).join(', ')}, 0 AS _b, NULL::TIMESTAMPTZ AS _i, ${SILVER_AUDIT.firstSeen} AS _fs, ${SILVER_AUDIT.lastSeen} AS _ls, hash(filename) AS _f, file_row_number AS _r FROM ${curScan}`
      : '';
    // Latest by the sort columns (nulls lowest), then this build over the table, then arrival.
    const order = [
      ...plan.sortBy.flatMap((c, i) => [`n${i} := ${ident(c)} IS NOT NULL`, `s${i} := ${ident(c)}`]),
      'b := _b',
      'i := _i',
      'f := _f',
      'r := _r',
    ].join(', ');
    const deleted = plan.deletedColumn ? `coalesce(TRY_CAST(${ident(plan.deletedColumn)} AS BOOLEAN), false)` : 'false';
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE ${WINNERS} AS
       SELECT ${pk.map(ident).join(', ')}, w.b AS b, w.f AS f, w.r AS r, w.d AS d, fs, ls FROM (
         SELECT ${pk.map(ident).join(', ')}, arg_max(struct_pack(b := _b, f := _f, r := _r, d := ${deleted}), struct_pack(${order})) AS w, min(_fs) AS fs, max(_ls) AS ls
         FROM (${newKeys}${curKeys}) GROUP BY ${pk.map(ident).join(', ')})`,
    );
    const winning = `(SELECT i.*, w.fs AS _dip_fs, w.ls AS _dip_ls FROM ${input.relation} AS i JOIN ${WINNERS} AS w ON w.b = 1 AND NOT w.d AND hash(i.${POSITION_COLUMNS.file}) = w.f AND i.${POSITION_COLUMNS.row} = w.r)`;
    const fresh = `SELECT *, ${keyIdSql(pk, 'n')} AS ${SILVER_AUDIT.id} FROM (
        SELECT ${[...masked, ...childCols].join(', ')}, ${sourceFile}, _dip_fs AS ${SILVER_AUDIT.firstSeen}, _dip_ls AS ${SILVER_AUDIT.lastSeen}, ${lit(runId)} AS ${SILVER_AUDIT.runId}, 1 AS _dip_batch
        FROM (${plan.clearSql(winning, ['_dip_fs', '_dip_ls'])})) AS n`;
    const kept = curScan
      ? ` UNION ALL BY NAME SELECT c.* EXCLUDE (filename, file_row_number) REPLACE (w.fs AS ${SILVER_AUDIT.firstSeen}, w.ls AS ${SILVER_AUDIT.lastSeen}), 0 AS _dip_batch
          FROM ${curScan} AS c JOIN ${WINNERS} AS w ON w.b = 0 AND NOT w.d AND hash(c.filename) = w.f AND c.file_row_number = w.r`
      : '';
    rowsSql = `${fresh}${kept}`;
    operation = current.length ? 'merge' : 'replace';
    newRowCount = Number(
      (await lake.engine.all(`SELECT count(*) AS n FROM ${WINNERS} WHERE b = 1 AND NOT d`))[0]?.['n'] ?? 0,
    );
  } else {
    rowsSql = `SELECT ${[...masked, ...childCols].join(', ')}, ${sourceFile},
        md5(concat_ws(':', ${POSITION_COLUMNS.file}, ${POSITION_COLUMNS.row})) AS ${SILVER_AUDIT.id},
        _dip_ingested_at AS ${SILVER_AUDIT.firstSeen}, _dip_ingested_at AS ${SILVER_AUDIT.lastSeen}, ${lit(runId)} AS ${SILVER_AUDIT.runId}, 1 AS _dip_batch
      FROM ${passing}`;
    operation = input.mode === 'full' ? 'replace' : 'append';
  }

  const hiddenOut = ['_dip_batch', ...plan.children.map((c) => c.column)].map(ident).join(', ');
  const files: NewFile[] = [];
  let parentFile: NewFile;
  let childChanges: TableChange[] = [];
  try {
    if (plan.children.length === 0) {
      parentFile = await writeLakeFile(lake, `SELECT * EXCLUDE (${hiddenOut}) FROM (${rowsSql})`, target, meta);
    } else {
      // Parent and children come from the same rows: materialize them once.
      await lake.engine.run(`CREATE OR REPLACE TEMP TABLE _dip_silver_out AS ${rowsSql}`);
      try {
        parentFile = await writeLakeFile(lake, `SELECT * EXCLUDE (${hiddenOut}) FROM _dip_silver_out`, target, meta);
        childChanges = await writeChildren(ctx, name, cfg, plan, pk.length > 0, input.mode === 'full', judgePii);
        files.push(...childChanges.flatMap((c) => c.add));
      } finally {
        await lake.engine.run('DROP TABLE IF EXISTS _dip_silver_out');
      }
    }
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${WINNERS}`);
  }
  files.push(parentFile);
  const replaceAll = pk.length > 0 || input.mode === 'full';
  const fileColumns = await lake.engine.describe(`SELECT * FROM ${parquetScan([lake.storage.uri(parentFile.path)])}`);
  // Appended files may lack columns older files have: the table's schema is their union.
  const before = replaceAll ? undefined : (await lake.catalog.schemaAt(table))?.schema;
  const schema: TableSchema = before ? evolveSchema(before, fileColumns, 'evolve').schema : { columns: fileColumns };
  const liveAfter = replaceAll ? [parentFile.path] : [...current.map((f) => f.path), parentFile.path];
  const changes: TableChange[] = [
    {
      table,
      zone: 'silver',
      format: 'parquet',
      primaryKey: pk,
      schema,
      add: [parentFile],
      // Even an append: two builds of one table at once must not both add the same bronze rows.
      expectedHead: head,
      ...(replaceAll ? { remove: 'all' as const } : {}),
    },
    ...childChanges,
  ];
  const total = replaceAll ? parentFile.rows : current.reduce((n, f) => n + f.rows, 0) + parentFile.rows;
  return { operation, changes, files, liveAfter, schema, rows: total, newRows: newRowCount ?? parentFile.rows };
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
    if (keyed && current.length) {
      // Keys this build touched (new winner or deleted) lose their old children.
      const touched = `SELECT ${keyIdSql(plan.primaryKey, WINNERS)} FROM ${WINNERS} WHERE b = 1`;
      const kept = `SELECT * FROM ${parquetScan(current.map((f) => lake.storage.uri(f.path)))} WHERE _dip_parent_id NOT IN (${touched})`;
      sql = `${kept} UNION ALL BY NAME ${sql}`;
    }
    const file = await writeLakeFile(
      lake,
      sql,
      { zone: 'silver', source: ctx.pipeline, table: `${name}__${child.name}` },
      { run_id: ctx.runId, parent: `silver.${name}` },
    );
    const schema = {
      columns: await lake.engine.describe(`SELECT * FROM ${parquetScan([lake.storage.uri(file.path)])}`),
    };
    const replace = keyed || full;
    out.push({
      table: childTable,
      zone: 'silver',
      format: 'parquet',
      schema,
      add: [file],
      ...(replace ? { remove: 'all' as const, expectedHead: head } : {}),
    });
  }
  return out;
}
