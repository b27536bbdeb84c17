/**
 * The part of a MySQL/MariaDB CDC session that follows DDL: each stream's table shape (which
 * names the binlog's row images), and after a DDL statement names a stream's table, a copy of
 * the table taken again alone (queued once reading reaches its position) or, for a table that
 * is gone, its stream failed while the others go on.
 */
import type { ConnectionOptions } from 'mysql2';
import type { MysqlSourceConfig } from '../../../config/database.js';
import type { CdcUnit } from '../../database/change-batch.js';
import { CdcSessionBase, tableName, type CdcFeed } from '../../database/cdc-session.js';
import { tableGoneError } from '../../database/ddl-copy.js';
import { chooseColumns, type DbColumn, type DbStream } from '../../database/types.js';
import { connect, type MysqlConnection } from '../connection.js';
import { MysqlIntrospector } from '../introspect.js';
import { binlogRenderer } from '../types.js';
import type { RawColumnSchema } from './binlog.js';
import { type MysqlCdcState, type ShapeColumn, beginSnapshotAt, encodePosition, positionText } from './position.js';
import { rawSchemas, sameShape, shapeColumns, tableShape } from './shape.js';
import { snapshotTable } from './snapshot.js';
import type { TxnBuffer } from './txn-buffer.js';

export interface MysqlCdcSessionOptions {
  config: MysqlSourceConfig;
  connection: ConnectionOptions;
  label: string;
  streams: DbStream[];
  pipeline: string;
}

export interface Feed extends CdcFeed<MysqlCdcState> {
  /** The position of the last unit handed to the runner (or committed before this run). */
  through: bigint;
  snapshotAt: string;
  render: ((value: unknown) => string | null)[];
  /** Every column of the table as of the position read to: names the binlog's row images. */
  shape: ShapeColumn[];
  /**
   * A copy of the table taken after a DDL statement changed it (at `at`), queued once reading
   * reaches that position: the events before it land first, each once, and the copy then
   * replaces the current table with rows that also hold what the DDL changed without events.
   */
  copy?: { unit: CdcUnit; at: bigint; snapshotAt: string } | undefined;
}

/** The DDL-following part of MysqlCdcSession (cdc/session.ts), which reads the binlog. */
export abstract class MysqlDdlSession extends CdcSessionBase<MysqlCdcSessionOptions, MysqlCdcState, Feed> {
  /** Base name of the binlog files (mysql-bin). */
  protected base = '';
  /** Without --follow: the end of the binlog at start, where reading stops. */
  protected target: bigint | undefined;
  protected txn: { buffer: TxnBuffer; touched: Set<Feed> } | undefined;

  /**
   * The shape a resumed stream's table had at its position (from its state): when the table
   * changed since, the stream reads with the columns it had until the binlog's DDL statement.
   */
  protected async resumeShape(conn: MysqlConnection, f: Feed): Promise<void> {
    const now = await tableShape(conn, f.table.schema, f.table.name);
    if (f.shape.length === 0) f.shape = now;
    else if (!sameShape(f.shape, now))
      await this.setColumns(f, chooseColumns(f.stream.columnChoice, shapeColumns(f.shape, f.stream.columns)));
  }

  protected override async setColumns(f: Feed, columns: DbColumn[]): Promise<void> {
    await super.setColumns(f, columns);
    f.render = columns.map(binlogRenderer);
  }

  /**
   * A table's columns where the binlog is read: once every event before its table map event is
   * handled (a DDL statement among them has changed the feed's shape). A table whose stream
   * ended (dropped) has no columns: its row images are decoded under placeholder names, unused.
   */
  protected async shapeAt(schema: string, table: string): Promise<RawColumnSchema[]> {
    await this.serial.idle();
    return rawSchemas(this.feedOf(schema, table)?.shape ?? []);
  }

  protected feedOf(schema: string, table: string): Feed | undefined {
    const key = tableName({ schema, name: table });
    const exact = this.byTable.get(key);
    if (exact) return exact;
    const lower = key.toLowerCase();
    return [...this.byTable.entries()].find(([k]) => k.toLowerCase() === lower)?.[1];
  }

  /**
   * A DDL statement at `at` named the feed's table (or, `force`, a copy after one is still due).
   * What it read before is a unit of its own; then, in one consistent snapshot: a table that
   * is gone fails its stream (the others go on); a table whose columns changed is copied again
   * alone, and its events are read on with the new columns. The copy is queued once reading
   * reaches its position (queueCopies), so every event lands once in the change log and the
   * copy, replacing the current table, brings what the DDL changed without events (the default
   * of an added column, values converted by a type change).
   */
  protected async reshape(feed: Feed, at: bigint, force = false): Promise<void> {
    const { label, pipeline } = this.o;
    const { schema, name } = feed.table;
    await this.flush(feed);
    const conn = await connect(this.o.connection, label);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const snapshot = await beginSnapshotAt(conn, label);
          const shape = await tableShape(conn, schema, name);
          const described = shape.length ? await new MysqlIntrospector(conn).describeTable(schema, name) : undefined;
          if (!described) {
            await conn.query('COMMIT');
            const where = `was dropped or renamed (DDL at ${positionText(this.base, at)})`;
            await this.dropFeed(feed, tableGoneError(label, pipeline, feed, where));
            return;
          }
          if (!force && sameShape(shape, feed.shape)) {
            await conn.query('COMMIT'); // an index, an option: no column changed
            return;
          }
          await this.setColumns(feed, chooseColumns(feed.stream.columnChoice, described.columns));
          feed.shape = shape;
          const unit = await snapshotTable(conn, label, feed, snapshot, shape);
          await conn.query('COMMIT');
          const position = encodePosition(snapshot.file, snapshot.offset);
          await this.setCopy(feed, { unit, at: position, snapshotAt: `${snapshot.file}:${snapshot.offset}` });
          // Without --follow, the run reads on to the copy's position.
          if (this.target !== undefined && this.target < position) this.target = position;
          return;
        } catch (err) {
          // The table changed again after the snapshot began (ER_TABLE_DEF_CHANGED): take another.
          if ((err as { errno?: number }).errno !== 1412 || attempt >= 5) throw err;
          await conn.query('ROLLBACK');
        }
      }
    } finally {
      await conn.end();
    }
  }

  /** Copies taken after DDL statements whose position reading has reached: queued after the events before them. */
  protected async copiesReached(at: bigint): Promise<void> {
    if (this.txn) return;
    await this.queueCopies(at, (f, copy) => {
      f.snapshotAt = copy.snapshotAt;
      f.through = copy.at;
    });
  }
}
