/** Over 400 lines: the untyped library is typed, its table-map lookup and lossy value decoding replaced, in one place. */
/**
 * The binlog connection, through `@powersync/mysql-zongji` (a MySQL 8 / MariaDB capable fork
 * of ZongJi): it registers as a replica (COM_BINLOG_DUMP from a file and position, with a
 * server id), decodes row events with the column names it reads from information_schema, and
 * emits them here as plain typed events.
 *
 * The library's value decoding is replaced for the types it gets wrong for us (see
 * decode.ts): the replacement reads the same bytes and returns the server's text, so a value
 * reads identically from the snapshot and from the binlog. The library is CommonJS without
 * types; everything it is used for is typed below.
 */
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { ConnectionOptions } from 'mysql2';
import type { Serial } from '../../../core/serial.js';
import { baseType } from '../types.js';
import {
  datetime2Text,
  decimalSize,
  decimalText,
  enumText,
  fractionMicros,
  fractionSize,
  geometryText,
  inet4Text,
  inet6Text,
  mysqlJsonText,
  setText,
  time2Size,
  time2Text,
  timestampText,
  typeMembers,
  uuidText,
} from './decode.js';

const require = createRequire(import.meta.url);

/** The library's binary parser (mysqljs): a buffer and a read offset. */
interface RawParser {
  _buffer: Buffer;
  _offset: number;
  parseUnsignedNumber(bytes: number): number;
}

interface RawColumn {
  name: string;
  type: number;
  metadata?:
    | { decimals?: number; precision?: number; size?: number; length_size?: number; max_length?: number }
    | undefined;
}

/** A column as the library reads it from information_schema.COLUMNS (names, and types for decoding). */
export interface RawColumnSchema {
  COLUMN_NAME: string;
  COLLATION_NAME: string | null;
  CHARACTER_SET_NAME: string | null;
  COLUMN_COMMENT: string;
  COLUMN_TYPE: string;
}

type ReadValue = (
  parser: RawParser,
  column: RawColumn,
  schema: RawColumnSchema,
  tableMap: unknown,
  zongji: unknown,
) => unknown;

interface RawTableMapEvent {
  tableId: number;
  schemaName: string;
  tableName: string;
  columnCount: number;
}

interface RawZongJi extends EventEmitter {
  start(options: Record<string, unknown>): void;
  stop(): void;
  connection: { pause(): void; resume(): void };
  tableMap: Record<number, { columnSchemas: unknown[]; parentSchema: string; tableName: string } | undefined>;
  _fetchTableInfo(event: RawTableMapEvent, next: () => void): void;
}

interface RawEvent {
  getEventName(): string;
  nextPosition: number;
  timestamp: number;
  binlogName?: string;
  position?: number;
  query?: string;
  schema?: string;
  xid?: number | string;
  tableId?: number;
  tableMap?: RawZongJi['tableMap'];
  rows?: unknown[];
  numberOfColumns?: number;
  columns_present_bitmap?: Buffer;
  columns_present_bitmap2?: Buffer;
}

/** Whether a row event's column bitmap has every column (a FULL row image). */
function allColumns(bitmap: Buffer | undefined, columns: number): boolean {
  if (!bitmap) return true;
  for (let i = 0; i < columns; i++) if ((((bitmap[i >> 3] ?? 0) >> (i & 7)) & 1) === 0) return false;
  return true;
}

type ZongJiConstructor = new (config: Record<string, unknown>) => RawZongJi;

// Protocol column types (include/mysql_com.h: enum_field_types).
const T = {
  TIMESTAMP: 7,
  YEAR: 13,
  VARCHAR: 15,
  TIMESTAMP2: 17,
  DATETIME2: 18,
  TIME2: 19,
  JSON: 245,
  NEWDECIMAL: 246,
  ENUM: 247,
  SET: 248,
  STRING: 254,
  GEOMETRY: 255,
} as const;

function take(parser: RawParser, bytes: number): Buffer {
  const b = parser._buffer.subarray(parser._offset, parser._offset + bytes);
  parser._offset += bytes;
  return b;
}

const membersCache = new Map<string, string[]>();
function members(columnType: string): string[] {
  let m = membersCache.get(columnType);
  if (!m) membersCache.set(columnType, (m = typeMembers(columnType)));
  return m;
}

/** Reads the values the library decodes lossily itself; hands every other type back to it. */
function exactReader(original: ReadValue): ReadValue {
  return (parser, column, schema, tableMap, zongji) => {
    const meta = column.metadata ?? {};
    const decimals = meta.decimals ?? 0;
    switch (column.type) {
      case T.NEWDECIMAL: {
        const precision = meta.precision ?? 10;
        return decimalText(take(parser, decimalSize(precision, decimals)), precision, decimals);
      }
      case T.TIMESTAMP:
        return timestampText(parser.parseUnsignedNumber(4), 0, 0);
      case T.TIMESTAMP2: {
        const seconds = take(parser, 4).readUInt32BE(0);
        return timestampText(seconds, fractionMicros(take(parser, fractionSize(decimals)), decimals), decimals);
      }
      case T.DATETIME2:
        return datetime2Text(take(parser, 5 + fractionSize(decimals)), decimals);
      case T.TIME2:
        return time2Text(take(parser, time2Size(decimals)), decimals);
      case T.YEAR: {
        const year = parser.parseUnsignedNumber(1);
        return year === 0 ? '0000' : String(1900 + year);
      }
      case T.ENUM:
        return enumText(parser.parseUnsignedNumber(meta.size ?? 1), members(schema.COLUMN_TYPE));
      case T.SET:
        return setText(take(parser, meta.size ?? 1), members(schema.COLUMN_TYPE));
      case T.GEOMETRY:
        return geometryText(take(parser, parser.parseUnsignedNumber(meta.length_size ?? 4)));
      case T.STRING:
      case T.VARCHAR: {
        // MariaDB's UUID, INET4 and INET6 are fixed binary strings in the row image.
        const kind = baseType(schema.COLUMN_TYPE);
        if (kind !== 'uuid' && kind !== 'inet4' && kind !== 'inet6') break;
        const bytes = take(parser, parser.parseUnsignedNumber((meta.max_length ?? 0) > 255 ? 2 : 1));
        return kind === 'uuid' ? uuidText(bytes) : kind === 'inet4' ? inet4Text(bytes) : inet6Text(bytes);
      }
      case T.JSON: {
        // MySQL's binary JSON: the library gives compact JSON text; the server prints it spaced.
        const text = original(parser, column, schema, tableMap, zongji);
        return typeof text === 'string' ? mysqlJsonText(JSON.parse(text)) : text;
      }
    }
    return original(parser, column, schema, tableMap, zongji);
  };
}

let zongji: ZongJiConstructor | undefined;

/** The library, loaded on first use (only CDC needs it), with its value reader replaced. */
function library(): ZongJiConstructor {
  if (zongji) return zongji;
  const common = require('@powersync/mysql-zongji/lib/common.js') as {
    readMysqlValue: ReadValue & { dipExact?: true };
  };
  if (!common.readMysqlValue.dipExact) {
    const reader = exactReader(common.readMysqlValue) as ReadValue & { dipExact?: true };
    reader.dipExact = true;
    common.readMysqlValue = reader;
  }
  zongji = require('@powersync/mysql-zongji') as ZongJiConstructor;
  return zongji;
}

/** Connection settings for the library's mysqljs driver, from the source's mysql2 options. */
export function binlogConnection(o: ConnectionOptions): Record<string, unknown> {
  const c: Record<string, unknown> = {
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: 'UTF8MB4_UNICODE_CI',
  };
  if (o.connectTimeout !== undefined) c['connectTimeout'] = o.connectTimeout;
  if (o.uri) {
    const u = new URL(o.uri);
    if (u.hostname) c['host'] = u.hostname.replace(/^\[(.*)\]$/, '$1');
    if (u.port) c['port'] = Number(u.port);
    if (u.username) c['user'] = decodeURIComponent(u.username);
    if (u.password) c['password'] = decodeURIComponent(u.password);
  }
  if (o.host) c['host'] = o.host;
  if (o.port) c['port'] = o.port;
  if (o.user) c['user'] = o.user;
  if (o.password !== undefined) c['password'] = o.password;
  if (o.ssl && typeof o.ssl === 'object') {
    const { verifyIdentity: _ignored, ...tls } = o.ssl as Record<string, unknown>;
    c['ssl'] = tls;
  }
  return c;
}

/** A row image: column name → the value as decoded (text, number, Buffer, null). */
export type RowImage = Record<string, unknown>;

interface EventBase {
  /** Where the event ends in its binlog file (0 for events the server makes up). */
  next: number;
  /** The event's time, milliseconds since the epoch (second precision). */
  timestamp: number;
}

interface RowsWhere {
  schema: string;
  table: string;
  /** Every column is in the row images (binlog_row_image = FULL). */
  full: boolean;
  /** The row images have another number of columns than the table's shape they were named by. */
  shapeChanged?: { binlogColumns: number; tableColumns: number } | undefined;
}

export type BinlogEvent =
  | (EventBase & { kind: 'rotate'; file: string; position: number })
  | (EventBase & RowsWhere & { kind: 'insert' | 'delete'; rows: RowImage[] })
  | (EventBase & RowsWhere & { kind: 'update'; rows: { before: RowImage; after: RowImage }[] })
  | (EventBase & { kind: 'xid'; xid: number })
  | (EventBase & { kind: 'query'; schema: string; query: string })
  | (EventBase & { kind: 'other'; name: string });

function toEvent(
  raw: RawEvent,
  mismatched: ReadonlyMap<number, { binlogColumns: number; tableColumns: number }>,
): BinlogEvent {
  const base: EventBase = { next: raw.nextPosition, timestamp: raw.timestamp };
  const name = raw.getEventName();
  switch (name) {
    case 'rotate':
      return { ...base, kind: 'rotate', file: raw.binlogName ?? '', position: raw.position ?? 4 };
    case 'xid':
      return { ...base, kind: 'xid', xid: Number(raw.xid ?? 0) };
    case 'query':
      return { ...base, kind: 'query', schema: raw.schema ?? '', query: raw.query ?? '' };
    case 'writerows':
    case 'deleterows':
    case 'updaterows': {
      const table = raw.tableMap?.[raw.tableId ?? -1];
      const columns = raw.numberOfColumns ?? 0;
      // Columns left out of a row image (binlog_row_image MINIMAL or NOBLOB in some session) read as NULL: say so.
      const full = allColumns(raw.columns_present_bitmap, columns) && allColumns(raw.columns_present_bitmap2, columns);
      const where: RowsWhere = {
        schema: table?.parentSchema ?? '',
        table: table?.tableName ?? '',
        full,
        shapeChanged: mismatched.get(raw.tableId ?? -1),
      };
      if (name === 'updaterows')
        return { ...base, ...where, kind: 'update', rows: (raw.rows ?? []) as { before: RowImage; after: RowImage }[] };
      return {
        ...base,
        ...where,
        kind: name === 'writerows' ? 'insert' : 'delete',
        rows: (raw.rows ?? []) as RowImage[],
      };
    }
    default:
      return { ...base, kind: 'other', name };
  }
}

export interface BinlogStart {
  serverId: number;
  file: string;
  position: number;
  /** Schema → tables whose row events are decoded; the others are skipped unread. */
  tables: Record<string, string[]>;
  /**
   * A table's columns as of the binlog position being read (names by ordinal position), asked
   * for at each table map event; undefined: from information_schema as it is now.
   */
  shape?: (schema: string, table: string) => Promise<RawColumnSchema[] | undefined>;
}

/** One binlog dump connection (plus the library's control connection for column names). */
export class BinlogReader {
  private readonly zongji: RawZongJi;
  private stopped: Promise<void> | undefined;
  /** Table map lookups under way: the library pauses the connection meanwhile and resumes it after. */
  private fetching = 0;
  /** Table ids whose row images do not fit the shape they were named by. */
  private readonly mismatched = new Map<number, { binlogColumns: number; tableColumns: number }>();

  constructor(connection: Record<string, unknown>) {
    const ZongJi = library();
    this.zongji = new ZongJi(connection);
  }

  start(at: BinlogStart, onEvent: (event: BinlogEvent) => void, onError: (err: unknown) => void): void {
    const z = this.zongji;
    z.on('error', (err: unknown) => {
      if (!this.stopped) onError(err);
    });
    z.on('binlog', (raw: RawEvent) => {
      if (!this.stopped) onEvent(toEvent(raw, this.mismatched));
    });
    const fetch = z._fetchTableInfo.bind(z);
    z._fetchTableInfo = (event, next) => {
      this.fetching++;
      const done = () => {
        this.fetching--;
        next();
      };
      const fail = (err: unknown) => {
        this.fetching--;
        z.emit('error', err);
      };
      if (!at.shape) {
        // Column names from information_schema as it is now: when the binlog's row images have
        // another number of columns, the table changed since they were written and names would
        // be matched to the wrong values.
        fetch(event, () => {
          const known = z.tableMap[event.tableId]?.columnSchemas.length ?? 0;
          if (known !== event.columnCount)
            fail(new TableChangedError(event.schemaName, event.tableName, event.columnCount, known));
          else done();
        });
        return;
      }
      at.shape(event.schemaName, event.tableName).then((columns) => {
        if (!columns) return fetch(event, done);
        // Names by ordinal position from the shape the table has at this point of the binlog.
        // Row images of another width are decoded under placeholder names and flagged: the
        // session skips them when it has them already, and stops on them otherwise.
        const schemas = Array.from({ length: event.columnCount }, (_, i) => {
          const c = columns.length === event.columnCount ? columns[i] : undefined;
          return (
            c ?? {
              COLUMN_NAME: `\u0000${i}`,
              COLLATION_NAME: null,
              CHARACTER_SET_NAME: null,
              COLUMN_COMMENT: '',
              COLUMN_TYPE: '',
            }
          );
        });
        if (columns.length === event.columnCount) this.mismatched.delete(event.tableId);
        else this.mismatched.set(event.tableId, { binlogColumns: event.columnCount, tableColumns: columns.length });
        z.tableMap[event.tableId] = {
          columnSchemas: schemas,
          parentSchema: event.schemaName,
          tableName: event.tableName,
        };
        done();
      }, fail);
    };
    z.start({ serverId: at.serverId, filename: at.file, position: at.position, includeSchema: at.tables });
  }

  pause(): void {
    this.zongji.connection.pause();
  }

  resume(): void {
    if (this.fetching > 0) return;
    this.zongji.connection.resume();
  }

  /** Closes both connections (the dump thread is killed on the server). */
  stop(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.zongji.once('stopped', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        this.zongji.stop();
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
    return this.stopped;
  }
}

/** Events decoded but not handled yet beyond which the binlog connection is paused (backpressure). */
const PAUSE_EVENTS = 2000;
const RESUME_EVENTS = 200;

/**
 * The reader's event callback: events are handled one at a time on `serial`, in binlog order;
 * too many waiting pauses the connection until the backlog drains (unless reading is finished).
 */
export function inOrder(
  reader: { pause(): void; resume(): void },
  serial: Serial,
  handle: (event: BinlogEvent) => Promise<void>,
  onError: (err: unknown) => void,
  finished: () => boolean,
): (event: BinlogEvent) => void {
  let backlog = 0;
  let paused = false;
  return (event) => {
    backlog++;
    if (backlog > PAUSE_EVENTS && !paused) {
      paused = true;
      reader.pause();
    }
    void serial
      .run(() => handle(event))
      .catch(onError)
      .finally(() => {
        backlog--;
        if (paused && backlog < RESUME_EVENTS) {
          paused = false;
          if (!finished()) reader.resume();
        }
      });
  };
}

export class TableChangedError extends Error {
  constructor(
    readonly schema: string,
    readonly table: string,
    readonly binlogColumns: number,
    readonly tableColumns: number,
  ) {
    super(
      `row images of ${schema}.${table} in the binlog have ${binlogColumns} columns, the table has ${tableColumns} now`,
    );
  }
}
