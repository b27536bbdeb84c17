/**
 * The changes of the transaction being read. A binlog transaction's commit position is known
 * only at its end (the XID event), and every event carries it: changes wait here until then.
 * Past `memoryLimit` changes they go to an NDJSON file in the staging directory, so a
 * transaction of millions of rows costs disk, not memory.
 */
import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { newId } from '../../../core/ids.js';
import type { ChangeOp, Tuple } from '../../database/change-batch.js';

export interface BufferedChange {
  /** Stream name. */
  stream: string;
  op: ChangeOp;
  row: Tuple;
  before: Tuple | null;
}

export class TxnBuffer {
  private items: BufferedChange[] = [];
  private file: FileHandle | undefined;
  private path = '';
  private spilled = 0;

  constructor(
    private readonly dir: string,
    private readonly memoryLimit = 10_000,
  ) {}

  get size(): number {
    return this.spilled + this.items.length;
  }

  async add(change: BufferedChange): Promise<void> {
    this.items.push(change);
    if (this.items.length >= this.memoryLimit) await this.spill();
  }

  /** Every change in order; the buffer is empty afterwards. */
  async *drain(): AsyncGenerator<BufferedChange> {
    if (this.file) {
      await this.file.close();
      this.file = undefined;
      const lines = createInterface({ input: createReadStream(this.path, 'utf8'), crlfDelay: Infinity });
      for await (const line of lines) if (line) yield JSON.parse(line) as BufferedChange;
      await rm(this.path, { force: true });
      this.spilled = 0;
    }
    const items = this.items;
    this.items = [];
    yield* items;
  }

  async discard(): Promise<void> {
    this.items = [];
    if (this.file) {
      await this.file.close().catch(() => undefined);
      this.file = undefined;
    }
    if (this.path) await rm(this.path, { force: true });
    this.spilled = 0;
  }

  private async spill(): Promise<void> {
    if (!this.file) {
      this.path = join(this.dir, `${newId('txn')}.ndjson`);
      this.file = await open(this.path, 'w');
    }
    await this.file.write(this.items.map((c) => `${JSON.stringify(c)}\n`).join(''));
    this.spilled += this.items.length;
    this.items = [];
  }
}
