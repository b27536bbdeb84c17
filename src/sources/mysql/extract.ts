/**
 * Reads MySQL / MariaDB tables and queries into CSV units. MySQL has no COPY TO STDOUT: rows
 * are streamed over the text protocol (the socket pauses while the file write catches up, so
 * memory stays bounded whatever the chunk size) and written as typed CSV (database/csv.ts).
 *
 * Full: one transaction WITH CONSISTENT SNAPSHOT (REPEATABLE READ, READ ONLY); tables with a
 * primary key are read in keyset chunks (`WHERE key > last ORDER BY key LIMIT chunk_rows`),
 * one unit per chunk, all as of the same instant; views, tables without a key and queries are
 * read in one pass.
 * Incremental: keyset pages on (cursor, primary key) in one snapshot, as for PostgreSQL: each
 * unit ends at a key found by a probe (OFFSET chunk_rows - 1) and carries that key as state.
 */
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ConnectionOptions } from 'mysql2';
import { DipError, errorMessage } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { csvLine } from '../database/csv.js';
import type { DbColumn, DbStream, IncrementalState } from '../database/types.js';
import { csvUnit, incrementalStart, selectList } from '../database/types.js';
import { hasNewTies, newTiesSql, tieCountSql, tieCounts } from '../database/ties.js';
import type { PlanContext, ReadUnit } from '../types.js';
import { connect, type MysqlConnection, type MysqlRow } from './connection.js';
import { keyLiteral, quoteIdent, quoteQualified, stateValue, valueRenderer } from './types.js';
import { withSpan } from '../../observe/trace.js';

export interface ExtractOptions {
  connection: ConnectionOptions;
  label: string;
}

/** Characters of CSV gathered before a write: few syscalls, little memory. */
const FLUSH_CHARS = 64 * 1024;

/** FROM clause of a stream: its table, or its query as a subquery. */
function fromClause(s: DbStream): string {
  if (s.table) return quoteQualified(s.table.schema, s.table.name);
  return `(${s.query as string}) AS q`;
}

const whereClause = (conditions: readonly string[]) => (conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '');

const streamTarget = (s: DbStream) => (s.table ? `${s.table.schema}.${s.table.name}` : `query ${s.spec.name}`);

type Literal = (value: string | null, column: DbColumn) => string;

/** (k1, k2, …) > (v1, v2, …), spelled out so the range optimizer uses the key's index. */
function keyAfter(keys: readonly DbColumn[], values: readonly (string | null)[], lit: Literal, i = 0): string {
  const k = keys[i] as DbColumn;
  const v = lit(values[i] ?? null, k);
  if (i === keys.length - 1) return `${quoteIdent(k.name)} > ${v}`;
  return `(${quoteIdent(k.name)} > ${v} OR (${quoteIdent(k.name)} = ${v} AND ${keyAfter(keys, values, lit, i + 1)}))`;
}

/** (k1, k2, …) <= (v1, v2, …). */
function keyThrough(keys: readonly DbColumn[], values: readonly (string | null)[], lit: Literal, i = 0): string {
  const k = keys[i] as DbColumn;
  const v = lit(values[i] ?? null, k);
  if (i === keys.length - 1) return `${quoteIdent(k.name)} <= ${v}`;
  return `(${quoteIdent(k.name)} < ${v} OR (${quoteIdent(k.name)} = ${v} AND ${keyThrough(keys, values, lit, i + 1)}))`;
}

interface Chunk {
  rows: number;
  bytes: number;
  /** The last row read, as selected (raw values, before CSV rendering). */
  last: MysqlRow | undefined;
}

/**
 * Streams one SELECT into a CSV file with a header line; the file is removed when it fails.
 * Backpressure flows from the file through the pipeline to the socket.
 */
/** One extract into a CSV file, traced as a `db.extract` span. */
export function readToCsv(
  conn: MysqlConnection,
  sql: string,
  columns: readonly DbColumn[],
  path: string,
  signal: AbortSignal,
): Promise<Chunk> {
  return withSpan('db.extract', { 'db.system': 'mysql' }, () => readToCsvUntraced(conn, sql, columns, path, signal));
}

async function readToCsvUntraced(
  conn: MysqlConnection,
  sql: string,
  columns: readonly DbColumn[],
  path: string,
  signal: AbortSignal,
): Promise<Chunk> {
  const renderers = columns.map(valueRenderer);
  let rows = 0;
  let last: MysqlRow | undefined;
  let pending = csvLine(columns.map((c) => c.name));
  const toCsv = new Transform({
    writableObjectMode: true,
    transform(row: MysqlRow, _encoding: BufferEncoding, done: TransformCallback) {
      rows++;
      last = row;
      const values = new Array<string | null>(renderers.length);
      for (let i = 0; i < renderers.length; i++)
        values[i] = (renderers[i] as (typeof renderers)[number])(row[i] ?? null);
      pending += csvLine(values);
      if (pending.length < FLUSH_CHARS) return done();
      const out = pending;
      pending = '';
      done(null, out);
    },
    flush(done: TransformCallback) {
      done(null, pending.length ? pending : undefined);
    },
  });
  try {
    await pipeline(conn.stream(sql), toCsv, createWriteStream(path), { signal });
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  return { rows, bytes: (await stat(path)).size, last };
}

function readError(label: string, s: DbStream, what: string, err: unknown): Error {
  if (err instanceof DipError || (err instanceof Error && err.name === 'AbortError')) return err as Error;
  return new DipError('transient', `${label}: reading ${streamTarget(s)} (${what}) failed: ${errorMessage(err)}`, {
    cause: err,
  });
}

/** A REPEATABLE READ, READ ONLY transaction whose snapshot is taken now, not at the first read. */
async function beginSnapshot(conn: MysqlConnection): Promise<void> {
  await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
}

/** The table's primary key, when every key column is read: full extracts page by it. */
function primaryKeyColumns(s: DbStream): DbColumn[] | undefined {
  const key = s.table?.primaryKey ?? [];
  if (key.length === 0) return undefined;
  const columns = key.map((k) => s.columns.find((c) => c.name === k));
  return columns.every((c): c is DbColumn => c !== undefined) ? columns : undefined;
}

const csvPath = (ctx: PlanContext) => join(ctx.stagingDir, `mysql-${newId()}.csv`);

/**
 * Full extract units, in key order, all from one consistent snapshot. A chunk is read only
 * when the previous unit has been taken, so at most one chunk file is being written at a time.
 */
export async function* fullUnits(s: DbStream, ctx: PlanContext, o: ExtractOptions): AsyncGenerator<ReadUnit> {
  const conn = await connect(o.connection, o.label);
  let clean = false;
  try {
    await beginSnapshot(conn);
    const lit: Literal = (value, column) => keyLiteral(column, value, (x) => conn.escape(x));
    const select = `SELECT ${selectList(s.columns, quoteIdent)} FROM ${fromClause(s)}`;
    const base = s.where ? [`(${s.where})`] : [];
    const target = streamTarget(s);
    const keys = primaryKeyColumns(s);
    if (!keys) {
      const path = csvPath(ctx);
      let chunk: Chunk;
      try {
        chunk = await readToCsv(conn, `${select}${whereClause(base)}`, s.columns, path, ctx.signal);
      } catch (err) {
        throw readError(o.label, s, 'all rows', err);
      }
      yield csvUnit(s, path, chunk.bytes, `${target} all rows`, { table: target, range: 'all rows', rows: chunk.rows });
    } else {
      const keyIndexes = keys.map((k) => s.columns.indexOf(k));
      const order = keys.map((k) => quoteIdent(k.name)).join(', ');
      let last: (string | null)[] | null = null;
      for (let n = 1; ; n++) {
        ctx.signal.throwIfAborted();
        const conditions = last ? [...base, keyAfter(keys, last, lit)] : base;
        const path = csvPath(ctx);
        let chunk: Chunk;
        try {
          chunk = await readToCsv(
            conn,
            `${select}${whereClause(conditions)} ORDER BY ${order} LIMIT ${s.chunkRows}`,
            s.columns,
            path,
            ctx.signal,
          );
        } catch (err) {
          throw readError(o.label, s, last ? `after ${JSON.stringify(last)}` : 'first chunk', err);
        }
        // An empty first chunk is still a unit: replacing with an empty table is the news.
        if (chunk.rows === 0 && n > 1) {
          await rm(path, { force: true });
          break;
        }
        const lastRow = chunk.last;
        const through = lastRow ? keyIndexes.map((i) => stateValue(lastRow[i] ?? null)) : null;
        yield csvUnit(s, path, chunk.bytes, `${target} chunk ${n}`, {
          table: target,
          chunk: n,
          after: last,
          through,
          rows: chunk.rows,
        });
        if (chunk.rows < s.chunkRows || !through) break;
        last = through;
      }
    }
    await conn.query('COMMIT');
    clean = true;
  } finally {
    if (clean) await conn.end();
    else conn.destroy();
  }
}

/**
 * Incremental units: rows after the last committed (cursor, key), in that order, about
 * `chunkRows` at a time (a chunk ends after all rows equal to its last key, so keys that are
 * not unique are never split), each unit carrying the position it ends at. Ties on the cursor
 * are split by the key, never skipped; with `lag`, rows newer than NOW() - lag wait for a
 * later run. Without a key, rows that share the saved cursor value but landed after it are
 * found by content (database/ties.ts).
 */
export async function* incrementalUnits(s: DbStream, ctx: PlanContext, o: ExtractOptions): AsyncGenerator<ReadUnit> {
  const { cursor, keys, last: saved, keyless, tied } = incrementalStart(s, ctx.state, o.label);
  const conn = await connect(o.connection, o.label);
  let clean = false;
  try {
    await beginSnapshot(conn);
    const lit: Literal = (value, column) => keyLiteral(column, value, (x) => conn.escape(x));
    const conditions = [`${quoteIdent(cursor.name)} IS NOT NULL`];
    if (s.where) conditions.push(`(${s.where})`);
    if (s.lagMs !== undefined) {
      // The bound is fixed once, in the session's UTC, as a value of the cursor's kind.
      const as = cursor.lakeType === 'DATE' ? 'DATE' : 'DATETIME(6)';
      const r = await conn.query(
        `SELECT CAST(NOW(6) - INTERVAL ${Math.round(s.lagMs * 1000)} MICROSECOND AS ${as}) AS upper_bound`,
      );
      const upper = stateValue(r.rows[0]?.[0] ?? null);
      conditions.push(`${quoteIdent(cursor.name)} <= ${lit(upper, cursor)}`);
    }
    const from = fromClause(s);
    const order = keys.map((k) => quoteIdent(k.name)).join(', ');
    const keySelect = keys.map((k, i) => `${k.select} AS ${quoteIdent(`k${i}`)}`).join(', ');
    const target = streamTarget(s);
    // Without a key: a row's content hash (each value's bytes, length-prefixed), and the rows of
    // each hash at one cursor value.
    const hash = `LEFT(MD5(CONCAT_WS(',', ${s.columns
      .map((c) => {
        const bytes = `CAST(${quoteIdent(c.name)} AS BINARY)`;
        return `IFNULL(CONCAT(LENGTH(${bytes}), ':', ${bytes}), 'N')`;
      })
      .join(', ')})), 16)`;
    const atCursor = (value: string | null) =>
      [...conditions, `${quoteIdent(cursor.name)} = ${lit(value, cursor)}`].join(' AND ');
    const tiesAt = async (value: string | null) =>
      tieCounts(
        (await conn.query(tieCountSql(hash, from, atCursor(value)))).rows.map((r) => ({
          h: stateValue(r[0] ?? null),
          n: stateValue(r[1] ?? null),
        })),
      );
    let last = saved;
    // Rows at the saved cursor value that committed after it was read (keyless streams only).
    let lateTies: string | undefined;
    try {
      if (keyless && tied && saved && hasNewTies(await tiesAt(saved[0] ?? null), tied)) {
        lateTies = newTiesSql({
          names: s.columns.map((c) => quoteIdent(c.name)).join(', '),
          selectList: selectList(s.columns, quoteIdent),
          hash,
          from,
          where: atCursor(saved[0] ?? null),
          landed: tied,
        });
      }
    } catch (err) {
      throw readError(o.label, s, `ties at ${JSON.stringify(saved)}`, err);
    }
    for (;;) {
      ctx.signal.throwIfAborted();
      const filter = (last ? [...conditions, keyAfter(keys, last, lit)] : conditions).join(' AND ');
      let end: (string | null)[];
      try {
        // The chunk's last key: found by the index on (cursor, key) when there is one.
        const probe = await conn.query(
          `SELECT ${keySelect} FROM ${from} WHERE ${filter} ORDER BY ${order} LIMIT 1 OFFSET ${s.chunkRows - 1}`,
        );
        let row = probe.rows[0];
        if (!row) {
          const tail = await conn.query(
            `SELECT ${keySelect} FROM ${from} WHERE ${filter} ORDER BY ${keys.map((k) => `${quoteIdent(k.name)} DESC`).join(', ')} LIMIT 1`,
          );
          row = tail.rows[0];
        }
        if (row) {
          const endRow = row;
          end = keys.map((_, i) => stateValue(endRow[i] ?? null));
        } else if (lateTies && last) end = last;
        else break;
      } catch (err) {
        throw readError(o.label, s, `after ${JSON.stringify(last)}`, err);
      }
      const path = csvPath(ctx);
      let chunk: Chunk;
      let state: IncrementalState;
      try {
        const select = `SELECT ${selectList(s.columns, quoteIdent)} FROM ${from} WHERE ${filter} AND ${keyThrough(keys, end, lit)}`;
        chunk = await readToCsv(
          conn,
          lateTies ? `${select} UNION ALL ${lateTies}` : select,
          s.columns,
          path,
          ctx.signal,
        );
        state = { cursor_column: cursor.name, last: end, ...(keyless ? { tied: await tiesAt(end[0] ?? null) } : {}) };
      } catch (err) {
        await rm(path, { force: true });
        throw readError(o.label, s, `after ${JSON.stringify(last)}`, err);
      }
      yield csvUnit(
        s,
        path,
        chunk.bytes,
        `${target} ${cursor.name} ≤ ${end[0]}`,
        { table: target, after: last, through: end, rows: chunk.rows },
        state,
      );
      last = end;
      lateTies = undefined;
    }
    await conn.query('COMMIT');
    clean = true;
  } finally {
    if (clean) await conn.end();
    else conn.destroy();
  }
}
