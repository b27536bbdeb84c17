/**
 * `COPY … TO STDOUT` as a byte stream, for extracts: pg-copy-streams' protocol handling (it
 * takes the connection's socket while the copy runs and gives it back after), with a parser
 * that handles each network chunk in one pass. The stock parser goes through a buffer list
 * message by message, and the server sends one CopyData message per row: on a 5-million-row
 * table that bookkeeping cost more CPU than the PostgreSQL backend producing the rows.
 */
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

const COPY_DATA = 0x64; // d
const GATHER_BYTES = 1 << 20;
const ERROR_RESPONSE = 0x45; // E
/** Messages the server may send between CopyData messages; anything else ends the copy. */
const INTERSPERSED = new Set([
  0x48 /* H CopyOutResponse */, 0x53 /* S ParameterStatus */, 0x4e /* N NoticeResponse */,
  0x41 /* A NotificationResponse */,
]);

interface CopyToInternals {
  _buffer: { push(chunk: Buffer): void };
  _detach(): void;
  _cleanup(): void;
  push(chunk: Buffer | null): boolean;
}

type CopyToClass = new (
  text: string,
  options?: object,
) => Readable & CopyToInternals & { _parse(chunk: Buffer): boolean | undefined };

function baseClass(): CopyToClass {
  // copy-to.js exports a factory; its class is the prototype's constructor of what it returns.
  const factory = require('pg-copy-streams/copy-to.js') as (text: string) => object;
  return Object.getPrototypeOf(factory('SELECT 1')).constructor as CopyToClass;
}

let FastCopyTo: CopyToClass | undefined;

function fastClass(): CopyToClass {
  if (FastCopyTo) return FastCopyTo;
  const CopyTo = baseClass();
  class Fast extends CopyTo {
    /** Bytes of an unfinished message header, or the rest of a message that is not CopyData. */
    private pending: Buffer | undefined;
    /** Payload bytes of the CopyData message in progress still to come. */
    private remaining = 0;
    /** Output gathered across network chunks: fewer, larger writes downstream. */
    private gathered: Buffer[] = [];
    private gatheredBytes = 0;

    private emit1(data: Buffer | undefined, flush: boolean): boolean {
      if (data && data.length) {
        this.gathered.push(data);
        this.gatheredBytes += data.length;
      }
      if (this.gatheredBytes === 0 || (!flush && this.gatheredBytes < GATHER_BYTES)) return true;
      const out =
        this.gathered.length === 1 ? (this.gathered[0] as Buffer) : Buffer.concat(this.gathered, this.gatheredBytes);
      this.gathered = [];
      this.gatheredBytes = 0;
      return this.push(out);
    }

    override _parse(chunk: Buffer): boolean | undefined {
      const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
      this.pending = undefined;
      const out = Buffer.allocUnsafe(buf.length);
      let o = 0;
      let i = 0;
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, buf.length);
        buf.copy(out, 0, 0, n);
        o = n;
        i = n;
        this.remaining -= n;
      }
      let done = false;
      while (i < buf.length) {
        if (buf.length - i < 5) break;
        const code = buf[i] as number;
        if (code === ERROR_RESPONSE) {
          // Let pg parse the error (and what follows) and fail the query.
          this.emit1(out.subarray(0, o), true);
          this._buffer.push(buf.subarray(i));
          this._detach();
          return undefined;
        }
        const length = buf.readUInt32BE(i + 1);
        const end = i + 1 + length;
        if (code === COPY_DATA) {
          const available = Math.min(end, buf.length);
          buf.copy(out, o, i + 5, available);
          o += available - (i + 5);
          if (end > buf.length) this.remaining = end - buf.length;
          i = available;
          continue;
        }
        if (end > buf.length) break; // a whole non-data message is needed to act on it
        i = end;
        if (!INTERSPERSED.has(code)) {
          done = true; // CopyDone (or anything that ends copy-out mode)
          break;
        }
      }
      const drained = this.emit1(out.subarray(0, o), done);
      if (done) {
        this._buffer.push(buf.subarray(i)); // CommandComplete, ReadyForQuery: pg's to read
        this._detach();
        this.push(null);
        this._cleanup();
        return drained;
      }
      if (i < buf.length) this.pending = Buffer.from(buf.subarray(i));
      return drained;
    }
  }
  FastCopyTo = Fast as unknown as CopyToClass;
  return FastCopyTo;
}

/** A query for `client.query()` whose result is a readable stream of the COPY output. */
export function copyOut(sql: string): Readable {
  const Fast = fastClass();
  return new Fast(sql);
}
