/**
 * Change data capture for the CDC streams of one PostgreSQL source, through one replication
 * slot and one publication. The session:
 *
 * - takes the initial snapshot at the slot's consistent point (when the slot is new, or when a
 *   stream has no state from it), one `snapshot` unit per table;
 * - streams pgoutput changes from that point, each table's events batched into units that end
 *   at transaction boundaries and carry the commit LSN they are complete up to;
 * - confirms an LSN to the server only once every transaction up to it is committed to the
 *   lake by every stream it touched, so a crash replays (and a stream skips what it already
 *   has, by its state), never loses;
 * - without --follow, stops once caught up with a watermark emitted at start: when the
 *   watermark message arrives, or when the server reports (keepalive, which we request) that
 *   it has sent everything up to the watermark's LSN; the message alone is not enough, since
 *   the server skips records below the slot's confirmed position.
 */
import { join } from 'node:path';
import { LogicalReplicationService } from 'pg-logical-replication';
import type pg from 'pg';
import type { PostgresSourceConfig } from '../../../config/database.js';
import { AsyncQueue } from '../../../core/async-queue.js';
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import { newId } from '../../../core/ids.js';
import { Serial } from '../../../core/serial.js';
import { durationMs } from '../../../core/time.js';
import type { DbStream, DbTable } from '../../database/types.js';
import { assertCdcStreamsTogether } from '../../database/types.js';
import type { PlanContext, ReadUnit } from '../../types.js';
import { ident, qualified } from '../../../lake/sql.js';
import { connect } from '../connection.js';
import { copyToFile } from '../extract.js';
import {
  ChangeBatcher,
  snapshotSelectList,
  snapshotUnit,
  type CdcUnit,
  type ChangeDialect,
  type ChangeEvent,
  type Tuple,
} from '../../database/change-batch.js';
import { bigintToLsn, createPgoutputPlugin, lsnToBigint, type PgoutputMessage, type Relation } from './pgoutput.js';
import { converterFor } from './values.js';
import {
  checkReplicaIdentity,
  checkWalLevel,
  createSlotWithSnapshot,
  dropSlot,
  emitWatermark,
  ensurePublication,
  slotExists,
} from './slot.js';

export interface CdcSessionOptions {
  config: PostgresSourceConfig;
  client: pg.ClientConfig;
  label: string;
  streams: DbStream[];
  pipeline: string;
}

/** State a CDC stream commits with each unit. */
export interface CdcState {
  slot: string;
  /** The slot's consistent point: where its snapshot was taken. */
  point: string;
  /** Commit LSN of the last transaction whose events are in the lake. */
  lsn: string;
}

const PG_CHANGES: ChangeDialect = { position: bigintToLsn, converterFor };

interface Feed {
  stream: DbStream;
  table: DbTable;
  ctx: PlanContext;
  state: CdcState | undefined;
  /** Transactions committing at or before this LSN are already in the lake for this stream. */
  committedLsn: bigint;
  queue: AsyncQueue<CdcUnit>;
  batch: ChangeBatcher;
}

/** A transaction received, waiting until every stream it touched has committed it. */
interface Pending {
  commitLsn: bigint;
  endLsn: bigint;
  waiting: Set<Feed>;
}

const QUEUE_UNITS = 4;
const ACK_INTERVAL_MS = 1000;
const PING_MS = 500;
const SLOT_BUSY_WAIT_MS = 15_000;

export class CdcSession {
  private readonly feeds = new Map<string, Feed>();
  private readonly byTable = new Map<string, Feed>();
  private readonly relations = new Map<number, Feed | undefined>();
  private registered!: () => void;
  private readonly allRegistered = new Promise<void>((resolve) => (this.registered = resolve));
  private started: Promise<void> | undefined;
  private service: LogicalReplicationService | undefined;
  private readonly serial = new Serial();
  private readonly pending: Pending[] = [];
  private txn: { commitLsn: bigint; xid: number; micros: bigint; touched: Set<Feed> } | undefined;
  private ackedLsn = 0n;
  private idleLsn = 0n;
  private slot = '';
  private point = '';
  private watermark: string | undefined;
  private watermarkLsn: bigint | undefined;
  private lastEventAt = Date.now();
  private lastPing = 0;
  private caughtUp = false;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  /** Caught up (or closing): later messages are left for the next run. */
  private finished = false;
  private readonly flushMs: number;
  private readonly idleMs: number;

  constructor(private readonly o: CdcSessionOptions) {
    this.flushMs = durationMs(o.config.cdc.flush_interval, `${o.label}.cdc.flush_interval`);
    this.idleMs = durationMs(o.config.cdc.idle_timeout, `${o.label}.cdc.idle_timeout`);
  }

  /** A stream's units: its snapshot (when due), then its changes, committed one by one. */
  async *units(s: DbStream, ctx: PlanContext): AsyncGenerator<ReadUnit> {
    const feed = this.register(s, ctx);
    // Interrupted (Ctrl-C, SIGTERM): a stream waiting for changes stops waiting.
    const onAbort = () => feed.queue.fail(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    await this.allRegistered;
    this.started ??= this.start(ctx);
    await this.started;
    for await (const unit of feed.queue) {
      yield unit;
      // The runner asks for the next unit only once this one is committed.
      this.committed(feed, unit.lsn);
    }
  }

  private register(s: DbStream, ctx: PlanContext): Feed {
    assertCdcStreamsTogether(this.o.streams, ctx, this.o.label, 'replication slot');
    const table = s.table as DbTable;
    const state = isCdcState(ctx.state) ? ctx.state : undefined;
    const feed: Feed = {
      stream: s,
      table,
      ctx,
      state,
      committedLsn: state ? lsnToBigint(state.lsn) : 0n,
      queue: new AsyncQueue<CdcUnit>(QUEUE_UNITS),
      batch: new ChangeBatcher(
        s,
        ctx.stagingDir,
        { pipeline: ctx.pipeline, source: ctx.source, stream: s.spec.name, run_id: ctx.runId },
        PG_CHANGES,
      ),
    };
    this.feeds.set(s.spec.name, feed);
    this.byTable.set(`${table.schema}.${table.name}`, feed);
    if (this.feeds.size === this.o.streams.length) this.registered();
    return feed;
  }

  private async start(ctx: PlanContext): Promise<void> {
    const { config, label } = this.o;
    const feeds = [...this.feeds.values()];
    this.slot = config.cdc.slot ?? `dip_${this.o.pipeline}_${ctx.source}`;
    const publication = config.cdc.publication ?? `dip_${this.o.pipeline}_${ctx.source}`;
    const client = await connect(this.o.client, label);
    try {
      await checkWalLevel(client, label);
      await checkReplicaIdentity(
        client,
        label,
        feeds.map((f) => f.table),
      );
      await ensurePublication(
        client,
        label,
        publication,
        feeds.map((f) => f.table),
      );
      const existing = await this.waitForSlot(client);
      const resumable =
        existing && feeds.every((f) => f.state?.slot === this.slot && f.state.point === feeds[0]?.state?.point);
      let startLsn: string;
      if (resumable) {
        this.point = feeds[0]?.state?.point as string;
        startLsn = bigintToLsn(
          feeds.reduce((min, f) => (f.committedLsn < min ? f.committedLsn : min), feeds[0]?.committedLsn ?? 0n),
        );
      } else {
        // A new slot, or a stream without a snapshot from the existing one (added since, or a
        // crash during the first snapshot): every table is read again at a new consistent point.
        if (existing) await dropSlot(client, this.slot);
        startLsn = await this.snapshot(feeds);
      }
      if (!ctx.follow) {
        this.watermark = newId('wm_');
        const at = await emitWatermark(client, this.watermark);
        if (at) this.watermarkLsn = lsnToBigint(at);
        else this.watermark = undefined;
      }
      this.ackedLsn = lsnToBigint(startLsn);
      this.stream(publication, startLsn);
    } catch (err) {
      for (const f of feeds) f.queue.fail(err);
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A slot still held by a killed run's connection is released by the server shortly. */
  private async waitForSlot(client: pg.Client): Promise<boolean> {
    const deadline = Date.now() + SLOT_BUSY_WAIT_MS;
    for (;;) {
      const slot = await slotExists(client, this.slot);
      if (!slot) return false;
      if (slot.plugin !== 'pgoutput') {
        throw new ConfigError(
          `${this.o.label}: replication slot ${this.slot} exists with plugin ${slot.plugin}, not pgoutput; drop it or set cdc.slot to another name`,
        );
      }
      if (!slot.active) return true;
      if (Date.now() > deadline) {
        throw new DipError(
          'conflict',
          `${this.o.label}: replication slot ${this.slot} is in use by server process ${slot.activePid} (another dip run of this pipeline?)`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Creates the slot, copies every table as of its consistent point, queues one snapshot unit per table. */
  private async snapshot(feeds: Feed[]): Promise<string> {
    const created = await createSlotWithSnapshot(this.o.client, this.o.label, this.slot);
    this.point = created.consistentPoint;
    const point = lsnToBigint(created.consistentPoint);
    const reader = await connect(this.o.client, this.o.label);
    const units: [Feed, CdcUnit][] = [];
    try {
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${created.snapshot}'`);
      for (const f of feeds) {
        const path = join(f.ctx.stagingDir, `${newId('snap')}.csv`);
        const table = `${f.table.schema}.${f.table.name}`;
        await copyToFile(
          reader,
          `SELECT ${snapshotSelectList(f.stream, ident, point, 'false')} FROM ${qualified(f.table.schema, f.table.name)}`,
          path,
          f.ctx.signal,
        );
        // Transactions decoded from the slot are exactly those the snapshot does not see: none is skipped.
        const state: CdcState = { slot: this.slot, point: created.consistentPoint, lsn: bigintToLsn(point - 1n) };
        units.push([f, await snapshotUnit(f.stream, table, path, created.consistentPoint, point - 1n, state)]);
        f.committedLsn = point - 1n;
      }
      await reader.query('COMMIT');
    } finally {
      await reader.end().catch(() => undefined);
      await created.release();
    }
    for (const [f, unit] of units) await f.queue.push(unit);
    return created.consistentPoint;
  }

  private stream(publication: string, startLsn: string): void {
    const service = new LogicalReplicationService(this.o.client, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service = service;
    service.on('data', (_lsn: string, message: PgoutputMessage) =>
      this.serial.run(() => this.onMessage(message)).catch((err: unknown) => this.fail(err)),
    );
    service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      // A keepalive carries the position the server has sent everything up to.
      const sent = lsnToBigint(lsn);
      if (!this.txn && this.pending.length === 0 && this.allEmpty()) this.idleLsn = sent;
      if (this.watermarkLsn !== undefined && sent >= this.watermarkLsn) this.caughtUp = true;
      if (shouldRespond) void this.acknowledge(true);
    });
    service.on('error', (err: Error) => this.fail(err));
    service.subscribe(createPgoutputPlugin(publication), this.slot, startLsn).catch((err: unknown) => this.fail(err));
    this.timers.push(
      setInterval(
        () => void this.serial.run(() => this.tick()).catch((err: unknown) => this.fail(err)),
        Math.max(50, Math.min(this.flushMs / 2, 250)),
      ),
    );
    this.timers.push(setInterval(() => void this.acknowledge(false), ACK_INTERVAL_MS));
  }

  private async onMessage(m: PgoutputMessage): Promise<void> {
    if (this.finished) return;
    switch (m.tag) {
      case 'begin':
        this.txn = {
          commitLsn: lsnToBigint(m.commitLsn ?? '0/0'),
          xid: m.xid,
          micros: BigInt(m.commitTime),
          touched: new Set(),
        };
        return;
      case 'relation':
        this.relations.set(m.relationOid, this.byTable.get(`${m.schema}.${m.name}`));
        return;
      case 'insert':
        return this.add(m.relation, 'c', m.new, null);
      case 'update': {
        const old = m.old ?? m.key;
        const feed = this.feedOf(m.relation);
        if (old && feed && keyChanged(feed.stream.spec.primaryKey, old, m.new)) {
          // A new primary key: the old row is gone and a new one exists (as Debezium reports it).
          await this.add(m.relation, 'd', old, old);
          return this.add(m.relation, 'c', m.new, null);
        }
        return this.add(m.relation, 'u', m.new, old);
      }
      case 'delete':
        return this.add(m.relation, 'd', (m.old ?? m.key) as Tuple, m.old ?? m.key);
      case 'truncate':
        for (const r of m.relations) await this.add(r, 't', {}, null);
        return;
      case 'commit': {
        const txn = this.txn;
        this.txn = undefined;
        if (!txn) return;
        const end = lsnToBigint(m.commitEndLsn ?? '0/0');
        for (const f of txn.touched) f.batch.committed(txn.commitLsn);
        this.pending.push({ commitLsn: txn.commitLsn, endLsn: end, waiting: new Set(txn.touched) });
        for (const f of txn.touched) if (f.batch.size >= this.o.config.cdc.batch_records) await this.flush(f);
        this.settle();
        return;
      }
      case 'message':
        if (m.prefix === 'dip' && this.watermark && Buffer.from(m.content).toString('utf8') === this.watermark)
          await this.finish();
        return;
      default:
        return;
    }
  }

  private feedOf(relation: Relation): Feed | undefined {
    return this.relations.get(relation.relationOid) ?? this.byTable.get(`${relation.schema}.${relation.name}`);
  }

  private async add(relation: Relation, op: ChangeEvent['op'], row: Tuple, before: Tuple | null): Promise<void> {
    const feed = this.feedOf(relation);
    const txn = this.txn;
    if (!feed || !txn || txn.commitLsn <= feed.committedLsn) return;
    const missing = Object.entries(row).find(([, v]) => v === undefined && op !== 'd');
    if (missing) {
      throw new ConfigError(
        `${this.o.label}: ${feed.table.schema}.${feed.table.name}: an update at ${bigintToLsn(txn.commitLsn)} left the large (TOASTed) column ${missing[0]} unchanged, and PostgreSQL does not send such values unless the table has REPLICA IDENTITY FULL. Run: ALTER TABLE ${qualified(feed.table.schema, feed.table.name)} REPLICA IDENTITY FULL`,
      );
    }
    this.lastEventAt = Date.now();
    txn.touched.add(feed);
    await feed.batch.add({ op, row, before, commitLsn: txn.commitLsn, txid: txn.xid, commitMicros: txn.micros });
  }

  /** Timer: flush batches that are old enough (between transactions only); stop when idle and not following. */
  private async tick(): Promise<void> {
    if (this.closed || this.txn) return;
    // A unit still waiting for the engine: keep adding to the open batch rather than queueing
    // another behind it (the next unit then holds everything that arrived meanwhile).
    for (const f of this.feeds.values())
      if (f.batch.size > 0 && f.queue.size === 0 && Date.now() - f.batch.openedAt >= this.flushMs) await this.flush(f);
    const following = [...this.feeds.values()].some((f) => f.ctx.follow);
    // No watermark (not permitted), or the server went quiet: stop after idle_timeout without changes.
    if (!following && Date.now() - this.lastEventAt >= this.idleMs) await this.finish();
    // The server has sent everything up to the watermark; stop once what it sent is handled
    // (keepalives overtake the data messages still queued for the handler).
    if (this.caughtUp && !this.txn && !this.finished && this.queuedMessages() === 0) await this.finish();
    // Catching up: ask for a keepalive, which says how far the server has sent.
    if (this.watermarkLsn !== undefined && !this.finished && Date.now() - this.lastPing >= PING_MS) {
      this.lastPing = Date.now();
      await this.acknowledge(true);
    }
  }

  private async flush(f: Feed): Promise<void> {
    const unit = await f.batch.flush(
      (lsn): CdcState => ({ slot: this.slot, point: this.point, lsn: bigintToLsn(lsn) }),
    );
    if (unit) await f.queue.push(unit);
  }

  /** Caught up: every batch becomes a unit and every stream ends after its last one. */
  private async finish(): Promise<void> {
    this.finished = true;
    for (const f of this.feeds.values()) {
      await this.flush(f);
      f.queue.close();
    }
  }

  private committed(feed: Feed, lsn: bigint): void {
    if (lsn > feed.committedLsn) feed.committedLsn = lsn;
    for (const p of this.pending) if (p.commitLsn <= lsn) p.waiting.delete(feed);
    this.settle();
  }

  /** Confirms the transactions at the head of the list that every stream has committed. */
  private settle(): void {
    while (this.pending[0] && this.pending[0].waiting.size === 0) {
      const done = this.pending.shift() as Pending;
      if (done.endLsn > this.ackedLsn) this.ackedLsn = done.endLsn;
    }
  }

  /** Data messages received but not yet handed to us (pg-logical-replication's flow-control queue). */
  private queuedMessages(): number {
    return (this.service as unknown as { _messageQueue?: unknown[] } | undefined)?._messageQueue?.length ?? 0;
  }

  private allEmpty(): boolean {
    return [...this.feeds.values()].every((f) => f.batch.size === 0 && f.queue.size === 0);
  }

  private async acknowledge(ping: boolean): Promise<void> {
    if (!this.service || this.closed) return;
    const idle = !this.txn && this.pending.length === 0 && this.allEmpty() && this.idleLsn > this.ackedLsn;
    const lsn = idle ? this.idleLsn : this.ackedLsn;
    if (lsn === 0n) return;
    await this.service.acknowledge(bigintToLsn(lsn), ping).catch(() => undefined);
  }

  private fail(err: unknown): void {
    if (this.closed) return;
    const error =
      err instanceof DipError
        ? err
        : new DipError('transient', `${this.o.label}: change stream failed: ${errorMessage(err)}`, { cause: err });
    for (const f of this.feeds.values()) f.queue.fail(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearInterval(t);
    this.finished = true;
    for (const f of this.feeds.values()) f.queue.close(); // releases a handler waiting to queue a unit
    await this.serial.idle();
    // The last confirmation: what the streams committed (a run that ends cleanly leaves nothing to replay).
    this.settle();
    await this.acknowledge(false);
    this.closed = true;
    await this.service?.stop().catch(() => undefined);
    for (const f of this.feeds.values()) await f.batch.discard();
  }
}

function isCdcState(value: unknown): value is CdcState {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CdcState).lsn === 'string' &&
    typeof (value as CdcState).slot === 'string'
  );
}

function keyChanged(primaryKey: readonly string[], old: Tuple, next: Tuple): boolean {
  return primaryKey.some((k) => old[k] !== undefined && old[k] !== next[k]);
}
