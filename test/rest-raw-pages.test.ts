/**
 * REST page envelopes go to the raw zone compressed in Node's thread pool (compressLines in
 * src/lake/raw-store.ts) instead of by a DuckDB line COPY after the bronze read: the stored
 * file decompresses to exactly the bytes the old COPY wrote, with the same line count.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { compressLines } from '../src/lake/raw-store.js';
import { LINES_COPY_OPTIONS, lineScan } from '../src/lake/scan.js';
import { lit } from '../src/lake/sql.js';

const PAGES = [
  '{"seq":1,"pipeline":"p","position":{"url":"http://127.0.0.1/x?offset=0"},"payload":{"data":[{"id":1,"name":"Zoë ✓ 日本 😀","nested":{"a":[1,{"b":null}],"c":{"d":"e"}},"big":12345678901234567890123,"n":null}]}}',
  '{"seq":2,"pipeline":"p","payload":{"data":[{"id":2},{"id":3,"missing":"only here","float":1.0,"exp":1e400,"esc":"tab\\t quote\\" slash\\\\ \\u0000"}]}}',
  '{"seq":3,"pipeline":"p","payload":{"data":[]}}',
];

let dir: string;
let db: DuckDBInstance;
let conn: DuckDBConnection;

/** What stageRawPages did before: DuckDB's line COPY with zstd. */
async function oldCopy(input: string, output: string): Promise<number> {
  const r = await conn.run(
    `COPY (SELECT text FROM ${lineScan(input, 1 << 21)}) TO ${lit(output)} (${LINES_COPY_OPTIONS}, COMPRESSION zstd)`,
  );
  return Number(r.rowsChanged);
}

/** The decompressed text of a zstd file, read by DuckDB as raw reads it. */
async function decompressed(path: string): Promise<string> {
  const plain = `${path}.plain`;
  await conn.run(`COPY (SELECT text FROM ${lineScan(path, 1 << 21)}) TO ${lit(plain)} (${LINES_COPY_OPTIONS})`);
  return readFile(plain, 'utf8');
}

async function compare(name: string, content: string, lines: number): Promise<void> {
  const input = join(dir, `${name}.ndjson`);
  await writeFile(input, content);
  const newRows = await compressLines(input, join(dir, `${name}.new.ndjson.zst`));
  const oldRows = await oldCopy(input, join(dir, `${name}.old.ndjson.zst`));
  assert.equal(newRows, lines);
  assert.equal(oldRows, lines);
  const a = await decompressed(join(dir, `${name}.new.ndjson.zst`));
  const b = await decompressed(join(dir, `${name}.old.ndjson.zst`));
  assert.equal(a, b);
  if (lines > 0) assert.equal(a, content.endsWith('\n') ? content : `${content}\n`);
}

describe('REST raw pages compressed beside the bronze read', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dip-rest-raw-pages-'));
    db = await DuckDBInstance.create(':memory:');
    conn = await db.connect();
  });
  after(async () => {
    conn.closeSync();
    db.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores the page lines byte for byte as the DuckDB COPY did (unicode, nested, big integers, nulls, missing fields)', async () => {
    await compare('pages', `${PAGES.join('\n')}\n`, 3);
  });

  it('counts and ends a last line without its newline', async () => {
    await compare('unterminated', PAGES.join('\n'), 3);
  });

  it('spans zstd frames: a file larger than one 4 MiB chunk reads back whole', async () => {
    const line = PAGES[0] as string;
    const count = Math.ceil((9 << 20) / (line.length + 1));
    await compare('big', `${Array.from({ length: count }, () => line).join('\n')}\n`, count);
  });

  it('an empty pages file is a valid empty zstd file with 0 lines', async () => {
    const input = join(dir, 'empty.ndjson');
    await writeFile(input, '');
    const out = join(dir, 'empty.ndjson.zst');
    assert.equal(await compressLines(input, out), 0);
    const r = await conn.runAndReadAll(`SELECT count(*)::INT AS n FROM ${lineScan(out)}`);
    assert.deepEqual(r.getRowObjectsJson(), [{ n: 0 }]);
  });
});
