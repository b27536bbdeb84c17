/**
 * Rate budgets shared by every process and worker of a deployment: "at most N request starts
 * in any window of T" for one key (an API host or resource), counted in one place (Redis, or
 * the PostgreSQL catalog) on that place's clock. A slot counts from when it is taken until it
 * is settled (the response arrived) plus one window, like the in-process budget
 * (sources/rest/http/rate-limit.ts); a slot never settled (its process died) lapses after
 * its lease.
 */
export interface SharedBudgetSlot {
  /** Marks the slot's response as arrived: it counts for one more window from now. */
  settle(): Promise<void>;
}

export interface SharedBudgets {
  readonly kind: 'redis' | 'postgres';
  /**
   * Takes a slot of `key`'s budget, or says how long to wait before asking again (ms).
   * `leaseMs`: how long an unsettled slot counts at most.
   */
  take(
    key: string,
    budget: { requests: number; windowMs: number },
    leaseMs: number,
  ): Promise<{ slot: SharedBudgetSlot } | { waitMs: number }>;
  close(): Promise<void>;
}
