/**
 * Over 400 lines: the writer (group commit, roll, recovery, retention) and the reader share the segment state.
 *
 * The embedded event log: a directory of segment files (format in segment.ts). One process
 * writes (`mode: 'writer'`, the gateway; a lock file names it); any number read (`mode:
 * 'reader'`, the lander), possibly in other processes.
 *
 * - Group commit: appends queue their frames; one flush at a time writes every queued frame
 *   with one `writev`, `fdatasync`s the segment, then publishes the new durable end in the
 *   `durable` file and resolves every append of the batch. Appends arriving during a flush
 *   share the next one.
 * - Readers never read past the `durable` mark, so they see only fsynced events (an event
 *   written but not yet synced cannot land and then vanish with a power cut).
 * - Recovery on open (writer): every segment is scanned; the last one is cut at its first
 *   torn or corrupt frame (a crash mid-write), a corrupt frame elsewhere is an error. The ids
 *   of the retained events are the dedup window.
 * - Retention: closed segments past `maxBytes` (oldest first) or `maxAgeMs` are deleted, but
 *   only once every consumer (a file under `consumers/`, written by `ack`) has passed them.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, DipError } from '../core/errors.js';
import { processAlive } from '../core/process.js';
import {
  decodeFrame,
  encodeFrame,
  INDEX_INTERVAL,
  indexEntry,
  indexLookup,
  indexName,
  SEGMENT_FILE,
  segmentName,
} from './segment.js';
import type { AppendEvent, AppendResult, EventLog, LogBounds, LogEvent, ReadLimits, RetentionLimits } from './types.js';

export interface EmbeddedLogOptions {
  dir: string;
  mode: 'writer' | 'reader';
  /** A segment is closed and a new one started past this size (default 64 MiB, at most 1 GiB). */
  segmentBytes?: number;
  retention?: RetentionLimits;
  /** How often a reader looks for new durable events while waiting (default 20 ms). */
  pollMs?: number;
}

interface Segment {
  base: number;
  /** Bytes of valid frames (writer: the write position of the active segment). */
  size: number;
  /** Timestamp of its newest event (0 when empty). */
  newest: number;
}

interface Pending {
  frames: Buffer[];
  offsets: number[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
}

const CONSUMER = /^[A-Za-z0-9_.-]{1,100}$/;
const DURABLE_FILE = 'durable';
const LOCK_FILE = 'writer.lock';
const ACK_CACHE_MS = 200;

export class EmbeddedEventLog implements EventLog {
  private segments: Segment[] = [];
  private readonly ids = new Map<string, number>();
  private next = 0;
  private durableEnd = 0;
  private active: { handle: FileHandle; index: FileHandle; lastIndexed: number } | undefined;
  private durableHandle: FileHandle | undefined;
  private pending: Pending = { frames: [], offsets: [], waiters: [] };
  private flushing = false;
  private failed: unknown;
  private closed = false;
  private readonly durableWaiters = new Set<() => void>();
  private ackCache: { at: number; min: number | undefined } | undefined;
  private readonly segmentBytes: number;
  private readonly pollMs: number;
  private readCursor: { offset: number; base: number; position: number } | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly o: EmbeddedLogOptions) {
    this.segmentBytes = Math.min(o.segmentBytes ?? 64 * 1024 * 1024, 1024 * 1024 * 1024);
    this.pollMs = o.pollMs ?? 20;
  }

  static async open(o: EmbeddedLogOptions): Promise<EmbeddedEventLog> {
    const log = new EmbeddedEventLog(o);
    if (o.mode === 'writer') await log.openWriter();
    else await mkdir(join(o.dir, 'consumers'), { recursive: true, mode: 0o700 });
    return log;
  }

  // ---- writer -------------------------------------------------------------------------------

  private async openWriter(): Promise<void> {
    await mkdir(join(this.o.dir, 'consumers'), { recursive: true, mode: 0o700 });
    await this.lock();
    const bases = await this.listBases();
    for (const [i, base] of bases.entries()) {
      const last = i === bases.length - 1;
      const seg = await this.recoverSegment(base, last);
      this.segments.push(seg);
    }
    if (!this.segments.length) this.segments.push({ base: 0, size: 0, newest: 0 });
    const tail = this.segments[this.segments.length - 1] as Segment;
    this.next = this.nextAfterScan ?? tail.base;
    this.durableEnd = this.next;
    const handle = await open(join(this.o.dir, segmentName(tail.base)), 'a+', 0o600);
    await handle.datasync();
    const index = await open(join(this.o.dir, indexName(tail.base)), 'a+', 0o600);
    this.active = { handle, index, lastIndexed: this.lastIndexedAfterScan };
    await this.syncDir();
    this.durableHandle = await open(
      join(this.o.dir, DURABLE_FILE),
      existsSync(join(this.o.dir, DURABLE_FILE)) ? 'r+' : 'w+',
      0o600,
    );
    await this.publishDurable();
    this.retentionTimer = setInterval(() => void this.enforceRetention().catch(() => undefined), 30_000);
    this.retentionTimer.unref();
  }

  private nextAfterScan: number | undefined;
  private lastIndexedAfterScan = -INDEX_INTERVAL;

  /** Scans a segment: ids, newest timestamp, valid size; cuts a torn tail of the last one and rebuilds its index. */
  private async recoverSegment(base: number, last: boolean): Promise<Segment> {
    const path = join(this.o.dir, segmentName(base));
    const buf = await readFile(path);
    let pos = 0;
    let expected = base;
    let newest = 0;
    const index: Buffer[] = [];
    let lastIndexed = -INDEX_INTERVAL;
    while (pos < buf.length) {
      const f = decodeFrame(buf, pos, expected);
      if (f.kind !== 'event') {
        if (!last)
          throw new DipError(
            'internal',
            `event log ${this.o.dir}: segment ${segmentName(base)} is corrupt at byte ${pos} (${f.kind === 'corrupt' ? f.reason : 'truncated frame'}); only the newest segment may have a torn tail`,
          );
        break;
      }
      if (pos - lastIndexed >= INDEX_INTERVAL) {
        index.push(indexEntry(base, expected, pos));
        lastIndexed = pos;
      }
      if (f.event.id !== undefined) this.ids.set(f.event.id, f.event.offset);
      newest = f.event.timestamp;
      pos += f.length;
      expected += 1;
    }
    if (last) {
      if (pos < buf.length) {
        const h = await open(path, 'r+');
        try {
          await h.truncate(pos);
          await h.sync();
        } finally {
          await h.close();
        }
      }
      await writeFile(join(this.o.dir, indexName(base)), Buffer.concat(index), { mode: 0o600 });
      this.nextAfterScan = expected;
      this.lastIndexedAfterScan = lastIndexed;
    }
    return { base, size: pos, newest };
  }

  private async lock(): Promise<void> {
    const file = join(this.o.dir, LOCK_FILE);
    const me = `${hostname()} ${process.pid}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeFile(file, me, { flag: 'wx', mode: 0o600 });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const [host = '', pidText = ''] = (await readFile(file, 'utf8').catch(() => '')).split(' ');
        const pid = Number(pidText);
        if (host === hostname() && pid === process.pid) return;
        if (host === hostname() && Number.isInteger(pid) && processAlive(host, pid) !== false)
          throw new ConfigError(
            `event log ${this.o.dir} is being written by process ${pid}; one gateway writes an embedded log at a time`,
          );
        if (host !== hostname() && host)
          throw new ConfigError(
            `event log ${this.o.dir} is locked by host ${host} (process ${pidText}); remove ${file} if it is gone`,
          );
        await rm(file, { force: true });
      }
    }
  }

  private async listBases(): Promise<number[]> {
    const names = await readdir(this.o.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    return names
      .map((n) => SEGMENT_FILE.exec(n)?.[1])
      .filter((b): b is string => b !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  async append(events: readonly AppendEvent[]): Promise<AppendResult[]> {
    if (this.o.mode !== 'writer') throw new DipError('internal', 'append on an event log opened for reading');
    if (this.closed) throw new DipError('interrupted', `event log ${this.o.dir} is closed`);
    if (this.failed) throw new DipError('internal', `event log ${this.o.dir} failed to write`, { cause: this.failed });
    const now = Date.now();
    const results: AppendResult[] = [];
    let waitNeeded = false;
    for (const e of events) {
      const id = e.id === '' ? undefined : e.id;
      const seen = id === undefined ? undefined : this.ids.get(id);
      if (seen !== undefined) {
        results.push({ offset: seen, duplicate: true });
        if (seen >= this.durableEnd) waitNeeded = true;
        continue;
      }
      const offset = this.next++;
      if (id !== undefined) this.ids.set(id, offset);
      this.pending.frames.push(encodeFrame(offset, now, id, e.headers, e.data));
      this.pending.offsets.push(offset);
      results.push({ offset, duplicate: false });
      waitNeeded = true;
    }
    if (waitNeeded) await this.schedule();
    return results;
  }

  private schedule(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.waiters.length) {
        const batch = this.pending;
        this.pending = { frames: [], offsets: [], waiters: [] };
        try {
          if (this.failed) throw this.failed;
          if (batch.frames.length) await this.writeBatch(batch);
          for (const w of batch.waiters) w.resolve();
        } catch (err) {
          // A failed write or fsync leaves the file in an unknown state: this log takes no more
          // appends (the process restarts and recovery decides what is in the log).
          this.failed ??= err;
          for (const w of batch.waiters) w.reject(err);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async writeBatch(batch: Pending): Promise<void> {
    let tail = this.segments[this.segments.length - 1] as Segment;
    if (tail.size >= this.segmentBytes) tail = await this.roll(batch.offsets[0] as number);
    const active = this.active as NonNullable<typeof this.active>;
    const entries: Buffer[] = [];
    let pos = tail.size;
    for (const [i, frame] of batch.frames.entries()) {
      if (pos - active.lastIndexed >= INDEX_INTERVAL) {
        entries.push(indexEntry(tail.base, batch.offsets[i] as number, pos));
        active.lastIndexed = pos;
      }
      pos += frame.length;
    }
    await active.handle.writev(batch.frames, tail.size);
    if (entries.length) await active.index.write(Buffer.concat(entries));
    await active.handle.datasync();
    tail.size = pos;
    tail.newest = Date.now();
    this.durableEnd = (batch.offsets[batch.offsets.length - 1] as number) + 1;
    await this.publishDurable();
    for (const w of this.durableWaiters) w();
  }

  private async publishDurable(): Promise<void> {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(this.durableEnd, 0);
    await this.durableHandle?.write(b, 0, 8, 0);
  }

  private async roll(base: number): Promise<Segment> {
    const old = this.active;
    if (old) {
      await old.index.sync();
      await Promise.all([old.handle.close(), old.index.close()]);
    }
    const handle = await open(join(this.o.dir, segmentName(base)), 'a+', 0o600);
    const index = await open(join(this.o.dir, indexName(base)), 'a+', 0o600);
    await this.syncDir();
    this.active = { handle, index, lastIndexed: -INDEX_INTERVAL };
    const seg: Segment = { base, size: 0, newest: 0 };
    this.segments.push(seg);
    void this.enforceRetention().catch(() => undefined);
    return seg;
  }

  private async syncDir(): Promise<void> {
    const d = await open(this.o.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async enforceRetention(): Promise<void> {
    if (this.o.mode !== 'writer' || this.closed) return;
    const { maxBytes, maxAgeMs } = this.o.retention ?? {};
    if (maxBytes === undefined && maxAgeMs === undefined) return;
    const acks = await this.consumerAcks();
    const minAck = acks.length ? Math.min(...acks) : undefined;
    let total = this.segments.reduce((s, seg) => s + seg.size, 0);
    const now = Date.now();
    while (this.segments.length > 1) {
      const oldest = this.segments[0] as Segment;
      const following = this.segments[1] as Segment;
      const tooBig = maxBytes !== undefined && total > maxBytes;
      const tooOld = maxAgeMs !== undefined && oldest.newest > 0 && now - oldest.newest > maxAgeMs;
      if (!tooBig && !tooOld) break;
      if (minAck !== undefined && minAck < following.base) break;
      await rm(join(this.o.dir, segmentName(oldest.base)), { force: true });
      await rm(join(this.o.dir, indexName(oldest.base)), { force: true });
      this.segments.shift();
      total -= oldest.size;
      for (const [id, offset] of this.ids) {
        if (offset >= following.base) break;
        this.ids.delete(id);
      }
    }
  }

  // ---- both ---------------------------------------------------------------------------------

  private async durableMark(): Promise<number> {
    if (this.o.mode === 'writer') return this.durableEnd;
    try {
      const b = await readFile(join(this.o.dir, DURABLE_FILE));
      return b.length >= 8 ? b.readDoubleLE(0) : 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  async bounds(): Promise<LogBounds> {
    const end = await this.durableMark();
    if (this.o.mode === 'writer') return { start: (this.segments[0] as Segment).base, end };
    const bases = await this.listBases();
    return { start: bases[0] ?? 0, end };
  }

  async read(from: number, limits: ReadLimits = {}): Promise<LogEvent[]> {
    const maxEvents = limits.maxEvents ?? 1000;
    const maxBytes = limits.maxBytes ?? 8 * 1024 * 1024;
    const end = await this.durableMark();
    const out: LogEvent[] = [];
    let bytes = 0;
    let offset = from;
    while (offset < end && out.length < maxEvents && bytes < maxBytes) {
      const bases = this.o.mode === 'writer' ? this.segments.map((s) => s.base) : await this.listBases();
      const first = bases[0];
      if (first === undefined || offset < first)
        throw new DipError(
          'input',
          `event log ${this.o.dir}: offset ${offset} is no longer held (the log starts at ${first ?? end}); events were deleted before they were read`,
        );
      let segIndex = 0;
      for (let i = 0; i < bases.length; i++) if ((bases[i] as number) <= offset) segIndex = i;
      const base = bases[segIndex] as number;
      const nextBase = bases[segIndex + 1];
      let position: number;
      let at: number;
      if (this.readCursor && this.readCursor.offset === offset && this.readCursor.base === base) {
        position = this.readCursor.position;
        at = offset;
      } else {
        const index = await readFile(join(this.o.dir, indexName(base))).catch(() => Buffer.alloc(0));
        ({ offset: at, position } = indexLookup(index, base, offset));
      }
      const path = join(this.o.dir, segmentName(base));
      const h = await open(path, 'r');
      try {
        let buf = Buffer.alloc(0);
        let bufStart = position;
        let pos = 0;
        const fileSize = (await h.stat()).size;
        for (;;) {
          if (at >= end || out.length >= maxEvents || bytes >= maxBytes) break;
          if (nextBase !== undefined && at >= nextBase) break;
          const f = decodeFrame(buf, pos, at);
          if (f.kind === 'event') {
            if (at >= offset) {
              // Copy: the events outlive the read buffer.
              out.push({ ...f.event, data: Buffer.from(f.event.data) });
              bytes += f.event.data.length;
            }
            pos += f.length;
            at += 1;
            continue;
          }
          if (f.kind === 'corrupt' && at === offset && pos === 0 && position !== 0) {
            // A stale index entry: scan the segment from its start.
            ({ offset: at, position } = { offset: base, position: 0 });
            bufStart = 0;
            buf = Buffer.alloc(0);
            continue;
          }
          if (f.kind === 'corrupt')
            throw new DipError(
              'internal',
              `event log ${this.o.dir}: ${segmentName(base)} is corrupt at byte ${bufStart + pos} (${f.reason})`,
            );
          // Read more of the file.
          const fileAt = bufStart + buf.length;
          if (fileAt >= fileSize) {
            if (at < end && nextBase === undefined)
              throw new DipError(
                'internal',
                `event log ${this.o.dir}: ${segmentName(base)} ends before durable offset ${end}`,
              );
            break;
          }
          const want = Math.max(f.need - (buf.length - pos), Math.min(4 * 1024 * 1024, Math.max(65536, maxBytes)));
          const chunk = Buffer.allocUnsafe(Math.min(want, fileSize - fileAt));
          const { bytesRead } = await h.read(chunk, 0, chunk.length, fileAt);
          buf = Buffer.concat([buf.subarray(pos), chunk.subarray(0, bytesRead)]);
          bufStart += pos;
          pos = 0;
        }
        this.readCursor = { offset: at, base, position: bufStart + pos };
      } finally {
        await h.close();
      }
      offset = at;
      if (nextBase === undefined || at < nextBase) break;
    }
    return out;
  }

  async waitFor(from: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    if (this.o.mode === 'writer') {
      if (this.durableEnd > from) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.durableWaiters.delete(check);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const check = () => {
          if (this.durableEnd > from) done();
        };
        const timer = setTimeout(done, timeoutMs);
        this.durableWaiters.add(check);
        signal?.addEventListener('abort', done, { once: true });
      });
      return;
    }
    while (!signal?.aborted && Date.now() < deadline) {
      if ((await this.durableMark()) > from) return;
      await sleep(Math.min(this.pollMs, Math.max(1, deadline - Date.now())), undefined, { signal }).catch(
        () => undefined,
      );
    }
  }

  async ack(consumer: string, next: number): Promise<void> {
    if (!CONSUMER.test(consumer))
      throw new DipError('internal', `consumer name ${JSON.stringify(consumer)} is not a file name`);
    const file = join(this.o.dir, 'consumers', consumer);
    const tmp = `${file}.${process.pid}.tmp`;
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleLE(next, 0);
    await writeFile(tmp, b, { mode: 0o600 });
    await rename(tmp, file);
    this.ackCache = undefined;
  }

  async acked(consumer: string): Promise<number | undefined> {
    try {
      const b = await readFile(join(this.o.dir, 'consumers', consumer));
      return b.length >= 8 ? b.readDoubleLE(0) : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async consumerAcks(): Promise<number[]> {
    const dir = join(this.o.dir, 'consumers');
    const names = (await readdir(dir).catch(() => [] as string[])).filter(
      (n) => CONSUMER.test(n) && !n.endsWith('.tmp'),
    );
    const acks = await Promise.all(names.map((n) => this.acked(n)));
    return acks.filter((a): a is number => a !== undefined);
  }

  async backlog(): Promise<number> {
    const now = Date.now();
    if (!this.ackCache || now - this.ackCache.at > ACK_CACHE_MS) {
      const acks = await this.consumerAcks();
      this.ackCache = { at: now, min: acks.length ? Math.min(...acks) : undefined };
    }
    const { start, end } = await this.bounds();
    return Math.max(0, end - Math.max(start, this.ackCache.min ?? start));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.o.mode === 'writer') {
      // Let queued appends finish first.
      while (this.flushing || this.pending.waiters.length) await sleep(1);
    }
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.active) {
      await this.active.index.sync().catch(() => undefined);
      await Promise.all([this.active.handle.close(), this.active.index.close()]);
      this.active = undefined;
    }
    await this.durableHandle?.close();
    this.durableHandle = undefined;
    if (this.o.mode === 'writer') await rm(join(this.o.dir, LOCK_FILE), { force: true });
  }

  /** Bytes held on disk (segments only). */
  async sizeOnDisk(): Promise<number> {
    let total = 0;
    for (const base of await this.listBases()) total += (await stat(join(this.o.dir, segmentName(base)))).size;
    return total;
  }
}
