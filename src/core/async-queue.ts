/**
 * A bounded FIFO between producers and one consumer: `push` waits while the queue is full
 * (backpressure), the consumer iterates until `close()`, and `fail()` surfaces an error at
 * the consumer after the items already queued.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private readonly waitingPush: (() => void)[] = [];
  private waitingPull: (() => void) | undefined;
  private closed = false;
  private error: { reason: unknown } | undefined;

  constructor(private readonly capacity: number) {}

  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await new Promise<void>((r) => this.waitingPush.push(r));
    if (this.closed) throw new Error('queue closed');
    this.items.push(item);
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
    for (const r of this.waitingPush.splice(0)) r();
  }

  fail(reason: unknown): void {
    this.error ??= { reason };
    this.close();
  }

  get size(): number {
    return this.items.length;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.items.length) {
        const item = this.items.shift() as T;
        this.waitingPush.shift()?.();
        yield item;
        continue;
      }
      if (this.error) throw this.error.reason;
      if (this.closed) return;
      await new Promise<void>((r) => (this.waitingPull = r));
    }
  }

  private wake(): void {
    const w = this.waitingPull;
    this.waitingPull = undefined;
    w?.();
  }
}
