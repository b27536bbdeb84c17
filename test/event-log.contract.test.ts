/**
 * The event log contract (src/eventlog/types.ts), one suite for every implementation: durable
 * appends in offset order, dedup by id (also across a reopen), reads from any offset with limits,
 * waiting for new events, consumer acks and backlog. Implementation-specific behaviour (the
 * embedded log's torn-tail recovery, retention, readers in another process) follows the suite.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, open, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EmbeddedEventLog } from '../src/eventlog/embedded.js';
import type { EventLog } from '../src/eventlog/types.js';
import { logImplementations } from './support/event-logs.js';

const text = (d: Uint8Array) => Buffer.from(d).toString('utf8');
const ev = (s: string, id?: string, headers?: Record<string, string>) => ({ data: Buffer.from(s), id, headers });

for (const impl of logImplementations()) {
  describe(`event log contract: ${impl.name}`, impl.skip ? { skip: impl.skip } : {}, () => {
    before(async () => impl.setup?.());
    after(async () => impl.teardown?.());

    it('appends in order, durably, and reads back from any offset', async () => {
      const log = await impl.open('order');
      try {
        const { start } = await log.bounds();
        const r = await log.append([ev('a'), ev('b', undefined, { reason: 'why' }), ev('c')]);
        assert.deepEqual(
          r.map((x) => [x.offset - start, x.duplicate]),
          [
            [0, false],
            [1, false],
            [2, false],
          ],
        );
        const r2 = await log.append([ev('d')]);
        assert.equal(r2[0]?.offset, start + 3);
        assert.deepEqual(await log.bounds(), { start, end: start + 4 });
        const all = await log.read(start);
        assert.deepEqual(
          all.map((e) => text(e.data)),
          ['a', 'b', 'c', 'd'],
        );
        assert.deepEqual(all[1]?.headers, { reason: 'why' });
        assert.ok(Math.abs((all[0]?.timestamp ?? 0) - Date.now()) < 60_000);
        assert.deepEqual(
          (await log.read(start + 2)).map((e) => text(e.data)),
          ['c', 'd'],
        );
        assert.deepEqual(
          (await log.read(start + 1, { maxEvents: 2 })).map((e) => e.offset - start),
          [1, 2],
        );
        assert.deepEqual(await log.read(start + 4), []);
      } finally {
        await log.close();
      }
    });

    it('stores an id once: a redelivery answers the first offset, also after a reopen', async () => {
      let log = await impl.open('dedup');
      const { start } = await log.bounds();
      const first = await log.append([ev('x1', 'evt_1'), ev('x2', 'evt_2'), ev('x1 again', 'evt_1')]);
      assert.deepEqual(
        first.map((x) => [x.offset - start, x.duplicate]),
        [
          [0, false],
          [1, false],
          [0, true],
        ],
      );
      // Concurrent redeliveries of one new id: one stored.
      const racing = await Promise.all([log.append([ev('y', 'evt_3')]), log.append([ev('y', 'evt_3')])]);
      assert.deepEqual(
        racing.map((r) => r[0]?.offset),
        [start + 2, start + 2],
      );
      await log.close();
      log = await impl.open('dedup');
      try {
        const again = await log.append([ev('x2 again', 'evt_2'), ev('z', 'evt_4')]);
        assert.deepEqual(
          again.map((x) => [x.offset - start, x.duplicate]),
          [
            [1, true],
            [3, false],
          ],
        );
        assert.deepEqual(
          (await log.read(start)).map((e) => [text(e.data), e.id]),
          [
            ['x1', 'evt_1'],
            ['x2', 'evt_2'],
            ['y', 'evt_3'],
            ['z', 'evt_4'],
          ],
        );
      } finally {
        await log.close();
      }
    });

    it('many concurrent appends share group commits and keep every event once, in offset order', async () => {
      const log = await impl.open('group');
      try {
        const { start } = await log.bounds();
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => log.append([ev(`e${i}`, `id${i}`), ev(`f${i}`)])),
        );
        const offsets = results.flat().map((r) => r.offset);
        assert.equal(new Set(offsets).size, 400);
        const read: string[] = [];
        for (let at = start; ; ) {
          const batch = await log.read(at, { maxEvents: 64 });
          if (!batch.length) break;
          read.push(...batch.map((e) => text(e.data)));
          at = (batch[batch.length - 1]?.offset ?? at) + 1;
        }
        assert.equal(read.length, 400);
        const byOffset = new Map(results.flat().map((r, i) => [r.offset, i]));
        assert.equal(byOffset.size, 400);
      } finally {
        await log.close();
      }
    });

    it('waitFor resolves when an event arrives, on timeout, or on abort', async () => {
      const log = await impl.open('wait');
      try {
        const { end } = await log.bounds();
        const t0 = Date.now();
        await log.waitFor(end, 150);
        assert.ok(Date.now() - t0 >= 140, 'waited for the timeout');
        const waiting = log.waitFor(end, 10_000);
        setTimeout(() => void log.append([ev('late')]), 50);
        const t1 = Date.now();
        await waiting;
        assert.ok(Date.now() - t1 < 5_000);
        const ac = new AbortController();
        const t2 = Date.now();
        setTimeout(() => ac.abort(), 50);
        await log.waitFor(end + 1, 10_000, ac.signal);
        assert.ok(Date.now() - t2 < 5_000);
      } finally {
        await log.close();
      }
    });

    it('acks per consumer and counts the backlog from the slowest one', async () => {
      const log = await impl.open('acks');
      try {
        const { start } = await log.bounds();
        await log.append([ev('1'), ev('2'), ev('3'), ev('4'), ev('5')]);
        assert.equal(await log.acked('lander'), undefined);
        assert.equal(await log.backlog(), 5);
        await log.ack('lander', start + 3);
        assert.equal(await log.acked('lander'), start + 3);
        assert.equal(await log.backlog(), 2);
        await log.ack('lander', start + 5);
        assert.equal(await log.backlog(), 0);
      } finally {
        await log.close();
      }
    });
  });
}

describe('embedded event log: recovery, retention, readers', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dip-elog-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const writer = (name: string, extra: Partial<Parameters<typeof EmbeddedEventLog.open>[0]> = {}) =>
    EmbeddedEventLog.open({ dir: join(dir, name), mode: 'writer', ...extra });

  it('cuts a torn tail on open and goes on from the last whole event', async () => {
    let log = await writer('torn');
    await log.append([ev('one', 'a'), ev('two', 'b'), ev('three', 'c')]);
    await log.close();
    const seg = join(dir, 'torn', '00000000000000000000.seg');
    const size = (await stat(seg)).size;
    await truncate(seg, size - 3); // the last frame half written
    log = await writer('torn');
    try {
      assert.deepEqual(await log.bounds(), { start: 0, end: 2 });
      assert.equal((await stat(seg)).size < size, true);
      // The torn event's id is not held: its redelivery is stored.
      const r = await log.append([ev('three', 'c')]);
      assert.deepEqual(r, [{ offset: 2, duplicate: false }]);
      assert.deepEqual(
        (await log.read(0)).map((e) => text(e.data)),
        ['one', 'two', 'three'],
      );
    } finally {
      await log.close();
    }
  });

  it('cuts garbage after the last frame and a frame whose checksum fails', async () => {
    let log = await writer('crc');
    await log.append([ev('one'), ev('two')]);
    await log.close();
    const seg = join(dir, 'crc', '00000000000000000000.seg');
    const size = (await stat(seg)).size;
    const h = await open(seg, 'r+');
    await h.write(Buffer.from([0xff]), 0, 1, size - 1); // flip the last byte of "two"
    await h.write(Buffer.alloc(50, 7), 0, 50, size); // and garbage after it
    await h.close();
    log = await writer('crc');
    try {
      assert.deepEqual(await log.bounds(), { start: 0, end: 1 });
      assert.deepEqual(
        (await log.read(0)).map((e) => text(e.data)),
        ['one'],
      );
    } finally {
      await log.close();
    }
  });

  it('refuses a second writer while the first lives', async () => {
    const log = await writer('lock');
    try {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '-e',
          `import('${join(process.cwd(), 'src/eventlog/embedded.ts')}').then(m => m.EmbeddedEventLog.open({dir: ${JSON.stringify(join(dir, 'lock'))}, mode: 'writer'})).then(() => process.exit(0), (e) => { console.error(e.message); process.exit(3); })`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      assert.equal(code, 3);
      assert.match(err, /is being written by process \d+; one gateway writes an embedded log at a time/);
    } finally {
      await log.close();
    }
  });

  it('rolls segments, finds any offset through the index, and a reader sees only durable events', async () => {
    const log = await writer('roll', { segmentBytes: 20_000 });
    const reader = await EmbeddedEventLog.open({ dir: join(dir, 'roll'), mode: 'reader' });
    try {
      const body = 'x'.repeat(300);
      for (let i = 0; i < 10; i++)
        await log.append(Array.from({ length: 50 }, (_, j) => ev(`${i * 50 + j}:${body}`, `k${i * 50 + j}`)));
      const segs = (await readdir(join(dir, 'roll'))).filter((n) => n.endsWith('.seg'));
      assert.ok(segs.length >= 4, `segments: ${segs.length}`);
      assert.deepEqual(await reader.bounds(), { start: 0, end: 500 });
      for (const at of [0, 1, 63, 64, 65, 200, 333, 499]) {
        const [e] = await reader.read(at, { maxEvents: 1 });
        assert.equal(text(e?.data ?? Buffer.alloc(0)).split(':')[0], String(at));
        assert.equal(e?.id, `k${at}`);
      }
      // Sequential reads across segment boundaries.
      let n = 0;
      for (let at = 0; ; ) {
        const batch = await reader.read(at, { maxBytes: 5000 });
        if (!batch.length) break;
        for (const e of batch) assert.equal(e.offset, at + batch.indexOf(e));
        n += batch.length;
        at += batch.length;
      }
      assert.equal(n, 500);
    } finally {
      await reader.close();
      await log.close();
    }
  });

  it('retention drops whole segments by size and by age, never past a consumer that has not landed them', async () => {
    const log = await writer('ret', { segmentBytes: 4_000, retention: { maxBytes: 10_000 } });
    try {
      await log.ack('lander', 0);
      const body = 'y'.repeat(500);
      for (let i = 0; i < 60; i++) await log.append([ev(body, `r${i}`)]);
      await log.enforceRetention();
      assert.equal((await log.bounds()).start, 0, 'the lander acknowledged nothing: everything kept');
      await log.ack('lander', 40);
      await log.enforceRetention();
      const { start } = await log.bounds();
      assert.ok(start > 0 && start <= 40, `start ${start}`);
      assert.ok((await log.sizeOnDisk()) <= 10_000 + 4_600);
      // Ids of dropped events leave the dedup window; kept ones stay.
      assert.deepEqual(await log.append([ev(body, 'r59')]), [{ offset: 59, duplicate: true }]);
      await assert.rejects(log.read(0), /offset 0 is no longer held \(the log starts at \d+\)/);
    } finally {
      await log.close();
    }
    const aged = await writer('age', { segmentBytes: 1_000, retention: { maxAgeMs: 1 } });
    try {
      for (let i = 0; i < 10; i++) await aged.append([ev('z'.repeat(400))]);
      await new Promise((r) => setTimeout(r, 20));
      await aged.enforceRetention();
      const b = await aged.bounds();
      assert.equal(b.end, 10);
      assert.ok(b.start >= 8, `only the active segment is left: ${JSON.stringify(b)}`);
    } finally {
      await aged.close();
    }
  });

  it('a reader refuses to read past a stale durable mark (written but unsynced events stay invisible)', async () => {
    const log = await writer('mark');
    await log.append([ev('a'), ev('b')]);
    await log.close();
    // Simulate a crash between the write and the mark: the mark says 1.
    const b = Buffer.alloc(8);
    b.writeDoubleLE(1, 0);
    await writeFile(join(dir, 'mark', 'durable'), b);
    const reader: EventLog = await EmbeddedEventLog.open({ dir: join(dir, 'mark'), mode: 'reader' });
    try {
      assert.deepEqual(
        (await reader.read(0)).map((e) => text(e.data)),
        ['a'],
      );
    } finally {
      await reader.close();
    }
  });
});
