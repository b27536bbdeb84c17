/**
 * What the change-data-capture sessions of the database dialects share (PostgreSQL logical
 * replication, MySQL/MariaDB binlog): one session per source reads one change feed for all of
 * its CDC streams, hands each stream its own queue of units (its snapshot, when due, then its
 * changes in batches that end at transaction boundaries), and ends them together.
 *
 * The base owns the skeleton: registering the streams (they run together), starting once all
 * have registered, the batch timer, flushing, finishing (every batch becomes a unit and every
 * stream ends after its last one), failing every stream on an error, and closing. A dialect
 * supplies the hooks: how a stream's state is read and written, how the feed is started and
 * read, how its errors are described, and what to release at the end.
 */
import { join } from 'node:path';
import { AsyncQueue } from '../../core/async-queue.js';
import { newId } from '../../core/ids.js';
import { Serial } from '../../core/serial.js';
import { durationMs } from '../../core/time.js';
import type { PlanContext, ReadUnit } from '../types.js';
import { ChangeBatcher, snapshotSelectList, type CdcUnit, type ChangeDialect } from './change-batch.js';
import type { DdlCopy } from './ddl-copy.js';
import type { ChangeFeed } from './source.js';
import type { DbColumn, DbStream, DbTable } from './types.js';
import { assertCdcStreamsTogether } from './types.js';

export interface CdcSessionOptions {
  config: { cdc: { batch_records: number; flush_interval: string; idle_timeout: string } };
  label: string;
  streams: DbStream[];
  pipeline: string;
}

/** One CDC stream of the session. */
export interface CdcFeed<S> {
  stream: DbStream;
  table: DbTable;
  ctx: PlanContext;
  state: S | undefined;
  /** Transactions committing at or before this position are already in the lake for this stream. */
  committed: bigint;
  queue: AsyncQueue<CdcUnit>;
  batch: ChangeBatcher;
}

const QUEUE_UNITS = 4;

/** `O` the dialect's options, `S` the state a stream commits with each unit, `F` its feed. */
export abstract class CdcSessionBase<
  O extends CdcSessionOptions,
  S,
  F extends CdcFeed<S> & { copy?: DdlCopy | undefined },
> implements ChangeFeed
{
  protected readonly feeds = new Map<string, F>();
  protected readonly byTable = new Map<string, F>();
  protected readonly serial = new Serial();
  protected readonly timers: NodeJS.Timeout[] = [];
  protected readonly flushMs: number;
  protected readonly idleMs: number;
  protected closed = false;
  /** Caught up (or closing): later changes are left for the next run. */
  protected finished = false;
  private registered!: () => void;
  private readonly allRegistered = new Promise<void>((resolve) => (this.registered = resolve));
  private started: Promise<void> | undefined;
  /** A graceful stop was asked for: the timer finishes the session at the next transaction boundary. */
  protected stopRequested = false;

  /** `feedName` names the one feed the streams share in errors ("replication slot"). */
  constructor(
    protected readonly o: O,
    private readonly feedName: string,
  ) {
    this.flushMs = durationMs(o.config.cdc.flush_interval, `${o.label}.cdc.flush_interval`);
    this.idleMs = durationMs(o.config.cdc.idle_timeout, `${o.label}.cdc.idle_timeout`);
  }

  /** How positions print and event values convert, for the batches. */
  protected abstract readonly changes: ChangeDialect;
  /** The stream's committed state, when it is one of this dialect's. */
  protected abstract parseState(value: unknown): S | undefined;
  /** The position a committed state is complete up to. */
  protected abstract stateLsn(state: S): bigint;
  /** The dialect's feed, from the shared fields. */
  protected abstract newFeed(feed: CdcFeed<S>): F;
  /** Once every stream has registered: checks, snapshot when due, then the feed is read. */
  protected abstract start(ctx: PlanContext): Promise<void>;
  /** The state a unit of `f` ending at `lsn` commits. */
  protected abstract stateAt(f: F, lsn: bigint): S;
  /** The error every stream fails with. */
  protected abstract describe(err: unknown): Error;
  /** The batch timer's work (flushing what is due, stopping when caught up). */
  protected abstract tick(): Promise<void>;
  /** Last work before the session counts as closed (the last confirmation to the server). */
  protected async beforeClose(): Promise<void> {}
  /** Closes the connection the feed is read from. */
  protected abstract release(): Promise<void>;
  /** Finishing: no more input wanted. */
  protected stopInput(): void {}
  /** Finishing, after the last batches became units: any further units before the streams end. */
  protected async lastUnits(): Promise<void> {}
  /** The runner committed `feed`'s unit ending at `lsn`. */
  protected unitCommitted(_feed: F, _lsn: bigint): void {}
  /** No transaction is half read (a graceful stop finishes only then, so no unit ends mid-transaction). */
  protected betweenTransactions(): boolean {
    return true;
  }

  /** A stream's units: its snapshot (when due), then its changes, committed one by one. */
  async *units(s: DbStream, ctx: PlanContext): AsyncGenerator<ReadUnit> {
    const feed = this.register(s, ctx);
    // Interrupted (Ctrl-C, SIGTERM): a stream waiting for changes stops waiting.
    const onAbort = () => feed.queue.fail(ctx.signal.reason);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    // Stopped gracefully (SIGTERM to --follow): what was read becomes units, then every stream ends.
    const onStop = () => (this.stopRequested = true);
    if (ctx.stop?.aborted) onStop();
    else ctx.stop?.addEventListener('abort', onStop, { once: true });
    try {
      await this.allRegistered;
      this.started ??= this.start(ctx);
      await this.started;
      for await (const unit of feed.queue) {
        yield unit;
        // The runner asks for the next unit only once this one is committed.
        this.unitCommitted(feed, unit.lsn);
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      ctx.stop?.removeEventListener('abort', onStop);
    }
  }

  private register(s: DbStream, ctx: PlanContext): F {
    assertCdcStreamsTogether(this.o.streams, ctx, this.o.label, this.feedName);
    const table = s.table as DbTable;
    const state = this.parseState(ctx.state);
    const feed = this.newFeed({
      stream: s,
      table,
      ctx,
      state,
      committed: state ? this.stateLsn(state) : 0n,
      queue: new AsyncQueue<CdcUnit>(QUEUE_UNITS),
      batch: this.batcher(s, ctx),
    });
    this.feeds.set(s.spec.name, feed);
    this.byTable.set(tableName(table), feed);
    if (this.feeds.size === this.o.streams.length) this.registered();
    return feed;
  }

  private batcher(s: DbStream, ctx: PlanContext): ChangeBatcher {
    return new ChangeBatcher(s, ctx.stagingDir, this.changes);
  }

  /**
   * `f`'s table has other columns from here on (a DDL statement changed it): its batch, which
   * the caller flushed, starts again with them, and so do the units after it.
   */
  protected async setColumns(f: F, columns: DbColumn[]): Promise<void> {
    await f.batch.discard();
    f.stream.columns = columns;
    f.table.columns = columns;
    f.batch = this.batcher(f.stream, f.ctx);
  }

  /**
   * `f`'s table is gone (dropped, renamed): what it has read so far becomes a unit, then its
   * stream fails with `err` and the session goes on with the others.
   */
  protected async dropFeed(f: F, err: Error): Promise<void> {
    await this.flush(f);
    this.feeds.delete(f.stream.spec.name);
    this.byTable.delete(tableName(f.table));
    await f.batch.discard();
    f.queue.fail(err);
  }

  /**
   * Copies taken after DDL whose position reading has reached `at`: each is queued after the
   * events before it (flushed first; their state still says a copy is due); `landed` updates
   * the feed from the copy before it is queued.
   */
  protected async queueCopies(at: bigint, landed: (f: F, copy: NonNullable<F['copy']>) => void): Promise<void> {
    for (const f of [...this.feeds.values()]) {
      const copy = f.copy;
      if (!copy || at < copy.at) continue;
      await this.flush(f);
      f.copy = undefined;
      landed(f, copy);
      await f.queue.push(copy.unit);
    }
  }

  /** `f` takes `copy` (a newer copy replaces one still waiting). */
  protected async setCopy(f: F, copy: F['copy']): Promise<void> {
    await f.copy?.unit.dispose?.();
    f.copy = copy;
  }

  protected async disposeCopies(): Promise<void> {
    for (const f of this.feeds.values()) await this.setCopy(f, undefined);
  }

  protected following(): boolean {
    return [...this.feeds.values()].some((f) => f.ctx.follow);
  }

  /** Every stream fails with `err` (start-up failed). */
  protected failAll(err: unknown): void {
    for (const f of this.feeds.values()) f.queue.fail(err);
  }

  /** Runs `tick` on the session's serial line, often enough for `flush_interval`. */
  protected startTimer(): void {
    this.timers.push(
      setInterval(
        () =>
          void this.serial
            .run(() =>
              this.stopRequested && !this.finished && !this.closed && this.betweenTransactions()
                ? this.finish()
                : this.tick(),
            )
            .catch((err: unknown) => this.fail(err)),
        Math.max(50, Math.min(this.flushMs / 2, 250)),
      ),
    );
  }

  /** The transaction read last committed at `lsn`: it joins the batches of the streams it touched, full ones flush. */
  protected markCommitted(touched: Iterable<F>, lsn: bigint): void {
    for (const f of touched) f.batch.committed(lsn);
  }

  protected async flushFull(touched: Iterable<F>): Promise<void> {
    for (const f of touched) if (f.batch.size >= this.o.config.cdc.batch_records) await this.flush(f);
  }

  /** Batches old enough become units. */
  protected async flushDue(): Promise<void> {
    // A unit still waiting for the engine: keep adding to the open batch rather than queueing
    // another behind it (the next unit then holds everything that arrived meanwhile).
    for (const f of this.feeds.values())
      if (f.batch.size > 0 && f.queue.size === 0 && Date.now() - f.batch.openedAt >= this.flushMs) await this.flush(f);
  }

  protected async flush(f: F): Promise<CdcUnit | undefined> {
    const unit = await f.batch.flush((lsn) => this.stateAt(f, lsn));
    if (unit) await f.queue.push(unit);
    return unit;
  }

  /** Caught up: every batch becomes a unit and every stream ends after its last one. */
  protected async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    this.stopInput();
    for (const f of this.feeds.values()) await this.flush(f);
    await this.lastUnits();
    for (const f of this.feeds.values()) f.queue.close();
  }

  protected fail(err: unknown): void {
    if (this.closed) return;
    const error = this.describe(err);
    for (const f of this.feeds.values()) f.queue.fail(error);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearInterval(t);
    this.finished = true;
    for (const f of this.feeds.values()) f.queue.close(); // releases a handler waiting to queue a unit
    await this.serial.idle();
    await this.beforeClose();
    this.closed = true;
    await this.release();
    for (const f of this.feeds.values()) await f.batch.discard();
  }
}

/** `schema.name`, how feeds are found by table. */
export const tableName = (t: { schema: string; name: string }): string => `${t.schema}.${t.name}`;

/** A staging path for the initial snapshot CSV of a feed's table, and the SELECT that writes it. */
export function snapshotRead(
  f: CdcFeed<unknown>,
  quote: (name: string) => string,
  qualified: (schema: string, name: string) => string,
  position: bigint,
  falseLiteral: string,
): { path: string; sql: string } {
  return {
    path: join(f.ctx.stagingDir, `${newId('snap')}.csv`),
    sql: `SELECT ${snapshotSelectList(f.stream, quote, position, falseLiteral)} FROM ${qualified(f.table.schema, f.table.name)}`,
  };
}
