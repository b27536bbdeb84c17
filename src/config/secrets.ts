/**
 * Secret references inside config strings: `${env:NAME}` and `${file:path}`. The loaded config
 * keeps the reference text; values are resolved only where they are used, and every resolved
 * value is remembered so logs and error output can redact it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors.js';

const SECRET_REF = /\$\{(env|file):([^}]*)\}/g;

export const REDACTED = '***';

export interface ResolveSecretsOptions {
  /** Relative `${file:...}` paths resolve against this directory (the project directory). */
  baseDir: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Where resolved values are remembered for redaction; defaults to `secretRegistry`. */
  registry?: SecretRegistry;
}

export function hasSecretRef(value: string): boolean {
  return new RegExp(SECRET_REF.source).test(value);
}

/** Replaces every reference in `value` with the secret it names. Errors name the reference, never a value. */
export function resolveSecrets(value: string, opts: ResolveSecretsOptions): string {
  const env = opts.env ?? process.env;
  const registry = opts.registry ?? secretRegistry;
  return value.replace(SECRET_REF, (ref: string, kind: string, name: string) => {
    const target = name.trim();
    if (!target)
      throw new ConfigError(`Secret reference ${ref} is empty; expected \${env:NAME} or \${file:path}`, {
        details: { ref },
      });
    const secret = kind === 'env' ? fromEnv(ref, target, env) : fromFile(ref, path.resolve(opts.baseDir, target));
    registry.add(secret);
    return secret;
  });
}

function fromEnv(ref: string, name: string, env: NodeJS.ProcessEnv): string {
  const secret = env[name];
  if (secret === undefined) {
    throw new ConfigError(`Secret reference ${ref} cannot be resolved: environment variable ${name} is not set`, {
      details: { ref },
    });
  }
  return secret;
}

function fromFile(ref: string, file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // Only the error code: some fs messages quote more than the path.
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`Secret reference ${ref} cannot be resolved: cannot read ${file} (${code})`, {
      details: { ref, file },
    });
  }
  return text.replace(/\r?\n$/, '');
}

/**
 * The forms a secret takes when it is written somewhere: as is, percent-encoded
 * (encodeURIComponent, encodeURI, RFC 3986 strict, lower-case hex), form-encoded
 * (URLSearchParams: space → `+`, `~ ! ' ( ) *` as URLSearchParams writes them), JSON-escaped
 * (with and without `\/` and `\u` escapes) and base64 (standard, unpadded, URL-safe).
 * Encoded forms shorter than 4 characters are left out (too likely to be ordinary text).
 */
export function secretForms(secret: string): string[] {
  if (!secret) return [];
  const out = new Set<string>([secret]);
  const add = (form: string | undefined): void => {
    if (form !== undefined && form.length >= 4) out.add(form);
  };
  const component = safe(() => encodeURIComponent(secret));
  const strict = component?.replace(/[!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const form = new URLSearchParams({ v: secret }).toString().slice(2);
  for (const f of [
    component,
    strict,
    form,
    safe(() => encodeURI(secret)),
    component?.replace(/%20/g, '+'),
    strict?.replace(/%20/g, '+'),
  ]) {
    add(f);
    add(f?.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
  }
  const json = JSON.stringify(secret).slice(1, -1);
  add(json);
  add(json.replace(/\//g, '\\/'));
  add(json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  const b64 = Buffer.from(secret, 'utf8').toString('base64');
  add(b64);
  add(b64.replace(/=+$/, ''));
  add(Buffer.from(secret, 'utf8').toString('base64url'));
  return [...out];
}

function safe(fn: () => string): string | undefined {
  try {
    return fn();
  } catch {
    return undefined; // lone surrogates
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One regular expression matching every form of every secret, longest first. */
function formsPattern(secrets: Iterable<string>): RegExp | undefined {
  const forms = new Set<string>();
  for (const s of secrets) for (const f of secretForms(s)) forms.add(f);
  if (forms.size === 0) return undefined;
  const sorted = [...forms].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegExp).join('|'), 'g');
}

/** Replaces each occurrence of each non-empty secret, in any of its encoded forms (`secretForms`), with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  const pattern = formsPattern(secrets.filter((s) => s.length > 0));
  return pattern === undefined ? text : text.replace(pattern, REDACTED);
}

/** Header names whose values are credentials whatever the configuration says. */
const SENSITIVE_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'x-auth-token'];

/** `name=value` pairs of query strings (in URLs or on their own); group 1 the separator, 2 the name, 3 the value. */
const QUERY_PAIR = /([?&;])([^=&?#;\s"'<>\\]+)=([^&#;\s"'<>\\]*)/g;
/** The password of `scheme://user:password@host`. */
const USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"'<>]*:)([^\s/?#@"'<>]+)(@)/gi;

function formDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * Remembers resolved secrets so loggers and error printers can redact them, and the names of
 * query parameters and headers that carry secrets (from auth and source configs), so URLs and
 * headers can be redacted by structure whatever encoding wrote the value.
 */
export class SecretRegistry {
  private readonly values = new Set<string>();
  private readonly names = new Set<string>(SENSITIVE_HEADERS);
  private pattern: RegExp | undefined | null = null;

  add(secret: string): void {
    if (!secret || this.values.has(secret)) return;
    this.values.add(secret);
    this.pattern = null;
    // A connection string's password also shows up on its own (driver errors, encoded forms).
    for (const part of urlPasswordForms(secret)) this.add(part);
  }

  /** A query parameter or header name whose value is a secret wherever it appears (case-insensitive). */
  addName(name: string): void {
    if (name) this.names.add(name.toLowerCase());
  }

  isSecretName(name: string): boolean {
    return this.names.has(name.toLowerCase());
  }

  /** True when `value` (decoded) is, or contains, a registered secret. */
  carriesSecret(value: string): boolean {
    for (const s of this.values) if (value === s || (s.length >= 4 && value.includes(s))) return true;
    return false;
  }

  /**
   * Every encoded form of every secret becomes `***`, then, by structure, the values of query
   * parameters named as secret or whose decoded value carries a secret, and URL passwords.
   */
  redact(text: string): string {
    if (this.pattern === null) this.pattern = formsPattern(this.values);
    const out = this.pattern === undefined ? text : text.replace(this.pattern, REDACTED);
    return this.redactStructure(out);
  }

  /** Query parameter values and URL passwords that carry secrets, in any text. */
  redactStructure(text: string): string {
    let out = text;
    if (out.includes('=')) {
      out = out.replace(QUERY_PAIR, (whole, sep: string, name: string, value: string) => {
        if (value === '' || value === REDACTED) return whole;
        return this.isSecretName(formDecode(name)) || this.carriesSecret(formDecode(value))
          ? `${sep}${name}=${REDACTED}`
          : whole;
      });
    }
    // Checked first: scanning a large payload (e-mail addresses) for URL passwords is costly.
    if (out.includes('@') && out.includes('://'))
      out = out.replace(USERINFO, (_, head: string) => `${head}${REDACTED}@`);
    return out;
  }

  /** A copy of `headers` with the values of secret headers (by name or value) masked, the rest redacted as text. */
  redactHeaders(headers: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers))
      out[name] = this.isSecretName(name) ? REDACTED : this.redact(value);
    return out;
  }

  get size(): number {
    return this.values.size;
  }

  clear(): void {
    this.values.clear();
    this.pattern = null;
  }
}

function urlPasswordForms(value: string): string[] {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return [];
  try {
    const { password } = new URL(value);
    if (!password) return [];
    const decoded = decodeURIComponent(password);
    return decoded === password ? [password] : [password, decoded];
  } catch {
    return [];
  }
}

/** The process-wide registry that resolveSecrets fills by default. */
export const secretRegistry = new SecretRegistry();

/** A copy of a JSON-like value with every string (keys included) passed through `redactText`. */
export function redactDeep<T>(value: T, redactText: (text: string) => string = (t) => secretRegistry.redact(t)): T {
  if (typeof value === 'string') return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactDeep(v, redactText)) as T;
  if (
    value &&
    typeof value === 'object' &&
    (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)
  ) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redactText(k), redactDeep(v, redactText)])) as T;
  }
  return value;
}

/** Resolves references in every string of a config value (objects and lists walked), for sources' connection settings. */
export function resolveSecretsDeep<T>(value: T, opts: ResolveSecretsOptions): T {
  if (typeof value === 'string') return resolveSecrets(value, opts) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => resolveSecretsDeep(v, opts)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveSecretsDeep(v, opts)])) as T;
  }
  return value;
}
