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
import { LogicalReplicationService } from 'pg-logical-replication';
import type pg from 'pg';
import type { PostgresSourceConfig } from '../../../config/database.js';
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import { newId } from '../../../core/ids.js';
import { ident, qualified } from '../../../lake/sql.js';
import type { ChangeDialect, ChangeEvent, CdcUnit, Tuple } from '../../database/change-batch.js';
import { keyChanged, snapshotUnit } from '../../database/change-batch.js';
import { CdcSessionBase, snapshotRead, tableName, type CdcFeed } from '../../database/cdc-session.js';
import type { DbStream } from '../../database/types.js';
import type { PlanContext } from '../../types.js';
import { connect } from '../connection.js';
import { copyToFile } from '../extract.js';
import { bigintToLsn, createPgoutputPlugin, lsnToBigint, type PgoutputMessage, type Relation } from './pgoutput.js';
import { converterFor } from './values.js';
import {
  checkReplicaIdentity,
  checkWalLevel,
  createSlotWithSnapshot,
  dropSlot,
  emitWatermark,
  ensurePublication,
  waitForSlot,
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

type Feed = CdcFeed<CdcState>;

/** A transaction received, waiting until every stream it touched has committed it. */
interface Pending {
  commitLsn: bigint;
  endLsn: bigint;
  waiting: Set<Feed>;
}

const ACK_INTERVAL_MS = 1000;
const PING_MS = 500;

export class CdcSession extends CdcSessionBase<CdcSessionOptions, CdcState, Feed> {
  protected readonly changes = PG_CHANGES;
  private readonly relations = new Map<number, Feed | undefined>();
  private service: LogicalReplicationService | undefined;
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

  constructor(o: CdcSessionOptions) {
    super(o, 'replication slot');
  }

  protected parseState(value: unknown): CdcState | undefined {
    return isCdcState(value) ? value : undefined;
  }

  protected stateLsn(state: CdcState): bigint {
    return lsnToBigint(state.lsn);
  }

  protected newFeed(feed: Feed): Feed {
    return feed;
  }

  protected stateAt(_f: Feed, lsn: bigint): CdcState {
    return { slot: this.slot, point: this.point, lsn: bigintToLsn(lsn) };
  }

  protected async start(ctx: PlanContext): Promise<void> {
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
      const existing = await waitForSlot(client, label, this.slot);
      const resumable =
        existing && feeds.every((f) => f.state?.slot === this.slot && f.state.point === feeds[0]?.state?.point);
      let startLsn: string;
      if (resumable) {
        this.point = feeds[0]?.state?.point as string;
        startLsn = bigintToLsn(
          feeds.reduce((min, f) => (f.committed < min ? f.committed : min), feeds[0]?.committed ?? 0n),
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
      this.failAll(err);
      throw err;
    } finally {
      await client.end().catch(() => undefined);
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
        const { path, sql } = snapshotRead(f, ident, qualified, point, 'false');
        await copyToFile(reader, sql, path, f.ctx.signal);
        // Transactions decoded from the slot are exactly those the snapshot does not see: none is skipped.
        const state: CdcState = { slot: this.slot, point: created.consistentPoint, lsn: bigintToLsn(point - 1n) };
        units.push([
          f,
          await snapshotUnit(f.stream, tableName(f.table), path, created.consistentPoint, point - 1n, state),
        ]);
        f.committed = point - 1n;
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
    this.startTimer();
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
        this.relations.set(m.relationOid, this.byTable.get(tableName(m)));
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
        this.markCommitted(txn.touched, txn.commitLsn);
        // Pending before any unit is queued: the runner's commit of one clears its stream here.
        this.pending.push({ commitLsn: txn.commitLsn, endLsn: end, waiting: new Set(txn.touched) });
        await this.flushFull(txn.touched);
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
    return this.relations.get(relation.relationOid) ?? this.byTable.get(tableName(relation));
  }

  private async add(relation: Relation, op: ChangeEvent['op'], row: Tuple, before: Tuple | null): Promise<void> {
    const feed = this.feedOf(relation);
    const txn = this.txn;
    if (!feed || !txn || txn.commitLsn <= feed.committed) return;
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

  protected override betweenTransactions(): boolean {
    return !this.txn;
  }

  /** Timer: flush batches that are old enough (between transactions only); stop when idle and not following. */
  protected async tick(): Promise<void> {
    if (this.closed || this.txn) return;
    await this.flushDue();
    // No watermark (not permitted), or the server went quiet: stop after idle_timeout without changes.
    if (!this.following() && Date.now() - this.lastEventAt >= this.idleMs) await this.finish();
    // The server has sent everything up to the watermark; stop once what it sent is handled
    // (keepalives overtake the data messages still queued for the handler).
    if (this.caughtUp && !this.txn && !this.finished && this.queuedMessages() === 0) await this.finish();
    // Catching up: ask for a keepalive, which says how far the server has sent.
    if (this.watermarkLsn !== undefined && !this.finished && Date.now() - this.lastPing >= PING_MS) {
      this.lastPing = Date.now();
      await this.acknowledge(true);
    }
  }

  protected override unitCommitted(feed: Feed, lsn: bigint): void {
    if (lsn > feed.committed) feed.committed = lsn;
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

  protected describe(err: unknown): Error {
    return err instanceof DipError
      ? err
      : new DipError('transient', `${this.o.label}: change stream failed: ${errorMessage(err)}`, { cause: err });
  }

  /** The last confirmation: what the streams committed (a run that ends cleanly leaves nothing to replay). */
  protected override async beforeClose(): Promise<void> {
    this.settle();
    await this.acknowledge(false);
  }

  protected async release(): Promise<void> {
    await this.service?.stop().catch(() => undefined);
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
