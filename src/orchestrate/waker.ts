/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A wait that ends early when woken (a wake before the wait counts too). */
export class Waker {
  private woken = false;
  private wakeUp: (() => void) | undefined;

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (this.woken || signal.aborted) {
      this.woken = false;
      return;
    }
    const early = new AbortController();
    const stop = () => early.abort();
    this.wakeUp = stop;
    signal.addEventListener('abort', stop, { once: true });
    try {
      await sleep(ms, early.signal);
    } finally {
      signal.removeEventListener('abort', stop);
      this.wakeUp = undefined;
      this.woken = false;
    }
  }
}
