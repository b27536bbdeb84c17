/**
 * Runs async tasks one at a time, in call order (an async mutex). A failed task rejects its
 * own caller only; the next task still runs.
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Settles once every task queued so far has finished. */
  async idle(): Promise<void> {
    await this.tail;
  }
}
