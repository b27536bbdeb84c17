/**
 * Typed errors. Every error a user can cause names what was wrong, where, and what was expected.
 * `transient` errors may be retried with backoff; everything else is terminal.
 */
export type ErrorKind = 'config' | 'input' | 'schema' | 'conflict' | 'not_found' | 'quality' | 'transient' | 'interrupted' | 'internal';

export const EXIT_CODES: Record<ErrorKind, number> = {
  config: 2,
  input: 3,
  schema: 4,
  conflict: 5,
  not_found: 6,
  quality: 7,
  transient: 75,
  interrupted: 130,
  internal: 1,
};

export class DipError extends Error {
  readonly kind: ErrorKind;
  readonly details: Record<string, unknown>;
  constructor(kind: ErrorKind, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DipError';
    this.kind = kind;
    this.details = options.details ?? {};
  }
  get exitCode(): number {
    return EXIT_CODES[this.kind];
  }
}

export class ConfigError extends DipError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('config', message, options);
    this.name = 'ConfigError';
  }
}

export class SchemaChangeError extends DipError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('schema', message, { details });
    this.name = 'SchemaChangeError';
  }
}

export class CommitConflictError extends DipError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('conflict', message, { details });
    this.name = 'CommitConflictError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The chain of causes as readable text, outermost first. */
export function describeCause(err: unknown): string | undefined {
  const parts: string[] = [];
  let cur: unknown = err instanceof Error ? err.cause : undefined;
  while (cur !== undefined && parts.length < 5) {
    parts.push(errorMessage(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.length ? parts.join(' <- ') : undefined;
}
