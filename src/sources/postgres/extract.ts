/**
 * Reads PostgreSQL tables and queries into CSV units with `COPY (SELECT …) TO STDOUT`: the
 * server renders the text, Node only moves bytes to a local file and DuckDB types them.
 *
 * Full: one consistent snapshot (pg_export_snapshot) shared by `parallel` connections, each
 * copying ctid ranges of the table, so big tables are read in parallel yet as of one instant.
 * Incremental: keyset pages on (cursor, primary key) inside one repeatable-read transaction.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { DipError, errorMessage } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { DbColumn, DbStream, IncrementalState } from '../database/types.js';
import { csvUnit, incrementalStart, selectList } from '../database/types.js';
import { hasNewTies, newTiesSql, tieCountSql, tieCounts } from '../database/ties.js';
import type { PlanContext, ReadUnit } from '../types.js';
import { connect } from './connection.js';
import { copyOut } from './copy-out.js';
import { ident, qualified } from '../../lake/sql.js';
import { withSpan } from '../../observe/trace.js';

export interface ExtractOptions {
  client: pg.ClientConfig;
  label: string;
  parallel: number;
}

/** FROM clause of a stream: its table, or its query as a subquery. */
function fromClause(s: DbStream): string {
  if (s.table) return qualified(s.table.schema, s.table.name);
  return `(${s.query as string}) AS q`;
}

const csvCopy = (select: string) => `COPY (${select}) TO STDOUT (FORMAT csv, HEADER true)`;

/** Copies one SELECT to a local CSV file; returns its size in bytes. */
/** COPY of one extract into a CSV file, traced as a `db.extract` span. */
export function copyToFile(client: pg.Client, select: string, path: string, signal: AbortSignal): Promise<number> {
  return withSpan('db.extract', { 'db.system': 'postgresql' }, async (span) => {
    const bytes = await copyToFileUntraced(client, select, path, signal);
    span.setAttribute('dip.bytes', bytes);
    return bytes;
  });
}

async function copyToFileUntraced(
  client: pg.Client,
  select: string,
  path: string,
  signal: AbortSignal,
): Promise<number> {
  const source = client.query(
    copyOut(csvCopy(select)) as unknown as pg.Submittable,
  ) as unknown as NodeJS.ReadableStream;
  try {
    await pipeline(source, createWriteStream(path), { signal });
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  return (await stat(path)).size;
}

interface Range {
  label: string;
  where: string;
}

async function ctidRanges(client: pg.Client, s: DbStream, parallel: number): Promise<Range[]> {
  const table = s.table;
  if (!table?.splittable) return [{ label: 'all rows', where: 'true' }];
  const regclass = qualified(table.schema, table.name);
  const r = await client.query<{ pages: string; reltuples: number; relpages: number }>(
    `SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int AS pages, c.reltuples, c.relpages
     FROM pg_class c WHERE c.oid = $1::regclass`,
    [regclass],
  );
  const row = r.rows[0];
  const pages = Number(row?.pages ?? 0);
  if (pages <= 1) return [{ label: 'all rows', where: 'true' }];
  const rowsPerPage = row && row.reltuples > 0 && row.relpages > 0 ? row.reltuples / row.relpages : 60;
  // Enough ranges to keep units near chunk_rows, and at least one per connection.
  const count = Math.max(Math.min(parallel, pages), Math.ceil((pages * rowsPerPage) / s.chunkRows));
  const step = Math.ceil(pages / count);
  const ranges: Range[] = [];
  // A short first range: the engine starts staging sooner instead of idling through a whole one.
  const first = Math.max(1, Math.floor(step / 4));
  for (let start = 0; start < pages; start += start === 0 ? first : step) {
    const end = start + (start === 0 ? first : step);
    // The last range is open: pages added meanwhile hold only rows the snapshot cannot see, but never miss any.
    ranges.push({
      label: end >= pages ? `pages ${start}-` : `pages ${start}-${end - 1}`,
      where: end >= pages ? `ctid >= '(${start},0)'::tid` : `ctid >= '(${start},0)'::tid AND ctid < '(${end},0)'::tid`,
    });
  }
  return ranges;
}

/**
 * Full extract units, in range order. Up to `parallel` ranges are copied at once on
 * connections sharing one exported snapshot, ahead of the unit being staged.
 */
export async function* fullUnits(s: DbStream, ctx: PlanContext, o: ExtractOptions): AsyncGenerator<ReadUnit> {
  const coordinator = await connect(o.client, o.label);
  const workers: pg.Client[] = [];
  const pending: { range: Range; path: string; done: Promise<number> }[] = [];
  try {
    await coordinator.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = (await coordinator.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]
      ?.id as string;
    const ranges = await ctidRanges(coordinator, s, o.parallel);
    const connections = Math.min(o.parallel, ranges.length);
    for (let i = 1; i < connections; i++) {
      const w = await connect(o.client, o.label);
      workers.push(w);
      await w.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await w.query(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
    }
    const free: pg.Client[] = [coordinator, ...workers];
    const waiting: ((c: pg.Client) => void)[] = [];
    const acquire = () =>
      new Promise<pg.Client>((resolve) => (free.length ? resolve(free.pop() as pg.Client) : waiting.push(resolve)));
    const release = (c: pg.Client) => (waiting.length ? (waiting.shift() as (c: pg.Client) => void)(c) : free.push(c));
    const where = s.where ? ` AND (${s.where})` : '';
    const start = (range: Range) => {
      const path = join(ctx.stagingDir, `pg-${newId()}.csv`);
      const select = `SELECT ${selectList(s.columns, ident)} FROM ${fromClause(s)} WHERE ${range.where}${where}`;
      const done = acquire().then((c) => copyToFile(c, select, path, ctx.signal).finally(() => release(c)));
      done.catch(() => undefined); // awaited in order below
      pending.push({ range, path, done });
    };
    let next = 0;
    while (next < ranges.length && pending.length < connections) start(ranges[next++] as Range);
    while (pending.length) {
      const head = pending.shift() as (typeof pending)[number];
      let bytes: number;
      try {
        bytes = await head.done;
      } catch (err) {
        throw readError(o.label, s, head.range.label, err);
      }
      if (next < ranges.length) start(ranges[next++] as Range);
      yield csvUnit(s, head.path, bytes, `${streamTarget(s)} ${head.range.label}`, {
        table: streamTarget(s),
        range: head.range.label,
        snapshot,
      });
    }
  } finally {
    await Promise.allSettled(pending.map((p) => p.done.then(() => rm(p.path, { force: true }))));
    for (const c of [coordinator, ...workers]) await c.end().catch(() => undefined);
  }
}

const streamTarget = (s: DbStream) => (s.table ? `${s.table.schema}.${s.table.name}` : `query ${s.spec.name}`);

function readError(label: string, s: DbStream, what: string, err: unknown): Error {
  if (err instanceof DipError || (err instanceof Error && err.name === 'AbortError')) return err as Error;
  return new DipError('transient', `${label}: reading ${streamTarget(s)} (${what}) failed: ${errorMessage(err)}`, {
    cause: err,
  });
}

/**
 * Incremental units: rows after the last committed (cursor, key), in that order, `chunkRows`
 * at a time, each unit carrying the position it ends at. Ties on the cursor are split by the
 * key, never skipped; with `lag`, rows newer than now() - lag wait for a later run. Without a
 * key a chunk holds every row of its last cursor value, and rows that share the saved value
 * but landed after it are found by content (database/ties.ts).
 */
export async function* incrementalUnits(s: DbStream, ctx: PlanContext, o: ExtractOptions): AsyncGenerator<ReadUnit> {
  const { cursor, keys, last: saved, keyless, tied } = incrementalStart(s, ctx.state, o.label);
  const client = await connect(o.client, o.label);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const literal = (value: string | null, c: DbColumn) =>
      value === null ? 'NULL' : `${client.escapeLiteral(value)}::${c.sourceType}`;
    const tuple = `(${keys.map((k) => ident(k.name)).join(', ')})`;
    const tupleOf = (values: (string | null)[]) =>
      `(${values.map((v, i) => literal(v, keys[i] as DbColumn)).join(', ')})`;
    const conditions = [`${ident(cursor.name)} IS NOT NULL`];
    if (s.where) conditions.push(`(${s.where})`);
    if (s.lagMs !== undefined) {
      const upper = (
        await client.query<{ u: string }>(
          `SELECT (now() - make_interval(secs => $1))::${cursor.sourceType}::text AS u`,
          [s.lagMs / 1000],
        )
      ).rows[0]?.u as string;
      conditions.push(`${ident(cursor.name)} <= ${literal(upper, cursor)}`);
    }
    const from = fromClause(s);
    const order = keys.map((k) => ident(k.name)).join(', ');
    const keyText = keys.map((k, i) => `${ident(k.name)}::text AS k${i}`).join(', ');
    // Without a key: a row's content hash, and the rows of each hash at one cursor value.
    const hash = `left(md5(ROW(${s.columns.map((c) => ident(c.name)).join(', ')})::text), 16)`;
    const atCursor = (value: string | null) =>
      [...conditions, `${ident(cursor.name)} = ${literal(value, cursor)}`].join(' AND ');
    const tiesAt = async (value: string | null) =>
      tieCounts((await client.query<{ h: string; n: string }>(tieCountSql(hash, from, atCursor(value)))).rows);
    let last = saved;
    // Rows at the saved cursor value that committed after it was read (keyless streams only).
    let lateTies: string | undefined;
    if (keyless && tied && saved) {
      if (hasNewTies(await tiesAt(saved[0] ?? null), tied)) {
        lateTies = newTiesSql({
          names: s.columns.map((c) => ident(c.name)).join(', '),
          selectList: selectList(s.columns, ident),
          hash,
          from,
          where: atCursor(saved[0] ?? null),
          landed: tied,
        });
      }
    }
    for (;;) {
      ctx.signal.throwIfAborted();
      const after = last ? [...conditions, `${tuple} > ${tupleOf(last)}`] : conditions;
      const filter = after.join(' AND ');
      // The chunk's last key: found by the index on (cursor, key) when there is one.
      const probe = await client.query<Record<string, string | null>>(
        `SELECT ${keyText} FROM ${from} WHERE ${filter} ORDER BY ${order} OFFSET ${s.chunkRows - 1} LIMIT 1`,
      );
      let end = probe.rows[0] ? keys.map((_, i) => probe.rows[0]?.[`k${i}`] ?? null) : undefined;
      if (!end) {
        const tail = await client.query<Record<string, string | null>>(
          `SELECT ${keyText} FROM ${from} WHERE ${filter} ORDER BY ${keys.map((k) => `${ident(k.name)} DESC`).join(', ')} LIMIT 1`,
        );
        if (tail.rows[0]) end = keys.map((_, i) => tail.rows[0]?.[`k${i}`] ?? null);
        else if (lateTies && last) end = last;
        else return;
      }
      const path = join(ctx.stagingDir, `pg-${newId()}.csv`);
      const chunk = `SELECT ${selectList(s.columns, ident)} FROM ${from} WHERE ${filter} AND ${tuple} <= ${tupleOf(end)}`;
      const select = lateTies ? `${chunk} UNION ALL ${lateTies}` : chunk;
      let bytes: number;
      let state: IncrementalState;
      try {
        bytes = await copyToFile(client, select, path, ctx.signal);
        state = { cursor_column: cursor.name, last: end, ...(keyless ? { tied: await tiesAt(end[0] ?? null) } : {}) };
      } catch (err) {
        await rm(path, { force: true });
        throw readError(o.label, s, `after ${JSON.stringify(last)}`, err);
      }
      yield csvUnit(
        s,
        path,
        bytes,
        `${streamTarget(s)} ${cursor.name} ≤ ${end[0]}`,
        { table: streamTarget(s), after: last, through: end },
        state,
      );
      last = end;
      lateTies = undefined;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}
