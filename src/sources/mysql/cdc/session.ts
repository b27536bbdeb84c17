/**
 * Change data capture for the CDC streams of one MySQL or MariaDB source, through one binlog
 * connection (registered as a replica with `cdc.server_id`). The session:
 *
 * - takes the initial snapshot (when a stream has no state) of every CDC table in one
 *   transaction whose binlog position is exact (cdc/position.ts), one `snapshot` unit per table;
 * - streams the binlog from there (or, resuming, from the lowest position the streams
 *   committed), each table's row events batched into units that end at transaction boundaries
 *   and carry the commit position (the end of the transaction's XID event) they are complete up
 *   to; a stream skips the transactions at or below the position in its state, so a crash
 *   replays and never loses, nor duplicates;
 * - turns `TRUNCATE [TABLE] t` into a 't' event (the current table is emptied) and a primary
 *   key change into a delete of the old key and a create of the new one;
 * - without --follow, stops once it has read up to the end of the binlog as it was at start;
 *   with --follow, runs until interrupted.
 *
 * The binlog keeps no per-reader position on the server (unlike a replication slot): how long
 * a stopped pipeline can resume is how long the server keeps its binlog files
 * (binlog_expire_logs_seconds, expire_logs_days).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ConnectionOptions } from 'mysql2';
import type { MysqlSourceConfig } from '../../../config/database.js';
import { AsyncQueue } from '../../../core/async-queue.js';
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import { newId } from '../../../core/ids.js';
import { Serial } from '../../../core/serial.js';
import { durationMs } from '../../../core/time.js';
import { CDC_COLUMN_TYPES } from '../../../lake/zone-schemas.js';
import {
  ChangeBatcher,
  snapshotSelectList,
  snapshotUnit,
  type CdcUnit,
  type ChangeDialect,
  type ChangeEvent,
  type Tuple,
} from '../../database/change-batch.js';
import type { DbColumn, DbStream, DbTable } from '../../database/types.js';
import { assertCdcStreamsTogether } from '../../database/types.js';
import type { PlanContext, ReadUnit } from '../../types.js';
import { connect } from '../connection.js';
import { readToCsv } from '../extract.js';
import { binlogConverter, binlogRenderer, quoteIdent, quoteQualified } from '../types.js';
import { BinlogReader, TableChangedError, binlogConnection, type BinlogEvent, type RowImage } from './binlog.js';
import {
  beginSnapshotAt,
  binaryLogs,
  binlogBase,
  binlogNumber,
  checkBinlog,
  currentPosition,
  encodePosition,
  isPrivilegeError,
  positionFile,
  positionOffset,
  positionText,
  replicationPrivilegeMessage,
} from './position.js';
import { TxnBuffer } from './txn-buffer.js';

export interface MysqlCdcSessionOptions {
  config: MysqlSourceConfig;
  connection: ConnectionOptions;
  label: string;
  streams: DbStream[];
  pipeline: string;
}

/** State a CDC stream commits with each unit. */
export interface MysqlCdcState {
  /** Binlog file of the last transaction whose events are in the lake… */
  binlog: string;
  /** …and where its commit (XID) event ends in that file: reading resumes there. */
  position: number;
  /** The same position as one 64-bit number, `(file number << 32) | position`, as text. */
  lsn: string;
  /** Where the stream's snapshot was taken (file:position). */
  snapshot_at: string;
}

interface Feed {
  stream: DbStream;
  table: DbTable;
  ctx: PlanContext;
  state: MysqlCdcState | undefined;
  /** Transactions ending at or before this position are already in the lake for this stream. */
  committed: bigint;
  /** The position of the last unit handed to the runner (or committed before this run). */
  through: bigint;
  snapshotAt: string;
  queue: AsyncQueue<CdcUnit>;
  batch: ChangeBatcher;
  render: ((value: unknown) => string | null)[];
}

const QUEUE_UNITS = 4;
/** With --follow, how often the position of streams whose tables see no changes is committed. */
const ADVANCE_MS = 60_000;
/** Events decoded but not handled yet beyond which the binlog connection is paused (backpressure). */
const PAUSE_EVENTS = 2000;
const RESUME_EVENTS = 200;

/** A replica server id derived from the pipeline and source names, in 2^30 … 2^31 - 2. */
export function defaultServerId(pipeline: string, source: string): number {
  const hash = createHash('sha256').update(`dip/${pipeline}/${source}`).digest().readUInt32BE(0);
  return 0x40000000 + (hash % 0x3fffffff);
}

const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)+\`|[\w$]+)`;
const TRUNCATE = new RegExp(
  String.raw`^TRUNCATE\s+(?:TABLE\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?\s*(?:\/\*[^]*?\*\/)?\s*;?$`,
  'i',
);
const STATEMENT_DML = new RegExp(
  String.raw`^(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*\s+(?:INTO\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?|^(?:UPDATE|DELETE)(?:\s+(?:LOW_PRIORITY|IGNORE|QUICK))*\s+(?:FROM\s+)?(${IDENT})(?:\s*\.\s*(${IDENT}))?`,
  'i',
);
const unquote = (name: string): string => (name.startsWith('`') ? name.slice(1, -1).replaceAll('``', '`') : name);

/** A statement without its leading comments (`/* … *\/`, `-- …`, `# …`). */
function statementText(query: string): string {
  let s = query.trim();
  for (;;) {
    if (s.startsWith('/*') && !s.startsWith('/*!')) s = s.slice(s.indexOf('*/') + 2 || s.length).trim();
    else if (s.startsWith('#') || s.startsWith('-- ')) s = s.slice(s.indexOf('\n') + 1 || s.length).trim();
    else return s;
  }
}

export class MysqlCdcSession {
  private readonly feeds = new Map<string, Feed>();
  private readonly byTable = new Map<string, Feed>();
  private registered!: () => void;
  private readonly allRegistered = new Promise<void>((resolve) => (this.registered = resolve));
  private started: Promise<void> | undefined;
  private reader: BinlogReader | undefined;
  private readonly serial = new Serial();
  private txn: { buffer: TxnBuffer; touched: Set<Feed> } | undefined;
  /** Base name of the binlog files (mysql-bin), the current file's number and the offset read up to. */
  private base = '';
  private file = 0;
  private offset = 0;
  /** Without --follow: the end of the binlog at start, where reading stops. */
  private target: bigint | undefined;
  private serverId = 0;
  private lastEventAt = Date.now();
  private lastAdvance = Date.now();
  private backlog = 0;
  private paused = false;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private failed = false;
  /** Caught up (or closing): later events are left for the next run. */
  private finished = false;
  private readonly flushMs: number;
  private readonly idleMs: number;
  private readonly dialect: ChangeDialect;

  constructor(private readonly o: MysqlCdcSessionOptions) {
    this.flushMs = durationMs(o.config.cdc.flush_interval, `${o.label}.cdc.flush_interval`);
    this.idleMs = durationMs(o.config.cdc.idle_timeout, `${o.label}.cdc.idle_timeout`);
    this.dialect = { position: (v) => positionText(this.base || 'binlog', v), converterFor: binlogConverter };
  }

  /** A stream's units: its snapshot (when due), then its changes, committed one by one. */
  async *units(s: DbStream, ctx: PlanContext): AsyncGenerator<ReadUnit> {
    const feed = this.register(s, ctx);
    // Interrupted (Ctrl-C, SIGTERM): a stream waiting for changes stops waiting.
    const onAbort = () => feed.queue.fail(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.allRegistered;
      this.started ??= this.start(ctx);
      await this.started;
      // The runner asks for the next unit only once this one is committed.
      yield* feed.queue;
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  private register(s: DbStream, ctx: PlanContext): Feed {
    assertCdcStreamsTogether(this.o.streams, ctx, this.o.label, 'binlog connection');
    const table = s.table as DbTable;
    const state = isCdcState(ctx.state) ? ctx.state : undefined;
    const feed: Feed = {
      stream: s,
      table,
      ctx,
      state,
      committed: state ? BigInt(state.lsn) : 0n,
      through: state ? BigInt(state.lsn) : 0n,
      snapshotAt: state?.snapshot_at ?? '',
      queue: new AsyncQueue<CdcUnit>(QUEUE_UNITS),
      batch: new ChangeBatcher(
        s,
        ctx.stagingDir,
        { pipeline: ctx.pipeline, source: ctx.source, stream: s.spec.name, run_id: ctx.runId },
        this.dialect,
      ),
      render: s.columns.map(binlogRenderer),
    };
    this.feeds.set(s.spec.name, feed);
    this.byTable.set(tableKey(table.schema, table.name), feed);
    if (this.feeds.size === this.o.streams.length) this.registered();
    return feed;
  }

  private async start(ctx: PlanContext): Promise<void> {
    const { config, label } = this.o;
    const feeds = [...this.feeds.values()];
    this.serverId = config.cdc.server_id ?? defaultServerId(this.o.pipeline, ctx.source);
    try {
      const conn = await connect(this.o.connection, label);
      let start: bigint;
      try {
        await checkBinlog(conn, label);
        const logs = await binaryLogs(conn, label);
        if (feeds.every((f) => f.state)) {
          const first = feeds.reduce((min, f) => (f.committed < min.committed ? f : min));
          start = first.committed;
          const log = logs.find((l) => binlogNumber(l.name) === Number(start >> 32n));
          if (!log) {
            throw new ConfigError(
              `${label}: stream ${first.stream.spec.name} stopped at ${first.state?.binlog}:${first.state?.position}, and the server no longer has that binary log file (purged: binlog_expire_logs_seconds / expire_logs_days; it has ${logs[0]?.name ?? 'none'} to ${logs[logs.length - 1]?.name ?? 'none'}). The changes since are lost to the change stream: run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot of the cdc tables`,
            );
          }
          this.base = binlogBase(log.name);
        } else {
          // A stream without state (new, reset, or a crash during the first snapshot): every
          // table is read again in one snapshot, at one binlog position.
          start = await this.snapshot(feeds);
        }
        if (!feeds.some((f) => f.ctx.follow)) {
          const end = await currentPosition(conn, label);
          this.target = encodePosition(end.file, end.offset);
        }
      } finally {
        await conn.end();
      }
      this.stream(start);
    } catch (err) {
      for (const f of feeds) f.queue.fail(err);
      throw err;
    }
  }

  /** Copies every table in one snapshot transaction; queues one snapshot unit per table. Returns its position. */
  private async snapshot(feeds: Feed[]): Promise<bigint> {
    const { label } = this.o;
    const conn = await connect(this.o.connection, label);
    const units: [Feed, CdcUnit][] = [];
    let clean = false;
    let position = 0n;
    try {
      const at = await beginSnapshotAt(conn, label);
      this.base = binlogBase(at.file);
      position = encodePosition(at.file, at.offset);
      const snapshotAt = `${at.file}:${at.offset}`;
      for (const f of feeds) {
        const path = join(f.ctx.stagingDir, `${newId('snap')}.csv`);
        const cdcColumns: DbColumn[] = CDC_COLUMN_TYPES.map((c) => ({
          name: c.name,
          sourceType: c.type,
          lakeType: c.type,
          select: '',
        }));
        const table = `${f.table.schema}.${f.table.name}`;
        let rows: number;
        try {
          rows = (
            await readToCsv(
              conn,
              `SELECT ${snapshotSelectList(f.stream, quoteIdent, position, '0')} FROM ${quoteQualified(f.table.schema, f.table.name)}`,
              [...f.stream.columns, ...cdcColumns],
              path,
              f.ctx.signal,
            )
          ).rows;
        } catch (err) {
          if (err instanceof DipError || (err instanceof Error && err.name === 'AbortError')) throw err;
          throw new DipError('transient', `${label}: snapshot of ${table} failed: ${errorMessage(err)}`, {
            cause: err,
          });
        }
        // Transactions in the binlog after the snapshot's position are exactly those it does not see.
        const state: MysqlCdcState = {
          binlog: at.file,
          position: at.offset,
          lsn: position.toString(),
          snapshot_at: snapshotAt,
        };
        units.push([f, await snapshotUnit(f.stream, table, path, snapshotAt, position, state, { rows })]);
        f.committed = position;
        f.through = position;
        f.snapshotAt = snapshotAt;
      }
      await conn.query('COMMIT');
      clean = true;
    } finally {
      if (clean) await conn.end();
      else {
        conn.destroy();
        for (const [, unit] of units) await unit.dispose?.();
      }
    }
    for (const [f, unit] of units) await f.queue.push(unit);
    return position;
  }

  private stream(start: bigint): void {
    this.file = Number(start >> 32n);
    this.offset = positionOffset(start);
    this.lastEventAt = Date.now();
    const following = [...this.feeds.values()].some((f) => f.ctx.follow);
    this.timers.push(
      setInterval(
        () => void this.serial.run(() => this.tick(following)).catch((err: unknown) => this.fail(err)),
        Math.max(50, Math.min(this.flushMs / 2, 250)),
      ),
    );
    // Even with nothing to read the dump starts (a rotate event comes first, then the run
    // ends): a missing REPLICATION SLAVE privilege shows on the first run, not the first change.
    const tables: Record<string, string[]> = {};
    for (const f of this.feeds.values()) (tables[f.table.schema] ??= []).push(f.table.name);
    const reader = new BinlogReader(binlogConnection(this.o.connection));
    this.reader = reader;
    reader.start(
      { serverId: this.serverId, file: positionFile(this.base, start), position: this.offset, tables },
      (event) => this.enqueue(event),
      // Once caught up the connection is idle (paused) until closed: what happens to it no longer matters.
      (err) => {
        if (!this.finished) this.fail(err);
      },
    );
  }

  /** Events are handled one at a time, in binlog order; too many waiting pauses the connection. */
  private enqueue(event: BinlogEvent): void {
    this.backlog++;
    if (this.backlog > PAUSE_EVENTS && !this.paused) {
      this.paused = true;
      this.reader?.pause();
    }
    void this.serial
      .run(() => this.onEvent(event))
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        this.backlog--;
        if (this.paused && this.backlog < RESUME_EVENTS) {
          this.paused = false;
          if (!this.finished) this.reader?.resume();
        }
      });
  }

  /** The position read up to: the end of the last event handled. */
  private position(): bigint {
    return (BigInt(this.file) << 32n) | BigInt(this.offset);
  }

  private at(offset: number): bigint {
    return (BigInt(this.file) << 32n) | BigInt(offset);
  }

  private async onEvent(e: BinlogEvent): Promise<void> {
    if (this.finished) return;
    // Where this event starts: the end of the one before.
    const start = this.position();
    this.lastEventAt = Date.now();
    switch (e.kind) {
      case 'rotate': {
        // The next file (at its first event), or the file reading starts in (sent first).
        const file = binlogNumber(e.file);
        this.offset = file === this.file ? Math.max(this.offset, e.position) : e.position;
        this.file = file;
        break;
      }
      case 'insert':
      case 'update':
      case 'delete':
        await this.rows(e, start);
        break;
      case 'xid':
        await this.commit(this.at(e.next), e.xid, e.timestamp);
        break;
      case 'query':
        await this.query(e, start);
        break;
      default:
        break;
    }
    if (e.kind !== 'rotate' && e.next > 0) this.offset = e.next;
    this.lastEventAt = Date.now();
    if (this.target !== undefined && !this.txn && this.position() >= this.target) await this.finish();
  }

  private feedOf(schema: string, table: string): Feed | undefined {
    const exact = this.byTable.get(tableKey(schema, table));
    if (exact) return exact;
    const lower = tableKey(schema, table).toLowerCase();
    return [...this.byTable.entries()].find(([k]) => k.toLowerCase() === lower)?.[1];
  }

  private async rows(e: Extract<BinlogEvent, { kind: 'insert' | 'update' | 'delete' }>, start: bigint): Promise<void> {
    const feed = this.feedOf(e.schema, e.table);
    // Positions in the lake are transaction boundaries: an event before one belongs to a
    // transaction that is in the lake already.
    if (!feed || start < feed.committed) return;
    if (!e.full) {
      throw new ConfigError(
        `${this.o.label}: a change to ${feed.table.schema}.${feed.table.name} at ${positionText(this.base, start)} was logged without every column (a session ran with binlog_row_image = MINIMAL or NOBLOB): the row cannot be known from the binlog. Make sure no session overrides binlog_row_image = FULL, then run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot`,
      );
    }
    const tuple = (image: RowImage): Tuple => {
      const t: Tuple = {};
      feed.stream.columns.forEach(
        (c, i) => (t[c.name] = (feed.render[i] as (v: unknown) => string | null)(image[c.name])),
      );
      return t;
    };
    const txn = (this.txn ??= { buffer: new TxnBuffer(feed.ctx.stagingDir), touched: new Set() });
    txn.touched.add(feed);
    const add = (op: ChangeEvent['op'], row: Tuple, before: Tuple | null) =>
      txn.buffer.add({ stream: feed.stream.spec.name, op, row, before });
    if (e.kind === 'update') {
      for (const r of e.rows) {
        const before = tuple(r.before);
        const after = tuple(r.after);
        if (feed.stream.spec.primaryKey.some((k) => before[k] !== after[k])) {
          // A new primary key: the old row is gone and a new one exists (as Debezium reports it).
          await add('d', before, before);
          await add('c', after, null);
        } else {
          await add('u', after, before);
        }
      }
      return;
    }
    for (const r of e.rows) {
      const row = tuple(r);
      if (e.kind === 'insert') await add('c', row, null);
      else await add('d', row, row);
    }
  }

  /** The transaction read so far commits at `lsn`: its events join their streams' batches. */
  private async commit(lsn: bigint, xid: number, timestamp: number): Promise<void> {
    const txn = this.txn;
    this.txn = undefined;
    if (!txn) return;
    const commitMicros = BigInt(timestamp) * 1000n;
    for await (const c of txn.buffer.drain()) {
      const feed = this.feeds.get(c.stream) as Feed;
      await feed.batch.add({ op: c.op, row: c.row, before: c.before, commitLsn: lsn, txid: xid, commitMicros });
    }
    for (const f of txn.touched) f.batch.committed(lsn);
    for (const f of txn.touched) if (f.batch.size >= this.o.config.cdc.batch_records) await this.flush(f);
  }

  private async query(e: Extract<BinlogEvent, { kind: 'query' }>, start: bigint): Promise<void> {
    const sql = statementText(e.query);
    if (/^BEGIN$/i.test(sql) || sql === '') return;
    // Transactions on non-transactional tables (MyISAM) end with a COMMIT statement, not an XID.
    if (/^COMMIT$/i.test(sql)) return this.commit(this.at(e.next), 0, e.timestamp);
    const truncate = TRUNCATE.exec(sql);
    if (truncate) {
      const [schema, table] = truncate[2]
        ? [unquote(truncate[1] as string), unquote(truncate[2])]
        : [e.schema, unquote(truncate[1] as string)];
      const feed = this.feedOf(schema, table);
      if (!feed || start < feed.committed) return;
      // TRUNCATE commits implicitly: it is a transaction of its own.
      if (this.txn) await this.commit(start, 0, e.timestamp);
      const lsn = this.at(e.next);
      await feed.batch.add({
        op: 't',
        row: {},
        before: null,
        commitLsn: lsn,
        txid: 0,
        commitMicros: BigInt(e.timestamp) * 1000n,
      });
      feed.batch.committed(lsn);
      return;
    }
    const dml = STATEMENT_DML.exec(sql);
    if (dml) {
      const qualified = dml[2] ?? dml[4];
      const name = unquote((dml[1] ?? dml[3]) as string);
      const feed = qualified ? this.feedOf(name, unquote(qualified)) : this.feedOf(e.schema, name);
      if (feed && start >= feed.committed) {
        throw new ConfigError(
          `${this.o.label}: ${feed.table.schema}.${feed.table.name} was changed by a statement logged as SQL text, not as rows, at ${positionText(this.base, start)} (a session ran with binlog_format = STATEMENT or MIXED): its rows cannot be known from the binlog. Make sure no session overrides binlog_format = ROW, then run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot`,
        );
      }
    }
  }

  /** Timer: flush batches that are old enough; without --follow, stop once nothing arrives for idle_timeout. */
  private async tick(following: boolean): Promise<void> {
    if (this.closed || this.finished) return;
    // A unit still waiting for the engine: keep adding to the open batch rather than queueing
    // another behind it (the next unit then holds everything that arrived meanwhile).
    for (const f of this.feeds.values())
      if (f.batch.size > 0 && f.queue.size === 0 && Date.now() - f.batch.openedAt >= this.flushMs) await this.flush(f);
    // The end-of-binlog target normally ends the run; silence means there is nothing more to read.
    if (!following && !this.txn && Date.now() - this.lastEventAt >= this.idleMs) await this.finish();
    else if (following && Date.now() - this.lastAdvance >= ADVANCE_MS) await this.advance();
  }

  private stateAt(f: Feed, lsn: bigint): MysqlCdcState {
    return {
      binlog: positionFile(this.base, lsn),
      position: positionOffset(lsn),
      lsn: lsn.toString(),
      snapshot_at: f.snapshotAt,
    };
  }

  private async flush(f: Feed): Promise<void> {
    const unit = await f.batch.flush((lsn) => this.stateAt(f, lsn));
    if (!unit) return;
    await f.queue.push(unit);
    f.through = unit.lsn;
  }

  /**
   * Streams whose tables saw no change commit the position read up to (a state-only unit):
   * resuming from an old position would need binlog files the server may have purged since.
   */
  private async advance(): Promise<void> {
    this.lastAdvance = Date.now();
    if (this.txn) return;
    const at = this.position();
    for (const f of this.feeds.values()) {
      if (f.batch.size > 0 || at <= f.through) continue;
      const to = positionText(this.base, at);
      await f.queue.push({
        label: `${f.table.schema}.${f.table.name} no changes to ${to}`,
        bytes: 0,
        position: { table: `${f.table.schema}.${f.table.name}`, to },
        state: this.stateAt(f, at),
        lsn: at,
      });
      f.through = at;
    }
  }

  /** Caught up: every batch becomes a unit and every stream ends after its last one. */
  private async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.reader?.pause();
    for (const f of this.feeds.values()) await this.flush(f);
    await this.advance();
    for (const f of this.feeds.values()) f.queue.close();
  }

  private fail(err: unknown): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    // Nothing after the failure is read: the next run starts again from the committed positions.
    this.finished = true;
    this.reader?.pause();
    const error = this.describe(err);
    for (const f of this.feeds.values()) f.queue.fail(error);
  }

  private describe(err: unknown): Error {
    const { label, pipeline } = this.o;
    if (err instanceof DipError) return err;
    if (err instanceof TableChangedError) {
      return new ConfigError(
        `${label}: ${err.message}: its structure changed (ALTER TABLE) after the changes being read were written, so their values cannot be matched to columns. Run \`dip state ${pipeline} --reset\` to take a new snapshot`,
        { cause: err },
      );
    }
    const message = errorMessage(err);
    const errno = (err as { errno?: number } | undefined)?.errno;
    if (isPrivilegeError(err) || /REPLICATION SLAVE|REPLICA privilege/i.test(message))
      return new ConfigError(replicationPrivilegeMessage(label, message), { cause: err });
    if (/same server[_ ]id|server_uuid\/server_id/i.test(message)) {
      return new ConfigError(
        `${label}: another replica connected to the server with server id ${this.serverId} (another dip run of this pipeline, or a replica using that id): stop the other run, or set cdc.server_id to a number no other replica of this server uses: ${message}`,
        { cause: err },
      );
    }
    if (errno === 1236 || /could not find first log file|purged|log event entry exceeded/i.test(message)) {
      return new ConfigError(
        `${label}: the server cannot stream its binary log from ${positionText(this.base, this.position())}: ${message}. If the file was purged, the changes since are lost to the change stream: run \`dip state ${pipeline} --reset\` to take a new snapshot`,
        { cause: err },
      );
    }
    return new DipError('transient', `${label}: binlog stream failed: ${message}`, { cause: err });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearInterval(t);
    this.finished = true;
    for (const f of this.feeds.values()) f.queue.close(); // releases a handler waiting to queue a unit
    await this.serial.idle();
    this.closed = true;
    await this.reader?.stop();
    await this.txn?.buffer.discard();
    this.txn = undefined;
    for (const f of this.feeds.values()) await f.batch.discard();
  }
}

const tableKey = (schema: string, table: string): string => `${schema}.${table}`;

function isCdcState(value: unknown): value is MysqlCdcState {
  const v = value as Partial<MysqlCdcState> | null | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.binlog === 'string' &&
    typeof v.lsn === 'string' &&
    /^\d+$/.test(v.lsn)
  );
}
