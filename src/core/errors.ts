/**
 * Typed errors. Every error a user can cause names what was wrong, where, and what was expected.
 * `transient` errors may be retried with backoff; everything else is terminal.
 */
export type ErrorKind =
  | 'config'
  | 'input'
  | 'schema'
  | 'conflict'
  | 'not_found'
  | 'quality'
  | 'transient'
  | 'interrupted'
  | 'internal';

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

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);
const DISK_FULL_TEXT = /\b(ENOSPC|EDQUOT)\b|No space left on device|Disk quota exceeded/i;

/**
 * A full disk or an exhausted quota (ENOSPC/EDQUOT, from Node or from DuckDB's own writes) as a
 * `transient` error: nothing was committed, and the same run succeeds once space is freed. Any
 * other error comes back unchanged.
 */
export function classifyDiskFull(err: unknown): unknown {
  if (err instanceof DipError && err.kind !== 'internal') return err;
  for (
    let cur: unknown = err, depth = 0;
    cur !== undefined && cur !== null && depth < 6;
    cur = cur instanceof Error ? cur.cause : undefined, depth++
  ) {
    const code = (cur as NodeJS.ErrnoException).code;
    if ((typeof code === 'string' && DISK_FULL_CODES.has(code)) || DISK_FULL_TEXT.test(errorMessage(cur))) {
      const shown =
        typeof code === 'string' && DISK_FULL_CODES.has(code)
          ? code
          : /EDQUOT|quota/i.test(errorMessage(cur))
            ? 'EDQUOT'
            : 'ENOSPC';
      const which = shown === 'EDQUOT' ? 'the disk quota is exhausted' : 'the disk is full';
      return new DipError(
        'transient',
        `${which} (${shown}): nothing of the failed unit was committed; free space and run again: ${errorMessage(err)}`,
        {
          cause: err,
          details: { disk_full: true },
        },
      );
    }
  }
  return err;
}
