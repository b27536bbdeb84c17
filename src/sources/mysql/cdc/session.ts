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
import { ConfigError } from '../../../core/errors.js';
import type { CdcUnit, ChangeDialect } from '../../database/change-batch.js';
import type { CdcFeed } from '../../database/cdc-session.js';
import { copyDue } from '../../database/ddl-copy.js';
import type { PlanContext } from '../../types.js';
import { connect } from '../connection.js';
import { binlogConverter, binlogRenderer } from '../types.js';
import { BinlogReader, TableChangedError, binlogConnection, inOrder, type BinlogEvent } from './binlog.js';
import { type Feed, MysqlDdlSession, type MysqlCdcSessionOptions } from './ddl.js';
import { defaultServerId, describeBinlogError } from './errors.js';
import { classifyStatement, rowChanges } from './events.js';
import {
  type MysqlCdcState,
  binaryLogs,
  cdcState,
  isMysqlCdcState,
  binlogBase,
  binlogNumber,
  resumeLog,
  checkBinlog,
  currentPosition,
  encodePosition,
  positionFile,
  positionOffset,
  positionText,
} from './position.js';
import { tableShape } from './shape.js';
import { readSnapshot } from './snapshot.js';
import { TxnBuffer } from './txn-buffer.js';

export { defaultServerId } from './errors.js';
export type { MysqlCdcState } from './position.js';
export type { MysqlCdcSessionOptions } from './ddl.js';

/** With --follow, how often the position of streams whose tables see no changes is committed. */
const ADVANCE_MS = 60_000;

export class MysqlCdcSession extends MysqlDdlSession {
  protected readonly changes: ChangeDialect = {
    position: (v) => positionText(this.base || 'binlog', v),
    converterFor: binlogConverter,
  };
  private reader: BinlogReader | undefined;
  /** The current binlog file's number and the offset read up to. */
  private file = 0;
  private offset = 0;
  private serverId = 0;
  private lastEventAt = Date.now();
  private lastAdvance = Date.now();
  private failed = false;
  constructor(o: MysqlCdcSessionOptions) {
    super(o, 'binlog connection');
  }

  protected parseState(value: unknown): MysqlCdcState | undefined {
    return isMysqlCdcState(value) ? value : undefined;
  }

  protected stateLsn(state: MysqlCdcState): bigint {
    return BigInt(state.lsn);
  }

  protected newFeed(feed: CdcFeed<MysqlCdcState>): Feed {
    return {
      ...feed,
      through: feed.committed,
      snapshotAt: feed.state?.snapshot_at ?? '',
      render: feed.stream.columns.map(binlogRenderer),
      shape: feed.state?.shape ?? [],
    };
  }

  protected async start(ctx: PlanContext): Promise<void> {
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
          const log = resumeLog(logs, start, first.stream.spec.name, first.state, { label, pipeline: this.o.pipeline });
          this.base = binlogBase(log);
          for (const f of feeds) await this.resumeShape(conn, f);
          // A copy after a DDL statement that had not landed when the last run stopped: take it again.
          for (const f of feeds) if (f.state?.copy_due) await this.reshape(f, start, true);
        } else {
          // A stream without state (new, reset, or a crash during the first snapshot): every
          // table is read again in one snapshot, at one binlog position.
          for (const f of feeds) f.shape = await tableShape(conn, f.table.schema, f.table.name);
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
      this.failAll(err);
      throw err;
    }
  }

  /** Copies every table in one snapshot transaction; queues one snapshot unit per table. Returns its position. */
  private async snapshot(feeds: Feed[]): Promise<bigint> {
    const { at, position, units } = await readSnapshot(
      this.o.connection,
      this.o.label,
      feeds,
      (f) => (f as Feed).shape,
    );
    this.base = binlogBase(at.file);
    for (const f of feeds) {
      f.committed = position;
      f.through = position;
      f.snapshotAt = `${at.file}:${at.offset}`;
    }
    for (const [i, f] of feeds.entries()) await f.queue.push(units[i] as CdcUnit);
    return position;
  }

  private stream(start: bigint): void {
    this.file = Number(start >> 32n);
    this.offset = positionOffset(start);
    this.lastEventAt = Date.now();
    this.startTimer();
    // Even with nothing to read the dump starts (a rotate event comes first, then the run
    // ends): a missing REPLICATION SLAVE privilege shows on the first run, not the first change.
    const tables: Record<string, string[]> = {};
    for (const f of this.feeds.values()) (tables[f.table.schema] ??= []).push(f.table.name);
    const reader = new BinlogReader(binlogConnection(this.o.connection));
    this.reader = reader;
    reader.start(
      {
        serverId: this.serverId,
        file: positionFile(this.base, start),
        position: this.offset,
        tables,
        shape: (schema, table) => this.shapeAt(schema, table),
      },
      inOrder(
        reader,
        this.serial,
        (event) => this.onEvent(event),
        (err) => this.fail(err),
        () => this.finished,
      ),
      // Once caught up the connection is idle (paused) until closed: what happens to it no longer matters.
      (err) => {
        if (!this.finished) this.fail(err);
      },
    );
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
    await this.copiesReached(start);
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

  private async rows(e: Extract<BinlogEvent, { kind: 'insert' | 'update' | 'delete' }>, start: bigint): Promise<void> {
    const feed = this.feedOf(e.schema, e.table);
    // Positions in the lake are transaction boundaries: an event before one belongs to a
    // transaction that is in the lake already.
    if (!feed || start < feed.committed) return;
    // Row images from between two DDL statements that came faster than they were read: the
    // copy taken after them holds their outcome.
    if (e.shapeChanged && feed.copy && start < feed.copy.at) return;
    if (e.shapeChanged) {
      // The table changed while dip was not reading, and its state predates recording shapes.
      throw new TableChangedError(e.schema, e.table, e.shapeChanged.binlogColumns, e.shapeChanged.tableColumns);
    }
    if (!e.full) {
      throw new ConfigError(
        `${this.o.label}: a change to ${feed.table.schema}.${feed.table.name} at ${positionText(this.base, start)} was logged without every column (a session ran with binlog_row_image = MINIMAL or NOBLOB): the row cannot be known from the binlog. Make sure no session overrides binlog_row_image = FULL, then run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot`,
      );
    }
    const txn = (this.txn ??= { buffer: new TxnBuffer(feed.ctx.stagingDir), touched: new Set() });
    txn.touched.add(feed);
    for (const c of rowChanges(e, feed.stream, feed.render))
      await txn.buffer.add({ stream: feed.stream.spec.name, ...c });
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
    this.markCommitted(txn.touched, lsn);
    await this.flushFull(txn.touched);
  }

  private async query(e: Extract<BinlogEvent, { kind: 'query' }>, start: bigint): Promise<void> {
    const statement = classifyStatement(e.query, e.schema);
    if (statement.kind === 'commit') return this.commit(this.at(e.next), 0, e.timestamp);
    if (statement.kind === 'ddl') {
      for (const t of statement.tables) {
        const feed = this.feedOf(t.schema, t.table);
        // A copy taken after this statement holds its outcome already.
        if (!feed || start < feed.committed || (feed.copy && start < feed.copy.at)) continue;
        // DDL commits implicitly: it is a transaction of its own.
        if (this.txn) await this.commit(start, 0, e.timestamp);
        await this.reshape(feed, start);
      }
      return;
    }
    if (statement.kind !== 'truncate' && statement.kind !== 'dml') return;
    const feed = this.feedOf(statement.schema, statement.table);
    if (!feed || start < feed.committed) return;
    if (statement.kind === 'dml') {
      throw new ConfigError(
        `${this.o.label}: ${feed.table.schema}.${feed.table.name} was changed by a statement logged as SQL text, not as rows, at ${positionText(this.base, start)} (a session ran with binlog_format = STATEMENT or MIXED): its rows cannot be known from the binlog. Make sure no session overrides binlog_format = ROW, then run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot`,
      );
    }
    // TRUNCATE commits implicitly: it is a transaction of its own.
    if (this.txn) await this.commit(start, 0, e.timestamp);
    const lsn = this.at(e.next);
    const commitMicros = BigInt(e.timestamp) * 1000n;
    await feed.batch.add({ op: 't', row: {}, before: null, commitLsn: lsn, txid: 0, commitMicros });
    feed.batch.committed(lsn);
  }

  /** Timer: flush batches that are old enough; without --follow, stop once nothing arrives for idle_timeout. */
  protected async tick(): Promise<void> {
    if (this.closed || this.finished) return;
    // A copy whose position is the last thing read: nothing after it needs to arrive first.
    await this.copiesReached(this.position());
    await this.flushDue();
    const following = this.following();
    // The end-of-binlog target normally ends the run; silence means there is nothing more to read.
    if (!following && !this.txn && Date.now() - this.lastEventAt >= this.idleMs) await this.finish();
    else if (following && Date.now() - this.lastAdvance >= ADVANCE_MS) await this.advance();
  }

  protected stateAt(f: Feed, lsn: bigint): MysqlCdcState {
    return { ...cdcState(this.base, lsn, f.snapshotAt, f.shape), ...copyDue(f) };
  }

  protected override async flush(f: Feed): Promise<CdcUnit | undefined> {
    const unit = await super.flush(f);
    if (unit) f.through = unit.lsn;
    return unit;
  }

  protected override async lastUnits(): Promise<void> {
    await this.copiesReached(this.position());
    await this.advance();
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

  protected override stopInput(): void {
    this.reader?.pause();
  }

  protected override betweenTransactions(): boolean {
    return !this.txn;
  }

  protected override fail(err: unknown): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    // Nothing after the failure is read: the next run starts again from the committed positions.
    this.finished = true;
    this.reader?.pause();
    super.fail(err);
  }

  protected describe(err: unknown): Error {
    const { label, pipeline } = this.o;
    const at = () => positionText(this.base, this.position());
    return describeBinlogError(err, { label, pipeline, serverId: this.serverId, at });
  }

  protected async release(): Promise<void> {
    await this.disposeCopies();
    await this.reader?.stop();
    await this.txn?.buffer.discard();
    this.txn = undefined;
  }
}
