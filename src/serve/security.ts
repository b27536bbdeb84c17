/**
 * The request guards of `dip serve`, in the order they run on every request (an onRequest hook,
 * before routing does any work):
 *
 * 1. Host: the `Host` header must name this server (its listen address, loopback names when it
 *    listens on loopback or every interface, any IP literal when it listens on every interface,
 *    or a name in serve.allowed_hosts); otherwise 421. A page on another site whose name was
 *    re-pointed at this address (DNS rebinding) sends its own name and is refused.
 * 2. Token: with serve.token set, every route needs `Authorization: Bearer <token>` (401 without,
 *    403 with a wrong one) except /health, /ready and the routes serve.public opens (metrics,
 *    openapi). Unknown paths need it too, so the API cannot be mapped without the token. The
 *    comparison is of SHA-256 digests with timingSafeEqual: it takes the same time whatever the
 *    guess, and equal-length buffers leak no length.
 * 3. Content type: a request that changes state (POST) must say `Content-Type: application/json`
 *    (415 otherwise). Browsers send cross-site forms and no-cors fetches only as form, multipart
 *    or text/plain bodies (or with no body at all); a JSON content type needs a CORS preflight,
 *    which this server never grants.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DipError } from '../core/errors.js';

/** Routes a token can leave open (serve.public). */
export const PUBLIC_ROUTE_NAMES = ['metrics', 'openapi'] as const;
export type PublicRouteName = (typeof PUBLIC_ROUTE_NAMES)[number];

const PUBLIC_PATHS: Record<PublicRouteName, string> = { metrics: '/metrics', openapi: '/openapi.json' };
/** Open whatever the configuration: liveness and readiness probes carry no token. */
export const ALWAYS_OPEN = ['/health', '/ready'] as const;

export const DEFAULT_MAX_BACKFILL_INTERVALS = 1000;

export type GuardErrorKind = 'unauthorized' | 'forbidden' | 'misdirected' | 'unsupported_media_type';

export interface GuardError {
  error: { kind: GuardErrorKind; message: string };
}

/** The route paths (as registered, e.g. /metrics) that need no token. */
export function openPaths(publicRoutes: readonly PublicRouteName[]): Set<string> {
  return new Set<string>([...ALWAYS_OPEN, ...publicRoutes.map((r) => PUBLIC_PATHS[r])]);
}

const LOOPBACK = /^(localhost|::1|\[::1\]|127(?:\.\d{1,3}){3})$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host.trim());
}

const WILDCARD = new Set(['0.0.0.0', '::', '[::]', '']);

/** A host name or address as compared: lower case, no brackets, no trailing dot. */
function normalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** The host part of a Host header value (`name:port`, `[v6]:port`, `v4`), or undefined when it is malformed. */
export function hostOfHeader(value: string): string | undefined {
  const v = value.trim();
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0) return undefined;
    const rest = v.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    return normalHost(v.slice(1, end));
  }
  const m = /^([^:\s]+)(?::(\d{1,5}))?$/.exec(v);
  return m?.[1] === undefined ? undefined : normalHost(m[1]);
}

export interface HostPolicy {
  /** Whether a Host header value names this server. */
  allows(hostHeader: string): boolean;
  /** What is accepted, for the error message. */
  describe(): string;
}

/**
 * Names the server answers to: its listen host; loopback names (localhost, 127.x, ::1) when it
 * listens on loopback or on every interface; any IP literal when it listens on every interface
 * (a request that reached us by address cannot be a rebound name); and serve.allowed_hosts
 * ("*" accepts any host: only behind a proxy that checks it).
 */
export function hostPolicy(listenHost: string, allowedHosts: readonly string[] = []): HostPolicy {
  const listen = normalHost(listenHost);
  const wildcard = WILDCARD.has(listen);
  const loopbackOk = wildcard || isLoopback(listen);
  const names = new Set(allowedHosts.map(normalHost));
  const any = names.has('*');
  return {
    allows(header: string): boolean {
      if (any) return true;
      const host = hostOfHeader(header);
      if (host === undefined) return false;
      if (host === listen || names.has(host)) return true;
      if (loopbackOk && isLoopback(host)) return true;
      return wildcard && isIP(host) !== 0;
    },
    describe(): string {
      if (any) return 'any host';
      const parts = [
        wildcard ? 'any IP address' : listen,
        ...(loopbackOk ? ['localhost', '127.0.0.1', '::1'] : []),
        ...names,
      ];
      return [...new Set(parts)].join(', ');
    },
  };
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function checkedToken(token: string): string {
  if (token.trim() === '')
    throw new DipError(
      'config',
      'serve.token is empty; set a secret (e.g. ${env:DIP_API_TOKEN}) or leave it out on loopback',
    );
  return token;
}

export interface GuardOptions {
  hosts: HostPolicy;
  /** serve.token; none: every route is open (the server then listens on loopback only, unless allowed). */
  token?: string | undefined;
  /** Route paths that need no token. */
  open: ReadonlySet<string>;
  /** Route paths that authenticate requests themselves (gateway endpoints): no token, any content type. */
  selfAuthenticated?: ReadonlySet<string> | undefined;
}

const send = (reply: FastifyReply, status: number, kind: GuardErrorKind, message: string): FastifyReply =>
  reply.status(status).send({ error: { kind, message } } satisfies GuardError);

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The onRequest hook: Host, then token, then content type (see the file comment). */
export function requestGuard(
  options: GuardOptions,
): (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const expected = options.token === undefined ? undefined : digest(options.token);
  return async (req, reply) => {
    const host = req.headers.host;
    // HTTP/1.1 requires a Host (Node refuses requests without one); a browser always sends it.
    if (host !== undefined && !options.hosts.allows(host)) {
      return send(
        reply,
        421,
        'misdirected',
        `Host "${host.slice(0, 200)}" is not a name of this server (accepted: ${options.hosts.describe()}); add it to serve.allowed_hosts if clients reach dip serve by that name`,
      );
    }
    const route = req.routeOptions.url;
    if (route !== undefined && options.selfAuthenticated?.has(route)) return undefined;
    if (expected !== undefined && !(route !== undefined && options.open.has(route))) {
      const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
      if (!match) {
        reply.header('www-authenticate', 'Bearer realm="dip"');
        return send(reply, 401, 'unauthorized', 'this endpoint needs Authorization: Bearer <serve.token>');
      }
      // Equal-length digests: the comparison takes the same time whatever the guess.
      if (!timingSafeEqual(digest(match[1] ?? ''), expected)) {
        return send(reply, 403, 'forbidden', 'the bearer token is not the one configured (serve.token)');
      }
    }
    if (route !== undefined && STATE_CHANGING.has(req.method)) {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
      if (type !== 'application/json') {
        return send(
          reply,
          415,
          'unsupported_media_type',
          `${req.method} ${route} needs Content-Type: application/json (got ${type === '' ? 'none' : type}); send {} when there is nothing to say`,
        );
      }
    }
    return undefined;
  };
}
