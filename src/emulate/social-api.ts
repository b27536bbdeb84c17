/**
 * Over 400 lines: the emulator's routes, paginations and failure modes side by side.
 *
 * A local HTTP emulator of a TikTok/Instagram-style social metrics API, for the demo, tests and
 * benchmarks: OAuth2 client credentials, cursor- and offset-paginated resources, per-token rate
 * limits with 429 + Retry-After, seeded 500s, added latency, and data that changes as the
 * logical clock advances (see social-data.ts).
 *
 *   const api = await SocialApiEmulator.start({ seed: 7, posts: 1000 });
 *   api.url            // http://127.0.0.1:PORT/v1
 *   api.advance(3_600_000);
 *   await api.close();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SlidingWindow } from './rate-window.js';
import { type SocialWebhookOptions, SocialWebhooks } from './social-webhooks.js';
import {
  SocialDataset,
  mix,
  mulberry32,
  type AdvanceResult,
  type PostKey,
  type SocialDataOptions,
} from './social-data.js';

export interface RateLimit {
  requests: number;
  windowMs: number;
}

export interface SocialApiOptions extends SocialDataOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Default "dip-demo". */
  clientId?: string;
  /** Default "dip-demo-secret". */
  clientSecret?: string;
  /** Token lifetime in seconds (default 3600), measured in real time. */
  tokenExpiresIn?: number;
  /** Per-token budget (default 600 per 60 s); null disables rate limiting. */
  rateLimit?: RateLimit | null;
  /** Probability that an admitted data request fails with 500 (default 0). */
  errorRate?: number;
  /** Delay added to every response, in ms (default 0). */
  latencyMs?: number;
  /** When set, the logical clock also follows real time at this speed (60 = one hour per minute). */
  clockSpeed?: number;
  /** Callbacks on new and updated posts (signed, some redelivered, a seeded share dropped). */
  webhook?: SocialWebhookOptions;
}

/** Settings that can change while the emulator runs. */
export interface SocialApiRuntime {
  errorRate?: number;
  latencyMs?: number;
  rateLimit?: RateLimit | null;
}

export interface SocialApiStats {
  requests: number;
  /** By route template, e.g. "/v1/posts/{id}/comments"; unknown paths count as "other". */
  byPath: Record<string, number>;
  byStatus: Record<string, number>;
  /** 429 responses. */
  rateLimited: number;
  /** 500 responses. */
  serverErrors: number;
  tokenRequests: number;
  /** Most admitted requests any one token made within one rate window (sliding, by start time). */
  maxRequestsInWindow: number;
}

export const DEFAULT_CLIENT_ID = 'dip-demo';
export const DEFAULT_CLIENT_SECRET = 'dip-demo-secret';
export const DEFAULT_RATE_LIMIT: RateLimit = { requests: 600, windowMs: 60_000 };
const MAX_LIMIT = 500;
const DEFAULT_LIMIT = 50;

interface Reply {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface TokenState {
  expiresAt: number;
  window: SlidingWindow;
}

const json = (status: number, value: unknown, headers?: Record<string, string>): Reply => ({
  status,
  body: JSON.stringify(value),
  ...(headers ? { headers } : {}),
});

function emptyStats(): SocialApiStats {
  return {
    requests: 0,
    byPath: {},
    byStatus: {},
    rateLimited: 0,
    serverErrors: 0,
    tokenRequests: 0,
    maxRequestsInWindow: 0,
  };
}

function encodeCursor(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, pattern: RegExp): RegExpExecArray {
  const match = pattern.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw new ApiError(400, 'invalid_cursor', `cursor "${cursor}" is not one this API returned`);
  return match;
}

function wholeParam(params: URLSearchParams, name: string, fallback: number, min: number): number {
  const text = params.get(name);
  if (text === null || text === '') return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min)
    throw new ApiError(400, 'invalid_request', `${name}=${text}: expected a whole number >= ${min}`);
  return Number(text);
}

const limitParam = (params: URLSearchParams) => Math.min(MAX_LIMIT, wholeParam(params, 'limit', DEFAULT_LIMIT, 1));

function routeKey(path: string): string {
  if (path === '/v1/oauth/token' || path === '/v1/posts' || path === '/v1/accounts') return path;
  const m = /^\/v1\/posts\/[^/]+\/(comments|insights)$/.exec(path);
  return m ? `/v1/posts/{id}/${m[1]}` : 'other';
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > maxBytes) throw new ApiError(413, 'invalid_request', 'request body too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** client_id and client_secret from an HTTP Basic header (RFC 6749 §2.3.1: form-encoded parts). */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const part = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { id: part(decoded.slice(0, colon)), secret: part(decoded.slice(colon + 1)) };
}

export class SocialApiEmulator {
  /** Base URL, e.g. http://127.0.0.1:PORT/v1. */
  readonly url: string;
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly data: SocialDataset;
  /** The webhook sender once `webhook` was configured: `flush()`, `stats.dropped`. */
  webhooks: SocialWebhooks | undefined;
  private readonly tokens = new Map<string, TokenState>();
  private readonly tokenRng: () => number;
  private readonly errorRng: () => number;
  private readonly tokenExpiresIn: number;
  private readonly clockSpeed: number;
  private errorRate: number;
  private latencyMs: number;
  private rateLimit: RateLimit | null;
  private counters = emptyStats();
  /** Arrival time (performance.now) of every data request, in order. */
  private readonly arrivals: number[] = [];
  private lastSync = performance.now();
  private readonly closing = new AbortController();

  private constructor(
    private readonly server: Server,
    options: SocialApiOptions,
  ) {
    const { port } = server.address() as AddressInfo;
    this.url = `http://${options.host ?? '127.0.0.1'}:${port}/v1`;
    this.tokenUrl = `${this.url}/oauth/token`;
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.clientSecret = options.clientSecret ?? DEFAULT_CLIENT_SECRET;
    this.data = new SocialDataset(options);
    this.webhooks = options.webhook ? new SocialWebhooks(options.webhook) : undefined;
    this.tokenRng = mulberry32(mix(this.data.seed, 5));
    this.errorRng = mulberry32(mix(this.data.seed, 6));
    this.tokenExpiresIn = options.tokenExpiresIn ?? 3600;
    this.clockSpeed = options.clockSpeed ?? 0;
    this.errorRate = options.errorRate ?? 0;
    this.latencyMs = options.latencyMs ?? 0;
    this.rateLimit = options.rateLimit === undefined ? DEFAULT_RATE_LIMIT : options.rateLimit;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res));
  }

  static async start(options: SocialApiOptions = {}): Promise<SocialApiEmulator> {
    const server = createServer({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      return new SocialApiEmulator(server, options);
    } catch (err) {
      server.close();
      throw err;
    }
  }

  /** The logical clock, ISO 8601 UTC. */
  get clock(): string {
    this.syncClock();
    return new Date(this.data.clockMs).toISOString();
  }

  /** Moves the logical clock forward: new posts appear and some metrics grow. */
  advance(ms: number): AdvanceResult {
    this.syncClock();
    return this.notify(this.data.advance(ms));
  }

  private notify(r: AdvanceResult): AdvanceResult {
    const hooks = this.webhooks;
    if (hooks && (r.created.length || r.updated.length)) {
      const posts = (ids: string[]) => ids.map((id) => this.data.getPost(id)).filter((p) => p !== undefined);
      hooks.emit(r.clock, posts(r.created), posts(r.updated));
    }
    return r;
  }

  /** Starts calling back (from the next `advance` on), e.g. once the receiving gateway listens. */
  enableWebhooks(options: SocialWebhookOptions): SocialWebhooks {
    this.webhooks = new SocialWebhooks(options);
    return this.webhooks;
  }

  configure(changes: SocialApiRuntime): void {
    if (changes.errorRate !== undefined) this.errorRate = changes.errorRate;
    if (changes.latencyMs !== undefined) this.latencyMs = changes.latencyMs;
    if (changes.rateLimit !== undefined) this.rateLimit = changes.rateLimit;
  }

  stats(): SocialApiStats {
    const c = this.counters;
    return { ...c, byPath: { ...c.byPath }, byStatus: { ...c.byStatus } };
  }

  resetStats(): void {
    this.counters = emptyStats();
  }

  /** Stops listening and drops open connections; pending delayed responses are abandoned. */
  async close(): Promise<void> {
    this.closing.abort();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private syncClock(): void {
    if (this.clockSpeed <= 0) return;
    const now = performance.now();
    const logical = Math.floor((now - this.lastSync) * this.clockSpeed);
    if (logical < 1) return;
    this.lastSync += logical / this.clockSpeed;
    this.notify(this.data.advance(logical));
  }

  /**
   * Most data requests (every route but the token endpoint) that arrived within any `windowMs`
   * (sliding, every token together): what a budget shared by several clients keeps under its limit.
   */
  maxArrivalsInWindow(windowMs: number): number {
    const a = this.arrivals;
    let best = 0;
    for (let i = 0, j = 0; j < a.length; j++) {
      while ((a[j] as number) - (a[i] as number) >= windowMs) i++;
      best = Math.max(best, j - i + 1);
    }
    return best;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const c = this.counters;
    c.requests++;
    let reply: Reply;
    try {
      const url = new URL(req.url ?? '/', 'http://emulator');
      const key = routeKey(url.pathname);
      c.byPath[key] = (c.byPath[key] ?? 0) + 1;
      this.syncClock();
      reply = key === '/v1/oauth/token' ? await this.token(req) : this.dataRequest(req, url, key, arrived);
    } catch (err) {
      if (err instanceof ApiError)
        reply = json(err.status, { error: err.code, error_description: err.message }, err.headers);
      else
        reply = json(500, {
          error: 'internal_error',
          error_description: err instanceof Error ? err.message : String(err),
        });
    }
    c.byStatus[reply.status] = (c.byStatus[reply.status] ?? 0) + 1;
    if (reply.status === 429) c.rateLimited++;
    if (reply.status === 500) c.serverErrors++;
    if (this.latencyMs > 0) {
      try {
        await sleep(this.latencyMs, undefined, { signal: this.closing.signal });
      } catch {
        return;
      }
    }
    if (res.destroyed) return;
    const body = Buffer.from(reply.body, 'utf8');
    res.writeHead(reply.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': body.length,
      ...reply.headers,
    });
    res.end(body);
  }

  private async token(req: IncomingMessage): Promise<Reply> {
    this.counters.tokenRequests++;
    if (req.method !== 'POST') throw new ApiError(405, 'invalid_request', 'use POST', { allow: 'POST' });
    const params = new URLSearchParams(await readBody(req, 64 * 1024));
    const basic = basicCredentials(req.headers.authorization);
    const id = basic?.id ?? params.get('client_id');
    const secret = basic?.secret ?? params.get('client_secret');
    const grant = params.get('grant_type');
    if (!grant) throw new ApiError(400, 'invalid_request', 'grant_type is required');
    if (grant !== 'client_credentials')
      throw new ApiError(400, 'unsupported_grant_type', `grant_type ${grant} is not supported; use client_credentials`);
    if (id !== this.clientId || secret !== this.clientSecret) {
      throw new ApiError(401, 'invalid_client', 'unknown client or wrong secret', {
        'www-authenticate': 'Basic realm="social-api"',
      });
    }
    let token = 'sat_';
    for (let i = 0; i < 4; i++)
      token += Math.floor(this.tokenRng() * 0x100000000)
        .toString(16)
        .padStart(8, '0');
    this.tokens.set(token, { expiresAt: Date.now() + this.tokenExpiresIn * 1000, window: new SlidingWindow() });
    return json(
      200,
      { access_token: token, token_type: 'Bearer', expires_in: this.tokenExpiresIn },
      { 'cache-control': 'no-store' },
    );
  }

  private authorize(req: IncomingMessage): TokenState {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const state = m?.[1] ? this.tokens.get(m[1]) : undefined;
    const fail = (description: string) =>
      new ApiError(401, 'invalid_token', description, {
        'www-authenticate': `Bearer realm="social-api", error="invalid_token"`,
      });
    if (!m?.[1]) throw fail('a bearer token is required');
    if (!state) throw fail('unknown access token');
    if (Date.now() >= state.expiresAt) {
      this.tokens.delete(m[1]);
      throw fail('the access token has expired');
    }
    return state;
  }

  /** Auth, then the rate budget, then fault injection, then the endpoint. */
  private dataRequest(req: IncomingMessage, url: URL, key: string, arrived: number): Reply {
    if (key === 'other') throw new ApiError(404, 'not_found', `no endpoint ${url.pathname}`);
    if (req.method !== 'GET')
      throw new ApiError(405, 'invalid_request', `${req.method ?? ''} is not allowed; use GET`, { allow: 'GET' });
    this.arrivals.push(arrived);
    const token = this.authorize(req);
    const limits = this.admit(token, arrived);
    const fail = this.errorRng() < this.errorRate;
    try {
      if (fail) throw new ApiError(500, 'internal_error', 'injected failure: retry the request');
      return { ...this.endpoint(url, key), headers: limits };
    } catch (err) {
      if (err instanceof ApiError) throw new ApiError(err.status, err.code, err.message, { ...limits, ...err.headers });
      throw err;
    }
  }

  /** Counts the request against the token's window; returns the X-RateLimit-* headers. */
  private admit(token: TokenState, arrived: number): Record<string, string> {
    const limit = this.rateLimit;
    if (!limit) return {};
    const d = token.window.take(arrived, limit.requests, limit.windowMs);
    const headers = {
      'x-ratelimit-limit': String(limit.requests),
      'x-ratelimit-remaining': String(Math.max(0, limit.requests - d.inWindow)),
      'x-ratelimit-reset': String(Math.ceil((Date.now() + d.freesInMs) / 1000)),
    };
    if (!d.admitted) {
      const seconds = Math.max(1, Math.ceil(d.freesInMs / 1000));
      throw new ApiError(
        429,
        'rate_limited',
        `over ${limit.requests} requests per ${limit.windowMs} ms; retry in ${seconds} s`,
        { ...headers, 'retry-after': String(seconds) },
      );
    }
    this.counters.maxRequestsInWindow = Math.max(this.counters.maxRequestsInWindow, d.inWindow);
    return headers;
  }

  private endpoint(url: URL, key: string): Reply {
    const params = url.searchParams;
    switch (key) {
      case '/v1/posts':
        return this.posts(params);
      case '/v1/accounts': {
        const offset = wholeParam(params, 'offset', 0, 0);
        const limit = limitParam(params);
        const rows = this.data.pageAccounts(offset, limit);
        return {
          status: 200,
          body: `{"data":[${rows.join(',')}],"total":${this.data.accounts.length},"offset":${offset},"limit":${limit}}`,
        };
      }
      default: {
        const [, , , rawId, what] = url.pathname.split('/');
        let id = rawId ?? '';
        try {
          id = decodeURIComponent(id);
        } catch {
          // not percent-encoding after all: look the id up as it is
        }
        return what === 'comments' ? this.comments(id, params) : this.insights(id);
      }
    }
  }

  private posts(params: URLSearchParams): Reply {
    const limit = limitParam(params);
    const cursor = params.get('cursor');
    let after: PostKey | undefined;
    if (cursor) {
      const m = decodeCursor(cursor, /^p:(\d+):(.+)$/);
      after = { updatedMs: Number(m[1]), id: m[2] ?? '' };
    }
    const since = params.get('since');
    const sinceMs = since ? Date.parse(since) : undefined;
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      throw new ApiError(400, 'invalid_request', `since=${since}: expected an ISO 8601 timestamp`);
    const page = this.data.pagePosts(after, sinceMs, limit);
    const next = page.hasMore && page.last ? encodeCursor(`p:${page.last.updatedMs}:${page.last.id}`) : null;
    return {
      status: 200,
      body: `{"data":[${page.json.join(',')}],"paging":${JSON.stringify({ next_cursor: next, has_more: page.hasMore })}}`,
    };
  }

  private comments(postId: string, params: URLSearchParams): Reply {
    const limit = limitParam(params);
    const cursor = params.get('cursor');
    const offset = cursor ? Number(decodeCursor(cursor, /^c:(\d+)$/)[1]) : 0;
    const page = this.data.comments(postId, offset, limit);
    if (!page) throw new ApiError(404, 'not_found', `no post ${postId}`);
    const hasMore = offset + page.data.length < page.total;
    return json(200, {
      data: page.data,
      paging: { next_cursor: hasMore ? encodeCursor(`c:${offset + page.data.length}`) : null, has_more: hasMore },
    });
  }

  private insights(postId: string): Reply {
    const insights = this.data.insights(postId);
    if (!insights) throw new ApiError(404, 'not_found', `no post ${postId}`);
    return json(200, { data: insights });
  }
}
