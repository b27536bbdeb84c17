/**
 * Exact sliding-window rate limiting: a request at time t is admitted when fewer than `limit`
 * admitted requests started in (t - windowMs, t]. Rejected requests do not use up the budget.
 */
export interface RateDecision {
  admitted: boolean;
  /** Admitted requests in the window, this one included when admitted. */
  inWindow: number;
  /** Milliseconds until the oldest request in the window leaves it (a slot frees). */
  freesInMs: number;
}

export class SlidingWindow {
  private times: number[] = [];
  private head = 0;

  /** `now` is a monotonic time in ms (performance.now()). */
  take(now: number, limit: number, windowMs: number): RateDecision {
    while (this.head < this.times.length && (this.times[this.head] as number) <= now - windowMs) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    const inWindow = this.times.length - this.head;
    const admitted = inWindow < limit;
    if (admitted) this.times.push(now);
    const oldest = this.times[this.head] ?? now;
    return { admitted, inWindow: admitted ? inWindow + 1 : inWindow, freesInMs: Math.max(0, oldest + windowMs - now) };
  }
}
