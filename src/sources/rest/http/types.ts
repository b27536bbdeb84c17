/**
 * The HTTP layer of the REST source: one client per source that every request goes through,
 * so retries, rate budgets, adaptive concurrency and auth apply uniformly.
 */
import type { SharedBudgets } from '../../../catalog/budgets/types.js';

export interface HttpRequest {
  method: string;
  /** Absolute URL, query string included. */
  url: string;
  headers: Record<string, string>;
  body?: string | undefined;
  /** Resource (endpoint) name: the key for per-resource budgets, stats and failure records. */
  resource: string;
}

export interface HttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: Buffer;
  /** The URL that was requested (with query), as sent. */
  url: string;
  /** Wall time of the final attempt. */
  elapsedMs: number;
  /** How many attempts it took (1 = no retry). */
  attempts: number;
}

/** What to do with a response of a given status: `ignore` yields no records and no error. */
export type ResponseAction = 'retry' | 'ignore' | 'fail';

export interface RetryPolicy {
  /** Total attempts per request, first one included. */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  /** Full jitter: the delay is uniformly random in [0, computed delay]. */
  jitter: boolean;
  /** Per-attempt timeout (headers and body). */
  timeoutMs: number;
}

/** A client-side budget: at most `requests` requests in any window of `perMs`. */
export interface RateBudget {
  requests: number;
  perMs: number;
}

export interface ConcurrencyOptions {
  initial: number;
  /** The ceiling: never more requests in flight than this. */
  max: number;
  min: number;
}

/** Reported to the source (and on to run stats and logs). URLs are already redacted. */
export type HttpEvent =
  | {
      type: 'retry';
      resource: string;
      url: string;
      attempt: number;
      status: number | null;
      error: string | null;
      delayMs: number;
    }
  | {
      type: 'throttled';
      resource: string;
      url: string;
      waitMs: number;
      reason: 'budget' | 'retry_after' | 'rate_limit_headers';
    }
  | { type: 'concurrency'; limit: number; reason: string }
  | { type: 'response'; resource: string; url: string; status: number; elapsedMs: number; bytes: number };

/**
 * Adds credentials to a request. The client calls `apply` before every attempt (so a refreshed
 * token is used on retry) and `onUnauthorized` once per request on a 401; when that returns
 * true the request is retried with fresh credentials, otherwise the 401 is terminal. A 401 for
 * credentials already replaced (a late answer to a request sent with an old token) is not
 * a rejection of the current ones.
 */
export interface Authenticator {
  apply(request: HttpRequest, signal: AbortSignal): Promise<void>;
  /** `rejected`: the request as sent, with the credentials the server refused. */
  onUnauthorized?(signal: AbortSignal, rejected?: HttpRequest): Promise<boolean>;
  /** Strings that must never appear in logs, errors or raw envelopes (tokens, keys). */
  secrets(): string[];
}

/** Durable state for an authenticator (rotated refresh tokens), kept in the catalog. */
export interface StateStore {
  load(): Promise<unknown>;
  save(value: unknown): Promise<void>;
}

export interface HttpClientOptions {
  retry: RetryPolicy;
  /** Per-status overrides keyed "404" or "4xx"; an exact code beats a class. */
  responseActions?: Record<string, ResponseAction> | undefined;
  /** Per-resource overrides, consulted before `responseActions`. */
  resourceResponseActions?: Record<string, Record<string, ResponseAction>> | undefined;
  /** Budget for every request of this client (the whole API host). */
  hostBudget?: RateBudget | undefined;
  /** Budgets per resource name, on top of the host budget. */
  resourceBudgets?: Record<string, RateBudget> | undefined;
  /**
   * Where the host and resource budgets are also counted for every other process of the
   * deployment, under `hostKey` and `resourceKeys[resource]` (both are taken after the local ones).
   */
  shared?: { budgets: SharedBudgets; hostKey: string; resourceKeys: Record<string, string> } | undefined;
  concurrency: ConcurrencyOptions;
  authenticator?: Authenticator | undefined;
  onEvent?: ((event: HttpEvent) => void) | undefined;
  /** Masks secrets in any text the client puts into events and errors (URLs, messages, bodies). */
  redact: (text: string) => string;
  /** Longest server-requested wait (Retry-After) honoured; longer ones fail the request. Default 10 minutes. */
  maxRetryAfterMs?: number | undefined;
  /** Source of randomness for jitter (tests). */
  random?: (() => number) | undefined;
}

/** Counters of one client since it was created. */
export interface HttpStats {
  /** Attempts sent, retries included. */
  requests: number;
  retries: number;
  /** Total time requests spent waiting for budgets and server-requested pauses. */
  throttledMs: number;
  /** Responses by status code, e.g. {"200": 10, "429": 1}. */
  statusCounts: Record<string, number>;
  /** Attempts that failed without a response (resets, refused connections, timeouts). */
  networkErrors: number;
  maxInFlight: number;
  /** The adaptive concurrency limit now. */
  concurrencyLimit: number;
}
