/** Batching of catalog writes shared by the in-process executor and `dip worker`. */

/**
 * Group commit: items submitted while a write is in flight go together in the next write. Each
 * submitter gets its own item's result, or the write's error.
 */
export class GroupCommit<I, O> {
  private pending: { item: I; resolve: (out: O) => void; reject: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly write: (items: I[]) => Promise<O[]>,
    /** When a write of several fails: each item alone, so one bad item fails only itself. */
    private readonly one?: (item: I) => Promise<O>,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length) {
        const batch = this.pending;
        this.pending = [];
        try {
          const out = await this.write(batch.map((b) => b.item));
          batch.forEach((b, i) => b.resolve(out[i] as O));
        } catch (err) {
          if (this.one && batch.length > 1) for (const b of batch) await this.one(b.item).then(b.resolve, b.reject);
          else for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }
}
