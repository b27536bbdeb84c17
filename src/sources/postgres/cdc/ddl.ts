/**
 * The part of a PostgreSQL CDC session that follows DDL: relation messages with other columns
 * (the stream reads on with them, and its table is copied again alone), tables renamed or
 * dropped (their stream fails, the others go on), and a periodic look at the tables for DDL
 * that sent no relation message. Also the transactions waiting to be confirmed to the server.
 */
import type pg from 'pg';
import type { PostgresSourceConfig } from '../../../config/database.js';
import { ConfigError } from '../../../core/errors.js';
import { CdcSessionBase, tableName, type CdcFeed } from '../../database/cdc-session.js';
import { tableGoneError } from '../../database/ddl-copy.js';
import { chooseColumns, type DbStream } from '../../database/types.js';
import { connect } from '../connection.js';
import { PgIntrospector } from '../introspect.js';
import { bigintToLsn, lsnToBigint, type Relation } from './pgoutput.js';
import { copyTable, currentShapes, shapeOf, type TableCopy } from './shape.js';
import type { CdcState } from './state.js';

export interface CdcSessionOptions {
  config: PostgresSourceConfig;
  client: pg.ClientConfig;
  label: string;
  streams: DbStream[];
  pipeline: string;
}

export interface Feed extends CdcFeed<CdcState> {
  /** The table's shape as of the position read to (undefined: not known yet, from an older state). */
  shape?: string | undefined;
  /** The shape the stream's columns were described from. */
  columnsShape?: string | undefined;
  /** A copy of the table after it changed, queued once a transaction committing at or after its point arrives. */
  copy?: TableCopy | undefined;
  /** The table was found gone when the server's WAL was at `lsn`: the stream fails once reading passes it. */
  gone?: { lsn: bigint } | undefined;
}

export const TABLE_CHECK_MS = 2000;

/** A transaction received, waiting until every stream it touched has committed it. */
export interface Pending {
  commitLsn: bigint;
  endLsn: bigint;
  waiting: Set<Feed>;
}

/** The DDL-following part of CdcSession (cdc/session.ts), which reads the replication slot. */
export abstract class PgDdlSession extends CdcSessionBase<CdcSessionOptions, CdcState, Feed> {
  protected readonly relations = new Map<number, Feed | undefined>();
  protected readonly pending: Pending[] = [];
  protected txn: { commitLsn: bigint; xid: number; micros: bigint; touched: Set<Feed> } | undefined;
  protected ackedLsn = 0n;
  protected idleLsn = 0n;
  protected slot = '';
  protected point = '';
  protected lastTableCheck = Date.now();
  protected meta: pg.Client | undefined;

  protected state(lsn: string, shape: string | undefined, point = this.point): CdcState {
    return { slot: this.slot, point, lsn, ...(shape === undefined ? {} : { shape }) };
  }

  /**
   * A relation message: sent before a transaction's first change of a table, and again after
   * the table changed. A tracked table under another name was renamed: its stream fails (the
   * others go on). New columns or types: the stream reads on with them, and the table is
   * copied again alone (queued after the transactions before the copy's point, so each event
   * lands once), which brings what the DDL changed without events (defaults, converted values).
   */
  protected async relation(m: Relation): Promise<void> {
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
  protected async copy(f: Feed): Promise<void> {
    const copy = await copyTable(this.o.client, this.o.label, this.slot, f, (lsn, shape) => this.state(lsn, shape));
    if (copy) await this.setCopy(f, copy);
    else await this.dropFeed(f, this.goneError(f, 'was dropped or renamed', this.txn?.commitLsn ?? this.idleLsn));
  }

  /** Reading reached `lsn` (a transaction committing there begins, or the server has sent everything before it). */
  protected async reached(lsn: bigint): Promise<void> {
    await this.queueCopies(lsn, (f, copy) => {
      f.shape = copy.shape;
    });
    for (const f of [...this.feeds.values()]) {
      if (f.gone && lsn >= f.gone.lsn) await this.dropFeed(f, this.goneError(f, 'was dropped or renamed', f.gone.lsn));
    }
  }

  /** A copy waits for its point, or a gone table for the position it was found gone at. */
  protected copiesDue(): boolean {
    return [...this.feeds.values()].some((f) => f.copy || f.gone);
  }

  protected goneError(f: Feed, what: string, lsn: bigint): Error {
    return tableGoneError(this.o.label, this.o.pipeline, f, `${what} (found at ${bigintToLsn(lsn)})`);
  }

  protected override async dropFeed(f: Feed, err: Error): Promise<void> {
    await this.setCopy(f, undefined);
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
  protected async checkTables(): Promise<void> {
    this.lastTableCheck = Date.now();
    const feeds = [...this.feeds.values()].filter((f) => !f.gone);
    if (feeds.length === 0) return;
    const rows = await this.withMeta((c) =>
      currentShapes(
        c,
        feeds.map((f) => f.table),
      ),
    );
    for (const [i, row] of rows.entries()) {
      const f = feeds[i] as Feed;
      if (row.shape === null) f.gone = { lsn: lsnToBigint(row.lsn) };
      else if (f.shape !== undefined && !f.copy && row.shape !== f.shape) await this.copy(f);
    }
  }

  /** Runs `fn` on the session's connection for catalog lookups (opened on first use). */
  protected async withMeta<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    this.meta ??= await connect(this.o.client, this.o.label);
    return fn(this.meta);
  }

  /** Confirms the transactions at the head of the list that every stream has committed. */
  protected settle(): void {
    while (this.pending[0] && this.pending[0].waiting.size === 0) {
      const done = this.pending.shift() as Pending;
      if (done.endLsn > this.ackedLsn) this.ackedLsn = done.endLsn;
    }
  }
}
