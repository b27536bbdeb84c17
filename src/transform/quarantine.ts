/**
 * Silver quarantine: rows a silver build refused (failed error-severity checks, values that
 * do not convert, schema contract discards), kept as the input row plus why, in
 * `quarantine.silver__<table>`, until `dip quarantine replay` lands them once fixed.
 */
import type { Column, NewFile } from '../catalog/types.js';
import { anyFailureSql, evaluateRowChecks, type CompiledRowCheck } from '../quality/checks.js';
import type { CheckResult } from '../quality/report.js';
import type { Lake } from '../lake/lake.js';
import { ident, lit } from '../lake/sql.js';
import { writeLakeFile } from '../lake/write-file.js';
import { POSITION_COLUMNS } from './plan.js';
import type { Sealer } from './seal.js';
import type { BuildTarget } from './write.js';

export const QUARANTINE_META = {
  check: '_dip_check',
  reason: '_dip_reason',
  at: '_dip_quarantined_at',
  runId: '_dip_quarantine_run_id',
} as const;

export function quarantineTableName(silverTable: string): string {
  return `quarantine.silver__${silverTable}`;
}

const FLAGS = '_dip_flags';
export const REJECTS = '_dip_rejects';

/**
 * One pass over the clear rows computes every row check's flag (and reason, only where it
 * fails) into a temp table keyed by input position; the report and the rejected rows both come
 * from it, so the checks (regexes, lookups) run once per row.
 */
export async function flagRows(
  lake: Lake,
  clear: string,
  checks: readonly CompiledRowCheck[],
): Promise<{ results: CheckResult[]; rows: number }> {
  // Flags first, in an inner SELECT: a check with a subquery (relationships) cannot be referred to by alias.
  const flags = checks.map((c, i) => `coalesce(${c.failSql}, false) AS _dq_f${i}`);
  const reasons = checks.map((c, i) => `CASE WHEN _dq_f${i} THEN ${c.reasonSql} END AS _dq_r${i}`);
  // Positions only for rows that fail something: a path per row of millions would not fit in memory.
  const stored = checks.map((c, i) => ({ ...c, failSql: `_dq_f${i}`, reasonSql: `_dq_r${i}` }));
  const anyFlag = anyFailureSql(stored);
  const pos = [
    `CASE WHEN ${anyFlag} THEN ${POSITION_COLUMNS.file} END AS f`,
    `CASE WHEN ${anyFlag} THEN ${POSITION_COLUMNS.row} END AS r`,
  ];
  const inner = `SELECT *${flags.map((f) => `, ${f}`).join('')} FROM ${clear}`;
  await lake.engine.run(
    `CREATE OR REPLACE TEMP TABLE ${FLAGS} AS SELECT ${[...checks.map((_, i) => `_dq_f${i}`), ...reasons, ...pos].join(', ')} FROM (${inner}) AS _dq`,
  );
  try {
    const results = checks.length ? await evaluateRowChecks(lake.engine, FLAGS, stored) : [];
    const rows =
      results[0]?.evaluated ?? Number((await lake.engine.all(`SELECT count(*) AS n FROM ${FLAGS}`))[0]?.['n'] ?? 0);
    const errors = checks.map((c, i) => ({ c, i })).filter(({ c }) => c.severity === 'error');
    const any = anyFailureSql(stored.filter((c) => c.severity === 'error'));
    const names = errors.map(({ c, i }) => `CASE WHEN _dq_f${i} THEN ${lit(c.name)} END`).join(', ') || 'NULL';
    const why =
      errors
        .map(({ c, i }) => `CASE WHEN _dq_f${i} THEN ${lit(`${c.name}: `)} || coalesce(_dq_r${i}, 'failed') END`)
        .join(', ') || 'NULL';
    await lake.engine.run(
      `CREATE OR REPLACE TEMP TABLE ${REJECTS} AS SELECT f, r, concat_ws(', ', ${names}) AS checks, concat_ws('; ', ${why}) AS reasons FROM ${FLAGS} WHERE ${any}`,
    );
    return { results, rows };
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${FLAGS}`);
  }
}

/** Column of a quarantined row holding its sealed input columns (those feeding masked columns). */
export const SEALED_COLUMN = '_dip_sealed';
const SEALED_ROWS = '_dip_sealed_rows';
const CLEAR_ROWS = '_dip_clear_rows';
const SEAL_CHUNK = 10_000;
const UNSEALED_ROWS = '_dip_unsealed_rows';

/** Input columns of masked columns and the sealer that encrypts them in quarantine. */
export interface QuarantineSeal {
  columns: readonly Column[];
  sealer: Sealer;
}

/**
 * Rows refused by error checks, as the input row (bronze columns) plus which checks failed and
 * why. Input columns that feed a masked column are null in the file; their values are kept only
 * sealed (AES-256-GCM, as JSON) in `_dip_sealed`, so quarantine holds no clear PII of masked columns.
 */
export async function writeQuarantine(
  ctx: BuildTarget,
  name: string,
  inputRelation: string,
  at: Date,
  seal?: QuarantineSeal,
): Promise<NewFile> {
  const { lake } = ctx;
  const join = `FROM ${inputRelation} AS i JOIN ${REJECTS} AS q ON i.${POSITION_COLUMNS.file} = q.f AND i.${POSITION_COLUMNS.row} = q.r`;
  const meta = `q.checks AS ${QUARANTINE_META.check}, q.reasons AS ${QUARANTINE_META.reason},
      ${lit(at.toISOString())}::TIMESTAMPTZ AS ${QUARANTINE_META.at}, ${lit(ctx.runId)} AS ${QUARANTINE_META.runId}`;
  const target = { zone: 'quarantine' as const, source: ctx.pipeline, table: `silver__${name}` };
  if (!seal || seal.columns.length === 0)
    return writeLakeFile(lake, `SELECT i.*, ${meta} ${join}`, target, { run_id: ctx.runId });
  // The clear values go through Node in chunks (a temp table, not a file, holds them meanwhile).
  await lake.engine.run(
    `CREATE OR REPLACE TEMP TABLE ${CLEAR_ROWS} AS SELECT row_number() OVER () AS n, q.f AS f, q.r AS r, to_json({${seal.columns.map((c) => `${lit(c.name)}: i.${ident(c.name)}`).join(', ')}})::VARCHAR AS j ${join}`,
  );
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE ${SEALED_ROWS} (n BIGINT, s VARCHAR)`);
  try {
    for (let from = 1; ; from += SEAL_CHUNK) {
      const clear = await lake.engine.all(
        `SELECT n, j FROM ${CLEAR_ROWS} WHERE n >= ${from} AND n < ${from + SEAL_CHUNK}`,
      );
      if (clear.length === 0) break;
      // Sealed values are base64url: one comma-separated literal parses far faster than a VALUES row each.
      const sealed = clear.map((row) => `${Number(row['n'])}:${seal.sealer.seal(String(row['j']))}`);
      await lake.engine.run(
        `INSERT INTO ${SEALED_ROWS} SELECT CAST(split_part(x, ':', 1) AS BIGINT), substr(x, strpos(x, ':') + 1) FROM (SELECT unnest(string_split(${lit(sealed.join(','))}, ',')) AS x)`,
      );
    }
    const nulls = seal.columns.map((c) => `CAST(NULL AS ${c.type}) AS ${ident(c.name)}`).join(', ');
    const positions = `(SELECT c.f, c.r, s.s FROM ${CLEAR_ROWS} AS c JOIN ${SEALED_ROWS} AS s USING (n))`;
    const sql = `SELECT * REPLACE (${nulls}) FROM (SELECT i.*, s.s AS ${SEALED_COLUMN}, ${meta} ${join} LEFT JOIN ${positions} AS s ON s.f = q.f AND s.r = q.r)`;
    return await writeLakeFile(lake, sql, target, { run_id: ctx.runId });
  } finally {
    await lake.engine.run(`DROP TABLE IF EXISTS ${CLEAR_ROWS}`);
    await lake.engine.run(`DROP TABLE IF EXISTS ${SEALED_ROWS}`);
  }
}

async function insertRows(lake: Lake, table: string, rows: readonly [string, number, string][]): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await lake.engine.run(
      `INSERT INTO ${table} VALUES ${chunk.map(([f, r, s]) => `(${lit(f)}, ${r}, ${lit(s)})`).join(', ')}`,
    );
  }
}

/**
 * The quarantine rows of `scan` with sealed values opened (for replay), as a relation without
 * `_dip_sealed`; `dispose` drops the temp table holding the opened values. Rows written before
 * sealing existed pass through as they are.
 */
export async function unsealedQuarantine(
  lake: Lake,
  scan: string,
  sealer: () => Promise<Sealer>,
): Promise<{ relation: string; dispose: () => Promise<void> }> {
  const columns = await lake.engine.describe(`SELECT * FROM ${scan}`);
  if (!columns.some((c) => c.name === SEALED_COLUMN)) return { relation: scan, dispose: async () => undefined };
  const sealed = await lake.engine.all(
    `SELECT ${POSITION_COLUMNS.file} AS f, ${POSITION_COLUMNS.row} AS r, ${SEALED_COLUMN} AS s FROM ${scan} WHERE ${SEALED_COLUMN} IS NOT NULL`,
  );
  const open = sealed.length ? await sealer() : undefined;
  const keys = new Set<string>();
  const rows: [string, number, string][] = sealed.map((row) => {
    const j = (open as Sealer).unseal(String(row['s']));
    for (const k of Object.keys(JSON.parse(j) as Record<string, unknown>)) keys.add(k);
    return [String(row['f']), Number(row['r']), j];
  });
  await lake.engine.run(`CREATE OR REPLACE TEMP TABLE ${UNSEALED_ROWS} (f VARCHAR, r BIGINT, j VARCHAR)`);
  await insertRows(lake, UNSEALED_ROWS, rows);
  const nested = (type: string) => /[()[\]]/.test(type) || /^JSON$/i.test(type.trim());
  const restore = columns
    .filter((c) => keys.has(c.name))
    .map((c) => {
      const path = lit(`$.${JSON.stringify(c.name)}`);
      const value = nested(c.type)
        ? `CAST(json_extract(u.j, ${path}) AS ${c.type})`
        : `CAST(json_extract_string(u.j, ${path}) AS ${c.type})`;
      return `CASE WHEN u.j IS NULL THEN q.${ident(c.name)} ELSE ${value} END AS ${ident(c.name)}`;
    });
  const replace = restore.length ? ` REPLACE (${restore.join(', ')})` : '';
  return {
    relation: `(SELECT q.* EXCLUDE (${SEALED_COLUMN})${replace} FROM ${scan} AS q LEFT JOIN ${UNSEALED_ROWS} AS u ON u.f = q.${POSITION_COLUMNS.file} AND u.r = q.${POSITION_COLUMNS.row})`,
    dispose: async () => {
      await lake.engine.run(`DROP TABLE IF EXISTS ${UNSEALED_ROWS}`);
    },
  };
}
