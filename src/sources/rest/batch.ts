/**
 * Turns pages into read units: records go to a local NDJSON file, each page's envelope to a
 * raw-pages file, and every unit carries the stream state that is true once it is committed
 * (which partitions are done, where the others resume, the cursor marks so far).
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '../../core/ids.js';
import type { ReadUnit } from '../types.js';
import type { CursorMark, PassState, RestStreamState } from './partition.js';
import type { Page } from './pages.js';

export interface BatchOptions {
  dir: string;
  /** Constant fields of every raw envelope. */
  envelope: { pipeline: string; source: string; stream: string; run_id: string };
  resource: string;
  /** Label of the resource's endpoint, recorded as the source file of its rows. */
  endpoint: string;
  format: 'json' | 'ndjson' | 'csv';
  maxRecords: number;
  maxAgeMs: number;
}

interface OpenBatch {
  records: FileHandle;
  recordsPath: string;
  pages: FileHandle;
  pagesPath: string;
  recordCount: number;
  pageCount: number;
  fields: Set<string>;
  bytes: number;
  openedAt: number;
  firstUrl: string | undefined;
  lastUrl: string | undefined;
}

export class UnitBatcher {
  private batch: OpenBatch | undefined;
  private seq = 0;
  /** The envelope fields every page shares, as JSON members. */
  private readonly constants: string;

  constructor(
    private readonly o: BatchOptions,
    readonly pass: PassState,
  ) {
    this.constants = JSON.stringify(o.envelope).slice(1, -1);
  }

  /** Adds a page (records already filtered and completed with parent fields); true when the batch is due. */
  async add(page: Page, records: readonly Record<string, unknown>[], mark: CursorMark | undefined): Promise<boolean> {
    const b = (this.batch ??= await this.openBatch());
    if (records.length) {
      let text = '';
      for (const r of records) {
        for (const k in r) b.fields.add(k);
        text += `${JSON.stringify(r)}\n`;
      }
      await b.records.write(text);
      b.bytes += text.length;
    }
    if (page.text !== undefined) {
      const position = {
        url: page.url,
        status: page.status,
        headers: page.headers,
        page: page.request.page,
        partition: page.partition.key || undefined,
        attempts: page.attempts,
        // Where the records are in the payload and what was added to them: replay rebuilds bronze from these.
        records: this.o.format === 'json' ? page.recordsPath : this.o.format,
        copy: Object.keys(page.partition.copy).length ? page.partition.copy : undefined,
      };
      const payload = this.o.format === 'json' ? page.text : JSON.stringify(page.text);
      await b.pages.write(
        `{"seq":${b.pageCount + 1},${this.constants},"received_at":${JSON.stringify(page.receivedAt)},"position":${JSON.stringify(position)},"payload":${payload}}\n`,
      );
    }
    b.recordCount += records.length;
    b.pageCount += 1;
    b.firstUrl ??= page.url;
    b.lastUrl = page.url;
    if (mark) this.pass.max[page.partition.key] = mark;
    this.advance(page);
    return b.recordCount >= this.o.maxRecords || Date.now() - b.openedAt >= this.o.maxAgeMs;
  }

  /** A CSV page is its own unit: DuckDB reads the body as the file it is. */
  async csvUnit(page: Page, state: RestStreamState): Promise<ReadUnit> {
    const path = join(this.o.dir, `${newId('csv')}.csv`);
    const h = await open(path, 'w');
    await h.write(page.text ?? '');
    await h.close();
    this.advance(page);
    return {
      label: `${this.o.resource} ${page.url}`,
      input: { path, format: 'csv' },
      bytes: (page.text ?? '').length,
      position: { file: this.o.endpoint, url: page.url, page: page.request.page },
      state: structuredClone(state),
      dispose: () => rm(path, { force: true }),
    };
  }

  pending(): boolean {
    return this.batch !== undefined;
  }

  /** Records in the open batch. */
  get records(): number {
    return this.batch?.recordCount ?? 0;
  }

  /** Closes the open batch (possibly empty) into a unit carrying `state`. */
  async flush(state: RestStreamState): Promise<ReadUnit> {
    const b = this.batch ?? (await this.openBatch());
    this.batch = undefined;
    await Promise.all([b.records.close(), b.pages.close()]);
    const files = [b.recordsPath, b.pagesPath];
    this.seq += 1;
    const label = b.pageCount
      ? `${this.o.resource} batch ${this.seq} (${b.pageCount} pages, ${b.recordCount} records)`
      : `${this.o.resource} state`;
    return {
      label,
      input: b.recordCount ? { path: b.recordsPath, format: 'ndjson', fields: [...b.fields] } : undefined,
      rawPages: b.pageCount ? b.pagesPath : undefined,
      bytes: b.bytes,
      position: { file: this.o.endpoint, first_url: b.firstUrl, last_url: b.lastUrl, pages: b.pageCount },
      state: structuredClone(state),
      dispose: async () => void (await Promise.all(files.map((f) => rm(f, { force: true })))),
    };
  }

  async discard(): Promise<void> {
    const b = this.batch;
    this.batch = undefined;
    if (!b) return;
    await Promise.all([b.records.close(), b.pages.close()]).catch(() => undefined);
    await Promise.all([rm(b.recordsPath, { force: true }), rm(b.pagesPath, { force: true })]);
  }

  /** Where the page's partition resumes now, or that it is done. */
  private advance(page: Page): void {
    const key = page.partition.key;
    if (page.next) this.pass.resume[key] = page.next;
    else {
      delete this.pass.resume[key];
      this.pass.done.push(key);
    }
  }

  private async openBatch(): Promise<OpenBatch> {
    const id = newId('rest');
    const recordsPath = join(this.o.dir, `${id}.records.ndjson`);
    const pagesPath = join(this.o.dir, `${id}.pages.ndjson`);
    return {
      records: await open(recordsPath, 'w'),
      recordsPath,
      pages: await open(pagesPath, 'w'),
      pagesPath,
      recordCount: 0,
      pageCount: 0,
      fields: new Set(),
      bytes: 0,
      openedAt: Date.now(),
      firstUrl: undefined,
      lastUrl: undefined,
    };
  }
}
