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
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import { newId } from '../../../core/ids.js';
import { qualified } from '../../../lake/sql.js';
import type { ChangeDialect, ChangeEvent, Tuple } from '../../database/change-batch.js';
import { keyChanged } from '../../database/change-batch.js';
import { tableName, type CdcFeed } from '../../database/cdc-session.js';
import { copyDue } from '../../database/ddl-copy.js';
import type { PlanContext } from '../../types.js';
import { connect } from '../connection.js';
import { type CdcSessionOptions, type Feed, PgDdlSession, TABLE_CHECK_MS } from './ddl.js';
import { bigintToLsn, createPgoutputPlugin, lsnToBigint, type PgoutputMessage, type Relation } from './pgoutput.js';
import { tableShape } from './shape.js';
import { snapshotAtNewSlot } from './snapshot.js';
import { type CdcState, isCdcState } from './state.js';
import { converterFor } from './values.js';
import {
  checkReplicaIdentity,
  checkWalLevel,
  dropSlot,
  emitWatermark,
  ensurePublication,
  waitForSlot,
} from './slot.js';

export type { CdcState } from './state.js';
export type { CdcSessionOptions } from './ddl.js';

const PG_CHANGES: ChangeDialect = { position: bigintToLsn, converterFor };
const ACK_INTERVAL_MS = 1000;
const PING_MS = 500;

export class CdcSession extends PgDdlSession {
  protected readonly changes = PG_CHANGES;
  private service: LogicalReplicationService | undefined;
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

  protected newFeed(feed: CdcFeed<CdcState>): Feed {
    return { ...feed, shape: feed.state?.shape };
  }

  protected stateAt(f: Feed, lsn: bigint): CdcState {
    return { ...this.state(bigintToLsn(lsn), f.shape), ...copyDue(f) };
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
      // The stream's columns were described from the table as it is now.
      for (const f of feeds) f.columnsShape = await tableShape(client, f.table.schema, f.table.name);
      if (resumable) {
        this.point = feeds[0]?.state?.point as string;
        startLsn = bigintToLsn(
          feeds.reduce((min, f) => (f.committed < min ? f.committed : min), feeds[0]?.committed ?? 0n),
        );
        // A copy after a DDL statement that had not landed when the last run stopped: take it again.
        for (const f of feeds) if (f.state?.copy_due) await this.copy(f);
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
    const { client, label } = this.o;
    const { point, units } = await snapshotAtNewSlot(client, label, this.slot, feeds, (at, lsn, shape) =>
      this.state(lsn, shape, at),
    );
    this.point = point;
    for (const [f, unit] of units) await f.queue.push(unit);
    return point;
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
        await this.reached(lsnToBigint(m.commitLsn ?? '0/0'));
        this.txn = {
          commitLsn: lsnToBigint(m.commitLsn ?? '0/0'),
          xid: m.xid,
          micros: BigInt(m.commitTime),
          touched: new Set(),
        };
        return;
      case 'relation':
        return this.relation(m);
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
        if (m.prefix === 'dip' && this.watermark && Buffer.from(m.content).toString('utf8') === this.watermark) {
          // A copy still waiting for its point: read on until the server has sent past it.
          if (this.copiesDue()) this.caughtUp = true;
          else await this.finish();
        }
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
    // Nothing received is waiting: the server has sent everything before the last keepalive's position.
    const idle = this.pending.length === 0 && this.allEmpty() && this.queuedMessages() === 0;
    if (!this.finished && idle) await this.reached(this.idleLsn);
    if (!this.finished && Date.now() - this.lastTableCheck >= TABLE_CHECK_MS) await this.checkTables();
    await this.flushDue();
    // No watermark (not permitted), or the server went quiet: stop after idle_timeout without changes.
    if (!this.following() && Date.now() - this.lastEventAt >= this.idleMs) await this.finish();
    // The server has sent everything up to the watermark; stop once what it sent is handled
    // (keepalives overtake the data messages still queued for the handler) and no copy waits.
    if (this.caughtUp && !this.txn && !this.finished && this.queuedMessages() === 0 && !this.copiesDue())
      await this.finish();
    // Catching up, or a copy waiting for its point: ask for a keepalive, which says how far the server has sent.
    const asking = this.watermarkLsn !== undefined || this.copiesDue();
    if (asking && !this.finished && Date.now() - this.lastPing >= PING_MS) {
      this.lastPing = Date.now();
      await this.acknowledge(true);
    }
  }

  protected override unitCommitted(feed: Feed, lsn: bigint): void {
    if (lsn > feed.committed) feed.committed = lsn;
    for (const p of this.pending) if (p.commitLsn <= lsn) p.waiting.delete(feed);
    this.settle();
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
    await this.meta?.end().catch(() => undefined);
    await this.disposeCopies();
  }
}
