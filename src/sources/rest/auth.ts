/**
 * Over 400 lines: every REST auth scheme side by side, each small.
 *
 * Authentication of REST sources: static credentials (API key, bearer, basic, header templates)
 * and OAuth2 (client credentials, refresh token with rotation), all behind one `Authenticator`.
 * OAuth2 tokens are fetched lazily on the first request, cached with their expiry and renewed
 * by one shared request however many callers need them at once.
 */
import { sleep } from './http/retry.js';
import { request as undiciRequest } from 'undici';
import type { RestAuthConfig } from '../../config/rest.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { Authenticator, HttpRequest, StateStore } from './http/types.js';
import { redact as redactForms, secretRegistry } from '../../config/secrets.js';
import {
  decryptState,
  deriveStateKey,
  encryptState,
  isEncryptedState,
  projectStateKey,
  type StateKey,
} from './state-crypto.js';

export interface TokenRequestInit {
  method: string;
  headers: Record<string, string>;
  body: string;
}

export interface TokenResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends one request to a token endpoint; the authenticator does the retrying. */
export type FetchToken = (url: string, init: TokenRequestInit, signal: AbortSignal) => Promise<TokenResponse>;

export interface AuthContext {
  baseUrl: string;
  /** Where a rotated refresh token is kept between runs. */
  state: StateStore;
  fetchToken?: FetchToken;
  /** Where `.dip/state-key` is (the project directory), when no auth.state_key is given. */
  projectDir?: string;
}

type OAuthConfig = Extract<RestAuthConfig, { type: 'oauth2_client_credentials' | 'oauth2_refresh_token' }>;

/** What `oauth2_refresh_token` keeps in the source state. */
interface StoredRefreshToken {
  refresh_token: string;
  rotated_at: string;
}

const DEFAULT_EXPIRES_IN_S = 3600;
const TOKEN_ATTEMPTS = 3;
const TOKEN_BACKOFF_MS = 250;
const TOKEN_TIMEOUT_MS = 30_000;
/** A token rejected this soon after it was issued points at a loop rather than an expiry. */
const FRESH_MS = 1000;
const MAX_FRESH_REJECTIONS = 2;

export function createAuthenticator(config: RestAuthConfig, context: AuthContext): Authenticator {
  switch (config.type) {
    case 'api_key': {
      const { name, value } = config;
      return {
        apply: async (request) => {
          if (config.in === 'header') setHeader(request.headers, name, value);
          else if (config.in === 'query') {
            const url = new URL(request.url);
            url.searchParams.set(name, value);
            request.url = url.toString();
          } else setCookie(request.headers, name, value);
        },
        secrets: () => [value],
      };
    }
    case 'bearer':
      return staticHeaders({ Authorization: `Bearer ${config.token}` }, [config.token]);
    case 'basic': {
      const encoded = Buffer.from(`${config.username}:${config.password}`).toString('base64');
      return staticHeaders({ Authorization: `Basic ${encoded}` }, [config.password, encoded]);
    }
    case 'headers': {
      const headers = renderHeaderTemplates(config.headers, config.secrets);
      const templated = Object.keys(config.headers).filter((h) => /\{[^{}]+\}/.test(config.headers[h] ?? ''));
      return staticHeaders(headers, [...Object.values(config.secrets), ...templated.map((h) => headers[h] ?? '')]);
    }
    case 'oauth2_client_credentials':
    case 'oauth2_refresh_token':
      return new OAuth2Authenticator(config, context);
  }
}

function staticHeaders(headers: Record<string, string>, secrets: string[]): Authenticator {
  const values = secrets.filter((s) => s !== '');
  return {
    apply: async (request) => {
      for (const [name, value] of Object.entries(headers)) setHeader(request.headers, name, value);
    },
    secrets: () => values,
  };
}

function renderHeaderTemplates(
  templates: Record<string, string>,
  secrets: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [header, template] of Object.entries(templates)) {
    out[header] = template.replace(/\{([^{}]+)\}/g, (_, name: string) => {
      const value = secrets[name];
      if (value === undefined) {
        const known = Object.keys(secrets);
        throw new DipError(
          'config',
          `auth header "${header}" uses the placeholder {${name}}, which auth.secrets does not define` +
            (known.length ? ` (defined: ${known.join(', ')})` : ' (auth.secrets is empty)'),
        );
      }
      return value;
    });
  }
  return out;
}

/** Sets a header, replacing any spelling of it that differs only in case. */
function setHeader(headers: Record<string, string>, name: string, value: string): void {
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name.toLowerCase()) delete headers[key];
  headers[name] = value;
}

/** A header's value, whatever the case of its name. */
function headerValue(headers: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : headers[key];
}

function setCookie(headers: Record<string, string>, name: string, value: string): void {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === 'cookie');
  const others = (key === undefined ? '' : (headers[key] ?? ''))
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && part.split('=')[0]?.trim() !== name);
  setHeader(headers, key ?? 'Cookie', [...others, `${name}=${value}`].join('; '));
}

interface CachedToken {
  accessToken: string;
  /** When the token request was sent: expiry counts from there, to be safe. */
  fetchedAt: number;
  expiresAt: number;
}

class OAuth2Authenticator implements Authenticator {
  private readonly tokenUrl: string;
  private readonly refreshBeforeMs: number;
  private readonly fetchToken: FetchToken;
  private readonly renewal = new SharedTask<CachedToken>();
  private token: CachedToken | undefined;
  /** Every access token issued so far: requests still in flight may carry an older one. */
  private readonly issued = new Set<string>();
  private freshRejections = 0;
  /** `oauth2_refresh_token`: the token to use next, once loaded from state. */
  private refreshToken: string | undefined;
  private readonly refreshTokens = new Set<string>();
  private key: StateKey | undefined;

  constructor(
    private readonly config: OAuthConfig,
    private readonly context: AuthContext,
  ) {
    this.tokenUrl = resolveTokenUrl(context.baseUrl, config.token_url);
    this.refreshBeforeMs = durationMs(config.refresh_before, 'auth.refresh_before');
    this.fetchToken = context.fetchToken ?? defaultFetchToken;
    if (config.type === 'oauth2_refresh_token') this.refreshTokens.add(config.refresh_token);
  }

  async apply(request: HttpRequest, signal: AbortSignal): Promise<void> {
    const token = this.token !== undefined && this.usable(this.token) ? this.token : await this.renew(signal);
    setHeader(request.headers, 'Authorization', `Bearer ${token.accessToken}`);
  }

  async onUnauthorized(signal: AbortSignal, request?: HttpRequest): Promise<boolean> {
    if (this.renewal.running) {
      await this.renew(signal);
      return true;
    }
    const sentWith = request && headerValue(request.headers, 'Authorization');
    if (sentWith !== undefined && this.token !== undefined && sentWith !== `Bearer ${this.token.accessToken}`) {
      return true; // refused an older token; the current one has not been tried
    }
    const rejected = this.token;
    if (rejected !== undefined && Date.now() - rejected.fetchedAt < FRESH_MS) {
      if (this.freshRejections >= MAX_FRESH_REJECTIONS) return false;
      this.freshRejections += 1;
    } else {
      this.freshRejections = 0;
    }
    this.token = undefined;
    await this.renew(signal);
    return true;
  }

  secrets(): string[] {
    const out = [...this.issued, ...this.refreshTokens];
    const secret = this.config.client_secret;
    if (secret !== undefined && secret !== '') {
      out.push(secret);
      if (this.config.client_auth === 'basic') out.push(basicClientAuth(this.config.client_id, secret));
    }
    return out;
  }

  private usable(token: CachedToken): boolean {
    // A token that lives shorter than refresh_before would otherwise be renewed on every request.
    const margin = Math.min(this.refreshBeforeMs, (token.expiresAt - token.fetchedAt) / 2);
    return Date.now() < token.expiresAt - margin;
  }

  private renew(signal: AbortSignal): Promise<CachedToken> {
    return this.renewal.run(async (shared) => {
      const token = await this.requestToken(shared);
      this.token = token;
      return token;
    }, signal);
  }

  private async requestToken(signal: AbortSignal): Promise<CachedToken> {
    const c = this.config;
    const form = new URLSearchParams();
    let usedRefreshToken: string | undefined;
    if (c.type === 'oauth2_client_credentials') {
      form.set('grant_type', 'client_credentials');
      if (c.scope !== undefined) form.set('scope', c.scope);
      if (c.audience !== undefined) form.set('audience', c.audience);
    } else {
      usedRefreshToken = await this.currentRefreshToken();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', usedRefreshToken);
    }
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (c.client_auth === 'basic') headers['authorization'] = basicClientAuth(c.client_id, c.client_secret ?? '');
    else {
      form.set('client_id', c.client_id);
      if (c.client_secret !== undefined) form.set('client_secret', c.client_secret);
    }
    for (const [name, value] of Object.entries(c.extra_params ?? {})) form.set(name, value);

    const fetchedAt = Date.now();
    let body: Record<string, unknown>;
    try {
      body = await this.post(form.toString(), headers, signal);
    } catch (err) {
      // The stored (rotated) token may be stale while the configured one was renewed by hand.
      if (
        usedRefreshToken !== undefined &&
        c.type === 'oauth2_refresh_token' &&
        usedRefreshToken !== c.refresh_token &&
        isInvalidGrant(err)
      ) {
        this.refreshToken = c.refresh_token;
        return this.requestToken(signal);
      }
      throw err;
    }

    const accessToken = body['access_token'];
    if (typeof accessToken !== 'string' || accessToken === '') {
      throw new DipError('input', `OAuth token endpoint ${this.tokenUrl} answered without an access_token`);
    }
    this.issued.add(accessToken);
    secretRegistry.add(accessToken);
    const rotated = body['refresh_token'];
    if (typeof rotated === 'string' && rotated !== '' && rotated !== usedRefreshToken) {
      this.refreshToken = rotated;
      this.refreshTokens.add(rotated);
      secretRegistry.add(rotated);
      // The old refresh token is spent: the new one must be durable before the run relies on it.
      await this.saveRefreshToken(rotated);
    }
    return { accessToken, fetchedAt, expiresAt: fetchedAt + expiresInSeconds(body['expires_in']) * 1000 };
  }

  private async currentRefreshToken(): Promise<string> {
    if (this.refreshToken === undefined && this.config.type === 'oauth2_refresh_token') {
      const raw = await this.context.state.load();
      const stored = isEncryptedState(raw) ? decryptState(raw, this.stateKey(), 'auth (oauth2_refresh_token)') : raw;
      this.refreshToken = isStoredRefreshToken(stored) ? stored.refresh_token : this.config.refresh_token;
      this.refreshTokens.add(this.refreshToken);
      secretRegistry.add(this.refreshToken);
      // A token stored in clear (before state encryption) is re-written encrypted.
      if (isStoredRefreshToken(raw)) await this.saveRefreshToken(raw.refresh_token, raw.rotated_at);
    }
    return this.refreshToken ?? '';
  }

  /** The refresh token goes to the catalog encrypted (AES-256-GCM, key by reference or .dip/state-key). */
  private async saveRefreshToken(token: string, rotatedAt = new Date().toISOString()): Promise<void> {
    const stored: StoredRefreshToken = { refresh_token: token, rotated_at: rotatedAt };
    await this.context.state.save(encryptState(stored, this.stateKey()));
  }

  private stateKey(): StateKey {
    if (this.key !== undefined) return this.key;
    const c = this.config;
    if (c.type === 'oauth2_refresh_token' && c.state_key !== undefined)
      this.key = deriveStateKey(c.state_key, 'auth.state_key');
    else if (this.context.projectDir !== undefined) this.key = projectStateKey(this.context.projectDir);
    else
      throw new DipError(
        'config',
        'auth (oauth2_refresh_token): no key to encrypt the rotated refresh token with; set auth.state_key (e.g. ${env:DIP_STATE_KEY})',
      );
    return this.key;
  }

  /** POSTs the form, retrying network failures, 429 and 5xx; returns the JSON body of a 2xx. */
  private async post(
    body: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<Record<string, unknown>> {
    let lastProblem = '';
    for (let attempt = 1; attempt <= TOKEN_ATTEMPTS; attempt++) {
      if (attempt > 1) await sleep(TOKEN_BACKOFF_MS * 2 ** (attempt - 2), signal);
      let res: TokenResponse;
      try {
        res = await this.fetchToken(
          this.tokenUrl,
          { method: 'POST', headers, body },
          AbortSignal.any([signal, AbortSignal.timeout(TOKEN_TIMEOUT_MS)]),
        );
      } catch (err) {
        if (signal.aborted) throw interrupted(signal);
        lastProblem = this.redact(errorMessage(err));
        continue;
      }
      const text = res.body.toString('utf8');
      if (res.status >= 200 && res.status < 300) {
        const json = parseJsonObject(text);
        if (json === undefined)
          throw new DipError(
            'input',
            `OAuth token endpoint ${this.tokenUrl} answered HTTP ${res.status} without a JSON object: ${this.excerpt(text)}`,
          );
        return json;
      }
      if (res.status === 408 || res.status === 429 || res.status >= 500) {
        lastProblem = `HTTP ${res.status}`;
        continue;
      }
      const json = parseJsonObject(text);
      const error = typeof json?.['error'] === 'string' ? json['error'] : undefined;
      const description = typeof json?.['error_description'] === 'string' ? json['error_description'] : undefined;
      const detail =
        error !== undefined ? [error, description].filter((s) => s !== undefined).join(': ') : this.excerpt(text);
      throw new DipError(
        'input',
        this.redact(`OAuth token endpoint ${this.tokenUrl} refused the token request (HTTP ${res.status}): ${detail}`),
        {
          details: { status: res.status, ...(error !== undefined ? { error } : {}) },
        },
      );
    }
    throw new DipError(
      'transient',
      `OAuth token endpoint ${this.tokenUrl} failed ${TOKEN_ATTEMPTS} times; last: ${lastProblem}`,
    );
  }

  /** Every encoded form (form-encoded as in the token request body, base64…) of every credential. */
  private redact(text: string): string {
    return redactForms(text, this.secrets());
  }

  private excerpt(text: string): string {
    const oneLine = text.replace(/\s+/g, ' ').trim();
    return this.redact(oneLine.length > 200 ? `${oneLine.slice(0, 200)}…` : oneLine || '(empty body)');
  }
}

/** RFC 6749 §2.3.1: id and secret are form-encoded before they are joined and base64-encoded. */
function basicClientAuth(id: string, secret: string): string {
  const enc = (s: string) => new URLSearchParams({ v: s }).toString().slice(2);
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/** Absolute URLs as they are; others join base_url the way resource paths do. */
function resolveTokenUrl(baseUrl: string, tokenUrl: string): string {
  const joined = /^[a-z][a-z0-9+.-]*:\/\//i.test(tokenUrl)
    ? tokenUrl
    : `${baseUrl.replace(/\/+$/, '')}/${tokenUrl.replace(/^\/+/, '')}`;
  try {
    return new URL(joined).toString();
  } catch {
    throw new DipError('config', `auth.token_url: "${tokenUrl}" is not a URL (nor a path under base_url ${baseUrl})`);
  }
}

function expiresInSeconds(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : DEFAULT_EXPIRES_IN_S;
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function isStoredRefreshToken(value: unknown): value is StoredRefreshToken {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { refresh_token?: unknown }).refresh_token === 'string' &&
    (value as { refresh_token: string }).refresh_token !== ''
  );
}

function isInvalidGrant(err: unknown): boolean {
  return err instanceof DipError && err.kind === 'input' && err.details['error'] === 'invalid_grant';
}

const defaultFetchToken: FetchToken = async (url, init, signal) => {
  const res = await undiciRequest(url, { method: 'POST', headers: init.headers, body: init.body, signal });
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return { status: res.statusCode, headers, body: Buffer.from(await res.body.arrayBuffer()) };
};

function interrupted(signal: AbortSignal): DipError {
  const reason: unknown = signal.reason;
  return new DipError('interrupted', 'OAuth token request interrupted', reason === undefined ? {} : { cause: reason });
}

interface SharedRun<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: Map<AbortSignal, { onAbort: () => void; rejects: Array<(err: unknown) => void> }>;
}

/**
 * One run of a task shared by every caller that asks while it runs. Callers can give up on their
 * own signals; the task itself is aborted only when all of them have. Callers usually share one
 * signal, so each distinct signal gets a single listener, however many callers wait on it.
 */
class SharedTask<T> {
  private current: SharedRun<T> | undefined;

  get running(): boolean {
    return this.current !== undefined;
  }

  run(task: (signal: AbortSignal) => Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(interrupted(signal));
    const run = this.current ?? this.start(task);
    let waiter = run.waiters.get(signal);
    if (waiter === undefined) {
      const rejects: Array<(err: unknown) => void> = [];
      const onAbort = (): void => {
        run.waiters.delete(signal);
        if (run.waiters.size === 0) {
          if (this.current === run) this.current = undefined;
          run.controller.abort(signal.reason);
        }
        for (const reject of rejects) reject(interrupted(signal));
      };
      waiter = { onAbort, rejects };
      run.waiters.set(signal, waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    const { rejects } = waiter;
    return new Promise<T>((resolve, reject) => {
      rejects.push(reject);
      run.promise.then(resolve, reject);
    });
  }

  private start(task: (signal: AbortSignal) => Promise<T>): SharedRun<T> {
    const controller = new AbortController();
    const run: SharedRun<T> = { promise: task(controller.signal), controller, waiters: new Map() };
    const settle = (): void => {
      if (this.current === run) this.current = undefined;
      for (const [signal, { onAbort }] of run.waiters) signal.removeEventListener('abort', onAbort);
      run.waiters.clear();
    };
    run.promise.then(settle, settle);
    this.current = run;
    return run;
  }
}
