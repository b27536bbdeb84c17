/**
 * Over 400 lines: retries, rate-limit budgets and concurrency act together on every attempt.
 *
 * The HTTP client of a REST source. Every request goes through `send`, which per attempt takes
 * a concurrency slot, authenticates, waits for the rate budgets and any server-requested pause,
 * then sends with a timeout; failures retry with backoff or end in an `HttpRequestError`.
 */
import { STATUS_CODES } from 'node:http';
import { Agent, request as undiciRequest } from 'undici';
import type { SharedBudgetSlot } from '../../../catalog/budgets/types.js';
import { DipError, errorMessage } from '../../../core/errors.js';
import { AdaptiveConcurrency } from './concurrency.js';
import { rateLimitPauseUntil, ServerPauses, SlidingWindowBudget, type ServerPause } from './rate-limit.js';
import {
  computeBackoff,
  interrupted,
  isRetryableError,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  resolveAction,
  sleep,
  type StatusDecision,
} from './retry.js';
import type {
  HttpClientOptions,
  HttpEvent,
  HttpRequest,
  HttpResponse,
  HttpStats,
  RateBudget,
  ResponseAction,
} from './types.js';
import { withSpan } from '../../../observe/trace.js';

const EXCERPT_CHARS = 300;

/** What a failed request leaves behind; all text already redacted. */
export interface HttpFailureInfo {
  method: string;
  url: string;
  resource: string;
  /** The last HTTP status, or null when the last attempt got no response. */
  status: number | null;
  bodyExcerpt: string;
  attempts: number;
}

/**
 * A request that failed for good: `transient` when retryable failures used up the attempts,
 * `input` when the API refused it (4xx, a `fail` response action, an unusable URL).
 */
export class HttpRequestError extends DipError {
  readonly method: string;
  readonly url: string;
  readonly resource: string;
  readonly status: number | null;
  readonly bodyExcerpt: string;
  readonly attempts: number;

  constructor(kind: 'transient' | 'input', message: string, info: HttpFailureInfo, cause?: unknown) {
    super(kind, message, { details: { ...info }, ...(cause === undefined ? {} : { cause }) });
    this.name = 'HttpRequestError';
    this.method = info.method;
    this.url = info.url;
    this.resource = info.resource;
    this.status = info.status;
    this.bodyExcerpt = info.bodyExcerpt;
    this.attempts = info.attempts;
  }
}

export function isHttpFailure(err: unknown): err is HttpRequestError {
  return err instanceof HttpRequestError;
}

type AttemptResult =
  | {
      kind: 'response';
      status: number;
      headers: Record<string, string>;
      body: Buffer;
      elapsedMs: number;
      sent?: HttpRequest;
    }
  | { kind: 'error'; error: unknown; timedOut: boolean; elapsedMs: number };

/** Waits for `promise`, or rejects with an `interrupted` DipError when the signal fires first. */
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(interrupted(signal));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(interrupted(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function normalizeHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function httpStatus(status: number): string {
  const text = STATUS_CODES[status];
  return text ? `HTTP ${status} ${text}` : `HTTP ${status}`;
}

export class HttpClient {
  private readonly agent: Agent;
  private readonly limiter: AdaptiveConcurrency;
  private readonly hostBudget: SlidingWindowBudget | undefined;
  private readonly resourceBudgets = new Map<string, SlidingWindowBudget>();
  private readonly pauses = new ServerPauses();
  private readonly actions: Record<string, ResponseAction>;
  private readonly counters = { requests: 0, retries: 0, throttledMs: 0, networkErrors: 0 };
  private readonly statusCounts: Record<string, number> = {};

  constructor(private readonly options: HttpClientOptions) {
    this.actions = options.responseActions ?? {};
    this.limiter = new AdaptiveConcurrency(options.concurrency, (limit, reason) =>
      this.emit({ type: 'concurrency', limit, reason }),
    );
    this.hostBudget = options.hostBudget ? new SlidingWindowBudget(options.hostBudget) : undefined;
    for (const [resource, budget] of Object.entries(options.resourceBudgets ?? {})) {
      this.resourceBudgets.set(resource, new SlidingWindowBudget(budget));
    }
    // undici's own timeouts are a backstop; the per-attempt timer in `dispatch` is the one that counts.
    const backstop = options.retry.timeoutMs + 1000;
    this.agent = new Agent({
      connections: Math.max(1, options.concurrency.max),
      headersTimeout: backstop,
      bodyTimeout: backstop,
      connect: { timeout: backstop },
    });
  }

  /**
   * Sends a request, retrying as the policy says. Resolves with the response, or null when the
   * status's action is `ignore`; rejects with an `HttpRequestError`, or a DipError of kind
   * `interrupted` once the signal fires.
   */
  async send(request: HttpRequest, signal: AbortSignal): Promise<HttpResponse | null> {
    if (signal.aborted) throw interrupted(signal);
    let origin: string;
    try {
      origin = new URL(request.url).origin;
    } catch (err) {
      throw this.failure('input', request, 0, null, '', 'invalid URL', err);
    }
    const canReauth = this.options.authenticator?.onUnauthorized !== undefined;
    let reauthLeft = canReauth;
    let maxAttempts = Math.max(1, this.options.retry.attempts);
    let failures = 0;
    for (let attempt = 1; ; attempt++) {
      const result = await this.attempt(request, origin, signal);
      if (result.kind === 'error') {
        this.counters.networkErrors++;
        const reason = result.timedOut
          ? `timed out after ${this.options.retry.timeoutMs} ms`
          : this.redactText(errorMessage(result.error));
        if (!result.timedOut && !isRetryableError(result.error)) {
          throw this.failure('input', request, attempt, null, '', reason, result.error);
        }
        if (attempt >= maxAttempts) throw this.failure('transient', request, attempt, null, '', reason, result.error);
        failures++;
        await this.backoff(request, attempt, null, reason, this.backoffMs(failures), signal);
        continue;
      }

      const { status, headers, body } = result;
      const pauseUntil = rateLimitPauseUntil(headers);
      if (pauseUntil !== undefined) this.pauses.pause(origin, pauseUntil, 'rate_limit_headers');

      const actions = this.actionsFor(request.resource);
      let decision: StatusDecision = resolveAction(status, actions, reauthLeft);
      if (decision === 'reauth') {
        reauthLeft = false;
        const authenticator = this.options.authenticator;
        if (authenticator?.onUnauthorized !== undefined && (await authenticator.onUnauthorized(signal, result.sent))) {
          maxAttempts++; // retrying with fresh credentials does not use up a retry
          await this.backoff(request, attempt, status, null, 0, signal);
          continue;
        }
        decision = resolveAction(status, actions, false);
      }
      if (decision === 'ok') {
        return { status, headers, body, url: request.url, elapsedMs: result.elapsedMs, attempts: attempt };
      }
      if (decision === 'ignore') return null;
      const excerpt = this.excerpt(body);
      if (decision === 'fail') {
        const location = headers['location'];
        const redirect = status < 400 && location ? ` (redirect to ${this.redactText(location)} not followed)` : '';
        throw this.failure('input', request, attempt, status, excerpt, `${httpStatus(status)}${redirect}`);
      }
      if (attempt >= maxAttempts)
        throw this.failure('transient', request, attempt, status, excerpt, httpStatus(status));
      failures++;
      let delay = this.backoffMs(failures);
      const retryAfter = parseRetryAfter(headers['retry-after']);
      if (retryAfter !== undefined) {
        const cap = this.options.maxRetryAfterMs ?? MAX_RETRY_AFTER_MS;
        if (retryAfter > cap) {
          const why = `${httpStatus(status)}, and the server asks to retry after ${Math.ceil(retryAfter / 1000)} s (more than ${Math.ceil(cap / 1000)} s)`;
          throw this.failure('transient', request, attempt, status, excerpt, why);
        }
        delay = retryAfter;
        // A 429/503 with Retry-After speaks for the whole API: hold back the other requests too.
        if (status === 429 || status === 503) this.pauses.pause(origin, Date.now() + retryAfter, 'retry_after');
      }
      await this.backoff(request, attempt, status, null, delay, signal);
    }
  }

  stats(): HttpStats {
    return {
      ...this.counters,
      throttledMs: Math.round(this.counters.throttledMs),
      statusCounts: { ...this.statusCounts },
      maxInFlight: this.limiter.maxInFlight,
      concurrencyLimit: this.limiter.limit,
    };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  /** One attempt: slot, credentials, budgets, then the request itself. */
  private async attempt(request: HttpRequest, origin: string, signal: AbortSignal): Promise<AttemptResult> {
    await this.limiter.acquire(signal);
    try {
      const sent: HttpRequest = { ...request, headers: { ...request.headers } };
      await this.options.authenticator?.apply(sent, signal);
      // Budgets last, right before sending: a start recorded earlier than the real one could let
      // real starts bunch up beyond the budget.
      const settle = await this.gate(request, origin, signal);
      const startedAt = performance.now();
      const result = await withSpan(
        'http.request',
        {
          'http.request.method': request.method,
          'url.full': this.redactText(request.url),
          'dip.resource': request.resource,
        },
        async (span) => {
          const r = await this.dispatch(sent, signal, settle);
          if (r.kind === 'response') span.setAttribute('http.response.status_code', r.status);
          else span.fail(r.error);
          return r;
        },
      );
      if (result.kind === 'response') result.sent = sent; // with the credentials it carried, for onUnauthorized
      this.counters.requests++;
      if (result.kind === 'response') {
        const { status } = result;
        this.statusCounts[String(status)] = (this.statusCounts[String(status)] ?? 0) + 1;
        this.emit({
          type: 'response',
          resource: request.resource,
          url: this.redactText(request.url),
          status,
          elapsedMs: Math.round(result.elapsedMs),
          bytes: result.body.length,
        });
        const overloaded = status === 429 || status >= 500;
        this.limiter.record({ overloaded, startedAt, latencyMs: status < 300 ? result.elapsedMs : undefined });
      } else if (result.timedOut) {
        this.limiter.record({ overloaded: true, startedAt });
      }
      return result;
    } finally {
      this.limiter.release();
    }
  }

  /**
   * Waits until the host and resource budgets and any server pause allow a start, then takes
   * the budgets; the returned function settles the slots when the response arrives.
   */
  private async gate(request: HttpRequest, origin: string, signal: AbortSignal): Promise<() => void> {
    const budgets = [this.hostBudget, this.resourceBudgets.get(request.resource)].filter(
      (b): b is SlidingWindowBudget => b !== undefined,
    );
    const began = performance.now();
    let reason: 'budget' | ServerPause['reason'] | undefined;
    for (;;) {
      const mono = performance.now();
      const wall = Date.now();
      const pause = this.pauses.active(origin, wall);
      const pauseWait = pause === undefined ? 0 : pause.until - wall;
      const budgetWait = Math.max(0, ...budgets.map((b) => b.waitMs(mono)));
      if (pauseWait <= 0 && budgetWait <= 0) break;
      reason ??= pause !== undefined && pauseWait >= budgetWait ? pause.reason : 'budget';
      if (pauseWait > 0 || Number.isFinite(budgetWait)) {
        await sleep(Math.ceil(Math.max(pauseWait, budgetWait)), signal);
      } else {
        const blocked = budgets.filter((b) => b.waitMs(mono) === Number.POSITIVE_INFINITY);
        await untilAborted(Promise.race(blocked.map((b) => b.settledOnce())), signal);
      }
    }
    const slots = budgets.map((b) => b.take());
    let shared: SharedBudgetSlot[];
    try {
      shared = await this.takeShared(request, signal, () => {
        reason ??= 'budget';
      });
    } catch (err) {
      for (const slot of slots) slot.settle(performance.now());
      throw err;
    }
    if (reason !== undefined) {
      const waited = performance.now() - began;
      this.counters.throttledMs += waited;
      this.emit({
        type: 'throttled',
        resource: request.resource,
        url: this.redactText(request.url),
        waitMs: Math.round(waited),
        reason,
      });
    }
    return () => {
      const at = performance.now();
      for (const slot of slots) slot.settle(at);
      // A slot whose settle is lost still lapses after its lease.
      for (const slot of shared) slot.settle().catch(() => undefined);
    };
  }

  /** Takes the host and resource slots in the deployment-wide budgets, waiting while they are full. */
  private async takeShared(request: HttpRequest, signal: AbortSignal, waited: () => void): Promise<SharedBudgetSlot[]> {
    const shared = this.options.shared;
    if (!shared) return [];
    const wanted: { key: string; budget: RateBudget }[] = [];
    if (this.options.hostBudget) wanted.push({ key: shared.hostKey, budget: this.options.hostBudget });
    const resourceBudget = this.options.resourceBudgets?.[request.resource];
    const resourceKey = shared.resourceKeys[request.resource];
    if (resourceBudget && resourceKey) wanted.push({ key: resourceKey, budget: resourceBudget });
    const taken: SharedBudgetSlot[] = [];
    const leaseMs = this.options.retry.timeoutMs + 5000;
    try {
      for (const { key, budget } of wanted) {
        for (;;) {
          if (signal.aborted) throw interrupted(signal);
          let got;
          try {
            got = await shared.budgets.take(
              key,
              { requests: budget.requests, windowMs: budget.perMs + 1 },
              leaseMs + budget.perMs,
            );
          } catch (err) {
            throw new DipError(
              'transient',
              `the shared rate budget (${shared.budgets.kind}) cannot be reached: ${errorMessage(err)}`,
              { cause: err },
            );
          }
          if ('slot' in got) {
            taken.push(got.slot);
            break;
          }
          waited();
          // The earliest slot lapses then, unless it is still in flight (then it lapses later): ask again soon.
          await sleep(Math.min(Math.max(1, got.waitMs), 100), signal);
        }
      }
    } catch (err) {
      for (const slot of taken) slot.settle().catch(() => undefined);
      throw err;
    }
    return taken;
  }

  /** Sends one attempt with its timeout; `settle` runs as soon as the response headers (or a failure) arrive. */
  private async dispatch(req: HttpRequest, signal: AbortSignal, settle: () => void): Promise<AttemptResult> {
    const timeoutMs = this.options.retry.timeoutMs;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DipError('transient', `request timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const started = performance.now();
    try {
      const res = await undiciRequest(req.url, {
        dispatcher: this.agent,
        method: req.method,
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
      });
      settle();
      const body = Buffer.from(await res.body.arrayBuffer());
      return {
        kind: 'response',
        status: res.statusCode,
        headers: normalizeHeaders(res.headers),
        body,
        elapsedMs: performance.now() - started,
      };
    } catch (error) {
      if (signal.aborted) throw interrupted(signal);
      return { kind: 'error', error, timedOut, elapsedMs: performance.now() - started };
    } finally {
      settle();
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private actionsFor(resource: string): Array<Record<string, ResponseAction>> {
    const own = this.options.resourceResponseActions?.[resource];
    return own === undefined ? [this.actions] : [own, this.actions];
  }

  private backoffMs(failures: number): number {
    return computeBackoff(this.options.retry, failures, this.options.random);
  }

  private async backoff(
    request: HttpRequest,
    attempt: number,
    status: number | null,
    error: string | null,
    delayMs: number,
    signal: AbortSignal,
  ): Promise<void> {
    this.counters.retries++;
    this.emit({
      type: 'retry',
      resource: request.resource,
      url: this.redactText(request.url),
      attempt,
      status,
      error,
      delayMs,
    });
    await sleep(delayMs, signal);
  }

  private failure(
    kind: 'transient' | 'input',
    request: HttpRequest,
    attempts: number,
    status: number | null,
    bodyExcerpt: string,
    reason: string,
    cause?: unknown,
  ): HttpRequestError {
    const url = this.redactText(request.url);
    const tries = kind === 'transient' ? ` after ${attempts} attempt${attempts === 1 ? '' : 's'}` : '';
    const message = `${request.method} ${url} failed${tries}: ${reason}${bodyExcerpt ? `: ${bodyExcerpt}` : ''}`;
    return new HttpRequestError(
      kind,
      message,
      { method: request.method, url, resource: request.resource, status, bodyExcerpt, attempts },
      cause,
    );
  }

  /** The start of a body as one line, redacted, at most 300 characters. */
  private excerpt(body: Buffer): string {
    // Redact before cutting, so a secret is never cut into a fragment redaction cannot match.
    const text = this.redactText(body.subarray(0, 16_384).toString('utf8')).replace(/\s+/g, ' ').trim();
    return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS - 1)}…` : text;
  }

  private redactText(text: string): string {
    let out = this.options.redact(text);
    // Credentials refreshed after the caller built `redact` (rotated tokens) are masked too.
    for (const secret of this.options.authenticator?.secrets() ?? []) {
      if (secret.length >= 4) out = out.split(secret).join('***');
    }
    return out;
  }

  private emit(event: HttpEvent): void {
    this.options.onEvent?.(event);
  }
}
