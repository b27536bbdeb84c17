/**
 * Request authentication for gateway endpoints: API keys (by SHA-256 digest), bearer tokens and
 * HMAC signatures (GitHub `X-Hub-Signature-256`, Stripe `Stripe-Signature` with a timestamp
 * tolerance, a generic header). Secrets are resolved from their references once, when the
 * gateway opens (and registered for redaction); every comparison is constant-time on
 * equal-length digests, and every configured secret is tried (rotation) without an early exit.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { resolveSecrets } from '../config/secrets.js';
import { ConfigError } from '../core/errors.js';
import { parseDuration } from '../core/time.js';
import type { GatewayAuthConfig } from '../sources/gateway/spec.js';

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** Why a request is refused (the 401's message: never a secret or the expected value). */
export type AuthOutcome = { ok: true } | { ok: false; reason: string };

export type Verifier = (headers: Headers, body: Buffer, now: number) => AuthOutcome;

const HASHED = /^sha256:([0-9a-f]{64})$/i;

const header = (h: Headers, name: string): string | undefined => {
  const v = h[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
};

const sha256 = (text: string | Buffer): Buffer => createHash('sha256').update(text).digest();

/** True when any of `candidates` equals `given`; constant-time per comparison, all compared. */
function anyEqual(given: Buffer, candidates: readonly Buffer[]): boolean {
  let found = false;
  for (const c of candidates) {
    const same = c.length === given.length && timingSafeEqual(c, given);
    found = found || same;
  }
  return found;
}

function decodeSignature(text: string, encoding: 'hex' | 'base64'): Buffer | undefined {
  if (encoding === 'hex')
    return /^[0-9a-f]+$/i.test(text) && text.length % 2 === 0 ? Buffer.from(text, 'hex') : undefined;
  return /^[A-Za-z0-9+/=_-]+$/.test(text) ? Buffer.from(text, 'base64') : undefined;
}

export function buildVerifier(auth: GatewayAuthConfig, where: string, baseDir: string): Verifier {
  const secrets = (value: string | string[]): string[] =>
    (Array.isArray(value) ? value : [value]).map((v) => resolveSecrets(v, { baseDir }));
  switch (auth.type) {
    case 'none':
      return () => ({ ok: true });
    case 'api_key': {
      const digests = secrets(auth.keys).map((k, i) => {
        const m = HASHED.exec(k.trim());
        if (!m)
          throw new ConfigError(
            `${where}.auth.keys[${i}]: expected a SHA-256 digest as sha256:<64 hex digits> (keys are stored hashed; e.g. printf %s "$KEY" | sha256sum)`,
          );
        return Buffer.from(m[1] as string, 'hex');
      });
      return (h) => {
        const key = header(h, auth.header);
        if (!key) return { ok: false, reason: `missing ${auth.header} header` };
        return anyEqual(sha256(key), digests) ? { ok: true } : { ok: false, reason: 'unknown API key' };
      };
    }
    case 'bearer': {
      const digests = secrets(auth.tokens).map((t) => {
        const m = HASHED.exec(t.trim());
        return m ? Buffer.from(m[1] as string, 'hex') : sha256(t);
      });
      return (h) => {
        const m = /^Bearer\s+(.+)$/i.exec(header(h, 'authorization') ?? '');
        if (!m) return { ok: false, reason: 'missing bearer token' };
        return anyEqual(sha256((m[1] as string).trim()), digests)
          ? { ok: true }
          : { ok: false, reason: 'unknown token' };
      };
    }
    case 'github': {
      const keys = secrets(auth.secret);
      return (h, body) => {
        const sig = header(h, 'x-hub-signature-256');
        if (!sig) return { ok: false, reason: 'missing X-Hub-Signature-256 header' };
        const given = sig.startsWith('sha256=') ? decodeSignature(sig.slice(7), 'hex') : undefined;
        if (!given) return { ok: false, reason: 'malformed X-Hub-Signature-256 header' };
        const expected = keys.map((k) => createHmac('sha256', k).update(body).digest());
        return anyEqual(given, expected) ? { ok: true } : { ok: false, reason: 'signature does not match' };
      };
    }
    case 'stripe': {
      const keys = secrets(auth.secret);
      const toleranceS = (parseDuration(auth.tolerance) ?? 300_000) / 1000;
      return (h, body, now) => {
        const sig = header(h, 'stripe-signature');
        if (!sig) return { ok: false, reason: 'missing Stripe-Signature header' };
        let t: string | undefined;
        const v1: Buffer[] = [];
        for (const part of sig.split(',')) {
          const eq = part.indexOf('=');
          const k = part.slice(0, eq).trim();
          const v = part.slice(eq + 1).trim();
          if (k === 't') t = v;
          else if (k === 'v1') {
            const d = decodeSignature(v, 'hex');
            if (d) v1.push(d);
          }
        }
        if (t === undefined || !/^\d+$/.test(t) || !v1.length)
          return { ok: false, reason: 'malformed Stripe-Signature header' };
        if (Math.abs(now / 1000 - Number(t)) > toleranceS)
          return { ok: false, reason: `signature timestamp outside the tolerance of ${auth.tolerance}` };
        const expected = keys.map((k) => createHmac('sha256', k).update(`${t}.`).update(body).digest());
        const found = v1.some((given) => anyEqual(given, expected));
        return found ? { ok: true } : { ok: false, reason: 'signature does not match' };
      };
    }
    case 'hmac': {
      const keys = secrets(auth.secret);
      return (h, body) => {
        const sig = header(h, auth.header);
        if (!sig) return { ok: false, reason: `missing ${auth.header} header` };
        const given = sig.startsWith(auth.prefix)
          ? decodeSignature(sig.slice(auth.prefix.length), auth.encoding)
          : undefined;
        if (!given) return { ok: false, reason: `malformed ${auth.header} header` };
        const expected = keys.map((k) => createHmac(auth.algorithm, k).update(body).digest());
        return anyEqual(given, expected) ? { ok: true } : { ok: false, reason: 'signature does not match' };
      };
    }
  }
}
