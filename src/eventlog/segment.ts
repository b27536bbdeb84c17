/**
 * The embedded log's on-disk format. A segment `<base offset, 20 digits>.seg` is a sequence of
 * frames: `u32 body length | u32 CRC-32 of the body | body`, the body being
 * `f64 offset | f64 timestamp | u16 id length | u32 headers length | id | headers JSON | data`
 * (little endian). Its sparse index `<base>.idx` holds `u32 offset - base | u32 file position`
 * pairs, one every INDEX_INTERVAL bytes of frames. A frame that fails its CRC, runs past the
 * file's end or breaks the offset sequence ends the valid part of a segment (a torn tail).
 */
import { crc32 } from 'node:zlib';
import type { LogEvent } from './types.js';

export const FRAME_HEADER = 8;
const BODY_FIXED = 8 + 8 + 2 + 4;
export const INDEX_INTERVAL = 4096;
export const INDEX_ENTRY = 8;
/** A frame longer than this is corruption, not an event (the gateway's body limit is far below). */
export const MAX_FRAME = 256 * 1024 * 1024;

export const segmentName = (base: number): string => `${String(base).padStart(20, '0')}.seg`;
export const indexName = (base: number): string => `${String(base).padStart(20, '0')}.idx`;
export const SEGMENT_FILE = /^(\d{20})\.seg$/;

export function encodeFrame(
  offset: number,
  timestamp: number,
  id: string | undefined,
  headers: Readonly<Record<string, string>> | undefined,
  data: Uint8Array,
): Buffer {
  const idBytes = id === undefined ? undefined : Buffer.from(id, 'utf8');
  const hdrBytes = headers && Object.keys(headers).length ? Buffer.from(JSON.stringify(headers), 'utf8') : undefined;
  const idLen = idBytes?.length ?? 0;
  const hdrLen = hdrBytes?.length ?? 0;
  if (idLen > 0xffff) throw new RangeError(`event id is ${idLen} bytes; at most 65535`);
  const bodyLen = BODY_FIXED + idLen + hdrLen + data.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER + bodyLen);
  buf.writeUInt32LE(bodyLen, 0);
  let p = FRAME_HEADER;
  buf.writeDoubleLE(offset, p);
  buf.writeDoubleLE(timestamp, p + 8);
  // 0xffff would not fit an absent id apart from an empty one: an empty id is stored as absent.
  buf.writeUInt16LE(idLen, p + 16);
  buf.writeUInt32LE(hdrLen, p + 18);
  p += BODY_FIXED;
  if (idBytes) p += idBytes.copy(buf, p);
  if (hdrBytes) p += hdrBytes.copy(buf, p);
  buf.set(data, p);
  buf.writeUInt32LE(crc32(buf.subarray(FRAME_HEADER)), 4);
  return buf;
}

export type FrameResult =
  | { kind: 'event'; event: LogEvent; length: number }
  /** Not enough bytes in the buffer for the whole frame (read more, or: a torn tail). */
  | { kind: 'short'; need: number }
  | { kind: 'corrupt'; reason: string };

/** Decodes the frame at `pos` of `buf`; `expected` is the offset it must carry. */
export function decodeFrame(buf: Buffer, pos: number, expected: number | undefined): FrameResult {
  if (buf.length - pos < FRAME_HEADER) return { kind: 'short', need: FRAME_HEADER };
  const bodyLen = buf.readUInt32LE(pos);
  if (bodyLen < BODY_FIXED || bodyLen > MAX_FRAME) return { kind: 'corrupt', reason: `frame length ${bodyLen}` };
  if (buf.length - pos < FRAME_HEADER + bodyLen) return { kind: 'short', need: FRAME_HEADER + bodyLen };
  const body = buf.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + bodyLen);
  if (crc32(body) !== buf.readUInt32LE(pos + 4)) return { kind: 'corrupt', reason: 'checksum mismatch' };
  const offset = body.readDoubleLE(0);
  if (expected !== undefined && offset !== expected)
    return { kind: 'corrupt', reason: `offset ${offset} where ${expected} was expected` };
  const timestamp = body.readDoubleLE(8);
  const idLen = body.readUInt16LE(16);
  const hdrLen = body.readUInt32LE(18);
  if (BODY_FIXED + idLen + hdrLen > bodyLen) return { kind: 'corrupt', reason: 'field lengths past the frame' };
  let p = BODY_FIXED;
  const id = idLen ? body.toString('utf8', p, p + idLen) : undefined;
  p += idLen;
  const headers = hdrLen ? (JSON.parse(body.toString('utf8', p, p + hdrLen)) as Record<string, string>) : undefined;
  p += hdrLen;
  return {
    kind: 'event',
    event: { offset, timestamp, id, headers, data: body.subarray(p) },
    length: FRAME_HEADER + bodyLen,
  };
}

/** The file position of the last index entry at or before `offset` (0 when none). */
export function indexLookup(index: Buffer, base: number, offset: number): { offset: number; position: number } {
  let lo = 0;
  let hi = Math.floor(index.length / INDEX_ENTRY) - 1;
  let best = { offset: base, position: 0 };
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const rel = index.readUInt32LE(mid * INDEX_ENTRY);
    if (base + rel <= offset) {
      best = { offset: base + rel, position: index.readUInt32LE(mid * INDEX_ENTRY + 4) };
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

export function indexEntry(base: number, offset: number, position: number): Buffer {
  const b = Buffer.allocUnsafe(INDEX_ENTRY);
  b.writeUInt32LE(offset - base, 0);
  b.writeUInt32LE(position, 4);
  return b;
}
