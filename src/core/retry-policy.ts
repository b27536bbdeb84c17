/** How a task is retried: attempts, a growing delay with jitter, a per-attempt timeout. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1: no retry). */
  attempts: number;
  /** Delay before the first retry, ms. */
  delayMs: number;
  /** Each further retry waits `factor` times longer (1: fixed delay). */
  factor: number;
  /** Ceiling of a delay, ms. */
  maxDelayMs: number;
  /** Share of a delay drawn at random: 0.2 waits between 80% and 120% of it. */
  jitter: number;
  /** One attempt is abandoned (and counts as a retryable failure) after this long, ms. */
  timeoutMs?: number | undefined;
}
