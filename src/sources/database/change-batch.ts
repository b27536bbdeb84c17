/**
 * Collects one table's change events into a unit: a CSV file of rows (the table's columns
 * then the CDC columns, typed exactly like the snapshot) and the events as received, one JSON
 * line each, `{op, before, after, source: {lsn, txid, ts, table}}` (the raw zone stores that
 * file compressed and derives the envelopes on read). A unit only ever ends at a
 * transaction boundary, and carries the position it is complete up to. Positions are 64-bit
 * numbers that grow with the log (a PostgreSQL LSN; a MySQL binlog file number and offset);
 * each dialect says how to print one.
 */
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '../../core/ids.js';
import { CDC_COLUMN_TYPES } from '../../lake/zone-schemas.js';
import type { ReadUnit } from '../types.js';
import { csvLine } from './csv.js';
import type { DbColumn, DbStream } from './types.js';
import { columnTypes, selectList } from './types.js';

/** A row image: column name → the value as text DuckDB reads, null, or undefined when not sent. */
export type Tuple = Record<string, string | null | undefined>;

/** Turns a value's text as the change stream gives it into the text the snapshot gives. */
export type ValueConverter = (text: string) => string;

export interface ChangeDialect {
  /** A position as people read it (0/16B3748, mysql-bin.000003:1234). */
  position(value: bigint): string;
  converterFor(column: DbColumn): ValueConverter | undefined;
}

export type ChangeOp = 'c' | 'u' | 'd' | 't';

export interface ChangeEvent {
  op: ChangeOp;
  /** The row after the change; for deletes the row (or key) as it was; empty for truncates. */
  row: Tuple;
  before: Tuple | null;
  commitLsn: bigint;
  txid: number;
  /** Commit time, microseconds since the Unix epoch. */
  commitMicros: bigint;
}

export interface CdcUnit extends ReadUnit {
  /** Position the unit is complete up to. */
  lsn: bigint;
}

const BUFFER_BYTES = 256 * 1024;

/** The columns of every change unit: the table's, then the CDC columns. */
/** An update that changes the primary key (a key column absent from `old` is unknown, not changed). */
export function keyChanged(primaryKey: readonly string[], old: Tuple, next: Tuple): boolean {
  return primaryKey.some((k) => old[k] !== undefined && old[k] !== next[k]);
}

export function changeColumns(stream: DbStream): { name: string; type: string }[] {
  return [...stream.columns.map((c) => ({ name: c.name, type: c.lakeType })), ...CDC_COLUMN_TYPES];
}

/**
 * The SELECT list of an initial snapshot: the table's columns as the extract renders them,
 * then the CDC columns as constants (op 'r' at the snapshot's position, not deleted).
 */
export function snapshotSelectList(
  stream: DbStream,
  quote: (name: string) => string,
  position: bigint,
  falseLiteral: string,
): string {
  const constants = [`'r'`, position.toString(), '0', 'NULL', 'NULL', falseLiteral, 'NULL'];
  return [
    selectList(stream.columns, quote),
    ...CDC_COLUMN_TYPES.map((c, i) => `${constants[i] as string} AS ${quote(c.name)}`),
  ].join(', ');
}

/** The unit holding a table's initial snapshot: it replaces the current-state table. */
export async function snapshotUnit(
  stream: DbStream,
  table: string,
  path: string,
  at: string,
  lsn: bigint,
  state: unknown,
  position: Record<string, unknown> = {},
): Promise<CdcUnit> {
  return {
    label: `${table} snapshot at ${at}`,
    input: { path, format: 'csv', columns: changeColumns(stream) },
    bytes: (await stat(path)).size,
    position: { table, snapshot_at: at, ...position, columns: columnTypes(stream.columns) },
    state,
    snapshot: true,
    lsn,
    dispose: () => rm(path, { force: true }),
  };
}

/** Microseconds since the epoch as TIMESTAMPTZ text, exact to the microsecond. */
export function microsText(micros: bigint): string {
  const ms = Number(micros / 1000n);
  const rest = (micros % 1_000_000n).toString().padStart(6, '0');
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}.${rest}+00`;
}

export class ChangeBatcher {
  private rows: FileHandle | undefined;
  private pages: FileHandle | undefined;
  private rowsPath = '';
  private pagesPath = '';
  private rowText = '';
  private pageText = '';
  private count = 0;
  private bytes = 0;
  private truncated = false;
  private firstLsn: bigint | undefined;
  private lastLsn = 0n;
  openedAt = 0;
  private readonly converters: (ValueConverter | undefined)[];
  private readonly table: string;

  constructor(
    private readonly stream: DbStream,
    private readonly dir: string,
    private readonly dialect: ChangeDialect,
  ) {
    this.converters = stream.columns.map((c) => dialect.converterFor(c));
    this.table = stream.table ? `${stream.table.schema}.${stream.table.name}` : stream.spec.name;
  }

  get size(): number {
    return this.count;
  }

  async add(e: ChangeEvent): Promise<void> {
    if (!this.rows) await this.openFiles();
    this.count += 1;
    this.firstLsn ??= e.commitLsn;
    if (e.op === 't') this.truncated = true;
    const values = this.stream.columns.map((c: DbColumn, i) => {
      const v = e.row[c.name];
      if (v === null || v === undefined) return null;
      const convert = this.converters[i];
      return convert ? convert(v) : v;
    });
    const before = e.before ? JSON.stringify(e.before) : null;
    const ts = microsText(e.commitMicros);
    this.rowText += csvLine([
      ...values,
      e.op,
      e.commitLsn.toString(),
      String(this.count),
      String(e.txid),
      ts,
      String(e.op === 'd'),
      before,
    ]);
    const lsn = this.dialect.position(e.commitLsn);
    const payload = {
      op: e.op,
      before: e.before,
      after: e.op === 'd' || e.op === 't' ? null : e.row,
      source: { lsn, txid: e.txid, ts, table: this.table },
    };
    this.pageText += `${JSON.stringify(payload)}\n`;
    if (this.rowText.length + this.pageText.length > BUFFER_BYTES) await this.drain();
  }

  /** The transaction whose events were added last has committed at `lsn`. */
  committed(lsn: bigint): void {
    if (this.count > 0) this.lastLsn = lsn;
  }

  /** Closes the files into a unit (undefined when empty); `state` is what the unit commits, given the position it ends at. */
  async flush(state: (position: bigint) => unknown): Promise<CdcUnit | undefined> {
    if (!this.rows || this.count === 0) return undefined;
    await this.drain();
    await this.rows.close();
    await this.pages?.close();
    const rowsPath = this.rowsPath;
    const pagesPath = this.pagesPath;
    const unit: CdcUnit = {
      label: `${this.table} ${this.count} changes to ${this.dialect.position(this.lastLsn)}`,
      input: { path: rowsPath, format: 'csv', columns: changeColumns(this.stream) },
      rawEvents: pagesPath,
      bytes: this.bytes,
      position: {
        table: this.table,
        from: this.dialect.position(this.firstLsn ?? 0n),
        to: this.dialect.position(this.lastLsn),
        events: this.count,
        columns: columnTypes(this.stream.columns),
      },
      state: state(this.lastLsn),
      snapshot: this.truncated,
      lsn: this.lastLsn,
      dispose: async () => {
        await rm(rowsPath, { force: true });
        await rm(pagesPath, { force: true });
      },
    };
    this.rows = undefined;
    this.pages = undefined;
    this.count = 0;
    this.bytes = 0;
    this.truncated = false;
    this.firstLsn = undefined;
    return unit;
  }

  async discard(): Promise<void> {
    await this.rows?.close().catch(() => undefined);
    await this.pages?.close().catch(() => undefined);
    if (this.rows || this.pages) {
      await rm(this.rowsPath, { force: true });
      await rm(this.pagesPath, { force: true });
    }
    this.rows = undefined;
    this.pages = undefined;
  }

  private async openFiles(): Promise<void> {
    const id = newId('cdc');
    this.rowsPath = join(this.dir, `${id}.csv`);
    this.pagesPath = join(this.dir, `${id}.events.ndjson`);
    this.rows = await open(this.rowsPath, 'w');
    this.pages = await open(this.pagesPath, 'w');
    const header = changeColumns(this.stream).map((c) => c.name);
    this.rowText = csvLine(header);
    this.pageText = '';
    this.openedAt = Date.now();
  }

  private async drain(): Promise<void> {
    if (this.rowText) {
      await this.rows?.write(this.rowText);
      this.bytes += Buffer.byteLength(this.rowText);
      this.rowText = '';
    }
    if (this.pageText) {
      await this.pages?.write(this.pageText);
      this.pageText = '';
    }
  }
}
