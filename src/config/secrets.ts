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
    if (!target) throw new ConfigError(`Secret reference ${ref} is empty; expected \${env:NAME} or \${file:path}`, { details: { ref } });
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

/** Replaces each occurrence of each non-empty secret in `text` with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  // Longest first, so a secret that contains another is hidden whole.
  const sorted = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
  let out = text;
  for (const secret of sorted) out = out.split(secret).join(REDACTED);
  return out;
}

/** Remembers resolved secrets so loggers and error printers can redact them. */
export class SecretRegistry {
  private readonly values = new Set<string>();

  add(secret: string): void {
    if (!secret) return;
    this.values.add(secret);
    // A connection string's password also shows up on its own (driver errors, encoded forms).
    for (const part of urlPasswordForms(secret)) this.values.add(part);
  }

  redact(text: string): string {
    return this.values.size === 0 ? text : redact(text, [...this.values]);
  }

  get size(): number {
    return this.values.size;
  }

  clear(): void {
    this.values.clear();
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

/** Resolves references in every string of a config value (objects and lists walked), for sources' connection settings. */
export function resolveSecretsDeep<T>(value: T, opts: ResolveSecretsOptions): T {
  if (typeof value === 'string') return resolveSecrets(value, opts) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => resolveSecretsDeep(v, opts)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveSecretsDeep(v, opts)])) as T;
  }
  return value;
}
