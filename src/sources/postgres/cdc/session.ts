/** Over 400 lines: one replication session is one state machine over its messages (transactions, relations and the copies after DDL, confirmations). */
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
import { chooseColumns, type DbStream } from '../../database/types.js';
import type { PlanContext } from '../../types.js';
import { connect } from '../connection.js';
import { copyToFile } from '../extract.js';
import { bigintToLsn, createPgoutputPlugin, lsnToBigint, type PgoutputMessage, type Relation } from './pgoutput.js';
import { PgIntrospector } from '../introspect.js';
import { copyTable, shapeOf, tableShape, type TableCopy } from './shape.js';
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
  /** The table's columns (name, type oid, modifier) as of `lsn`: a relation message with others means it changed. */
  shape?: string | undefined;
  /** The table changed before `lsn` and the copy taken after that has not landed: take it again. */
  copy_due?: true | undefined;
}

const PG_CHANGES: ChangeDialect = { position: bigintToLsn, converterFor };

interface Feed extends CdcFeed<CdcState> {
  /** The table's shape as of the position read to (undefined: not known yet, from an older state). */
  shape?: string | undefined;
  /** The shape the stream's columns were described from. */
  columnsShape?: string | undefined;
  /** A copy of the table after it changed, queued once a transaction committing at or after its point arrives. */
  copy?: TableCopy | undefined;
  /** The table was found gone when the server's WAL was at `lsn`: the stream fails once reading passes it. */
  gone?: { lsn: bigint } | undefined;
}

const TABLE_CHECK_MS = 2000;

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
  private lastTableCheck = Date.now();
  private meta: pg.Client | undefined;

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
    return this.state(bigintToLsn(lsn), f.shape, f.copy !== undefined);
  }

  private state(lsn: string, shape: string | undefined, copyDue = false): CdcState {
    return {
      slot: this.slot,
      point: this.point,
      lsn,
      ...(shape === undefined ? {} : { shape }),
      ...(copyDue ? { copy_due: true as const } : {}),
    };
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
        f.shape = await tableShape(reader, f.table.schema, f.table.name);
        // Transactions decoded from the slot are exactly those the snapshot does not see: none is skipped.
        this.point = created.consistentPoint;
        const state = this.state(bigintToLsn(point - 1n), f.shape);
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

  /**
   * A relation message: sent before a transaction's first change of a table, and again after
   * the table changed. A tracked table under another name was renamed: its stream fails (the
   * others go on). New columns or types: the stream reads on with them, and the table is
   * copied again alone (queued after the transactions before the copy's point, so each event
   * lands once), which brings what the DDL changed without events (defaults, converted values).
   */
  private async relation(m: Relation): Promise<void> {
    const feed = this.byTable.get(tableName(m));
    const before = this.relations.get(m.relationOid);
    this.relations.set(m.relationOid, feed);
    if (!feed && before) {
      await this.dropFeed(
        before,
        this.goneError(before, `was renamed to ${m.schema}.${m.name}`, this.txn?.commitLsn ?? this.idleLsn),
      );
      return;
    }
    if (!feed) return;
    const shape = shapeOf(m.columns);
    if (shape !== feed.columnsShape) {
      if (this.txn?.touched.has(feed)) {
        throw new ConfigError(
          `${this.o.label}: ${tableName(feed.table)} changed (ALTER TABLE) inside the transaction committing at ${bigintToLsn(this.txn.commitLsn)}, after that transaction had changed its rows: the transaction's changes have two shapes and cannot land as one unit. Run \`dip state ${this.o.pipeline} --reset\` to take a new snapshot`,
        );
      }
      await this.flush(feed);
      const columns = await this.withMeta((c) => new PgIntrospector(c).describeTypes(m.columns));
      await this.setColumns(feed, chooseColumns(feed.stream.columnChoice, columns));
      feed.columnsShape = shape;
    }
    if (feed.shape !== undefined && feed.shape !== shape && !feed.copy) {
      await this.flush(feed);
      await this.copy(feed);
    }
    feed.shape = shape;
  }

  /** Takes a copy of `f`'s table (queued later by `reached`); a table found gone fails its stream. */
  private async copy(f: Feed): Promise<void> {
    const copy = await copyTable(this.o.client, this.o.label, this.slot, f, (lsn, shape) => this.state(lsn, shape));
    if (!copy) {
      await this.dropFeed(f, this.goneError(f, 'was dropped or renamed', this.txn?.commitLsn ?? this.idleLsn));
      return;
    }
    await f.copy?.unit.dispose?.();
    f.copy = copy;
  }

  /** Reading reached `lsn` (a transaction committing there begins, or the server has sent everything before it). */
  private async reached(lsn: bigint): Promise<void> {
    for (const f of [...this.feeds.values()]) {
      if (f.copy && lsn >= f.copy.at) {
        const copy = f.copy;
        await this.flush(f); // its state still says a copy is due
        f.copy = undefined;
        f.shape = copy.shape;
        await f.queue.push(copy.unit);
      }
      if (f.gone && lsn >= f.gone.lsn) await this.dropFeed(f, this.goneError(f, 'was dropped or renamed', f.gone.lsn));
    }
  }

  /** A copy waits for its point, or a gone table for the position it was found gone at. */
  private copiesDue(): boolean {
    return [...this.feeds.values()].some((f) => f.copy || f.gone);
  }

  private goneError(f: Feed, what: string, lsn: bigint): ConfigError {
    return new ConfigError(
      `${this.o.label}: table ${tableName(f.table)} of stream ${f.stream.spec.name} ${what} (found at ${bigintToLsn(lsn)}); its changes up to there are in the lake. Remove it from dip.yaml (or point the stream at the new name and run \`dip state ${this.o.pipeline} --stream ${f.stream.spec.name} --reset\`); the other streams go on`,
    );
  }

  protected override async dropFeed(f: Feed, err: Error): Promise<void> {
    await f.copy?.unit.dispose?.();
    f.copy = undefined;
    f.gone = undefined;
    await super.dropFeed(f, err);
    for (const [oid, feed] of this.relations) if (feed === f) this.relations.delete(oid);
    for (const p of this.pending) p.waiting.delete(f);
    this.settle();
  }

  /**
   * Every few seconds, the streams' tables as they are now. A table that no longer exists fails
   * its stream once reading passes the WAL position it was found gone at. A table whose columns
   * differ from those the stream has read is copied (a DDL statement with no write after it
   * sends no relation message, yet may have changed rows: an added column's default).
   */
  private async checkTables(): Promise<void> {
    this.lastTableCheck = Date.now();
    const feeds = [...this.feeds.values()].filter((f) => !f.gone);
    if (feeds.length === 0) return;
    const rows = await this.withMeta(
      async (c) =>
        (
          await c.query<{ i: number; lsn: string; shape: string | null }>(
            `SELECT x.i::int AS i, pg_current_wal_lsn()::text AS lsn,
               (SELECT json_agg(json_build_array(a.attname, a.atttypid::int, a.atttypmod) ORDER BY a.attnum)
                FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '')::text AS shape
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(s, t, i)
             LEFT JOIN LATERAL (SELECT to_regclass(quote_ident(x.s) || '.' || quote_ident(x.t))::oid AS oid) r ON true`,
            [feeds.map((f) => f.table.schema), feeds.map((f) => f.table.name)],
          )
        ).rows,
    );
    for (const row of rows) {
      const f = feeds[row.i - 1];
      if (!f) continue;
      if (row.shape === null) f.gone = { lsn: lsnToBigint(row.lsn) };
      else if (f.shape !== undefined && !f.copy && JSON.stringify(JSON.parse(row.shape)) !== f.shape)
        await this.copy(f);
    }
  }

  /** Runs `fn` on the session's connection for catalog lookups (opened on first use). */
  private async withMeta<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    this.meta ??= await connect(this.o.client, this.o.label);
    return fn(this.meta);
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
    await this.meta?.end().catch(() => undefined);
    for (const f of this.feeds.values()) await f.copy?.unit.dispose?.();
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
