/**
 * Retry decisions for the REST HTTP client: which statuses and errors retry, how long to back
 * off, and how a server's Retry-After is read. Pure functions, so they are tested without I/O.
 */
import { DipError } from '../../../core/errors.js';
import type { ResponseAction, RetryPolicy } from './types.js';

/** The longest Retry-After the client is willing to honour; longer ones fail the request. */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * What the client does with a status: `ok` hands the response back, `reauth` asks the
 * authenticator for fresh credentials (401, once per request), the rest are `ResponseAction`s.
 */
export type StatusDecision = 'ok' | 'reauth' | ResponseAction;

/**
 * Exponential backoff before the retry that follows failed attempt `attempt` (1-based):
 * initialDelay × multiplier^(attempt-1), capped by maxDelay; with jitter a uniform value in
 * [0, that] ("full jitter"), so many clients that failed together do not retry together.
 */
export function computeBackoff(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exp = policy.initialDelayMs * policy.multiplier ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxDelayMs, Number.isFinite(exp) ? exp : policy.maxDelayMs);
  return Math.max(0, Math.round(policy.jitter ? random() * capped : capped));
}

/** Retry-After as milliseconds from `now`: delta seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

/** Response actions, most specific first (a resource's, then the API's). */
export type ActionLayers = Record<string, ResponseAction> | ReadonlyArray<Record<string, ResponseAction>>;

/**
 * The action for a status. Configured actions win: the more specific layer first, and within a
 * layer an exact code over a class ("404" beats "4xx"). A 401 that may still re-authenticate
 * does so unless "401" itself is configured. Then the defaults: 2xx and 304 ok; other 3xx fail
 * (redirects are not followed, so credentials never travel to another origin); 408, 429 and
 * 5xx retry; other 4xx fail.
 */
export function resolveAction(status: number, actions: ActionLayers, canReauth: boolean): StatusDecision {
  const layers = Array.isArray(actions) ? actions : [actions];
  const reauth = status === 401 && canReauth;
  for (const layer of layers) {
    const exact = layer[String(status)];
    if (exact !== undefined) return exact;
    const byClass = layer[`${Math.floor(status / 100)}xx`];
    if (byClass !== undefined && !reauth) return byClass;
  }
  if (reauth) return 'reauth';
  if (status < 300 || status === 304) return 'ok';
  if (status < 400) return 'fail';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'fail';
}

const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Network failures worth another attempt (resets, refused connections, timeouts), causes included. */
export function isRetryableError(err: unknown): boolean {
  let cur: unknown = err;
  for (let depth = 0; depth < 5 && cur !== undefined && cur !== null; depth++) {
    const code = errorCode(cur);
    if (code !== undefined && RETRYABLE_CODES.has(code)) return true;
    if (cur instanceof Error && /socket hang up|other side closed/i.test(cur.message)) return true;
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return false;
}

/** The error a cancelled request or wait rejects with. */
export function interrupted(signal: AbortSignal): DipError {
  const reason: unknown = signal.reason;
  return new DipError('interrupted', 'HTTP request interrupted', reason === undefined ? {} : { cause: reason });
}

/** Resolves after `ms`, or rejects with an `interrupted` DipError as soon as the signal fires. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(interrupted(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(interrupted(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
