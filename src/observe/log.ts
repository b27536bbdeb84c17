import { pino, type Logger } from 'pino';
import { redactDeep, secretRegistry } from '../config/secrets.js';
import { traceFields } from './trace.js';

/**
 * Structured logs (JSON lines on stderr). Every message and every string inside logged objects
 * (nested fields, error messages and stacks) passes through the secret registry, so a resolved
 * secret never reaches a log in any encoding, nor a secret query parameter in any URL.
 */
export function createLogger(level = process.env['DIP_LOG_LEVEL'] ?? 'info'): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // The trace and span a line was logged in (when tracing is on), to find its spans.
      mixin: () => traceFields(),
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((a) => redactLogArg(a));
          method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    pino.destination(2),
  );
}

/** A log argument with its strings redacted; errors become plain objects (pino would print them unredacted). */
export function redactLogArg(value: unknown): unknown {
  const text = (t: string) => secretRegistry.redact(t);
  if (typeof value === 'string') return text(value);
  if (value instanceof Error) return redactError(value);
  if (value && typeof value === 'object') {
    if (Array.isArray(value)) return value.map((v: unknown) => redactLogArg(v));
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactLogArg(v)]));
  }
  return value;
}

function redactError(err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { type: err.name, message: secretRegistry.redact(err.message) };
  if (err.stack !== undefined) out['stack'] = secretRegistry.redact(err.stack);
  const kind = (err as { kind?: unknown }).kind;
  if (typeof kind === 'string') out['kind'] = kind;
  const details = (err as { details?: unknown }).details;
  if (details !== undefined) out['details'] = redactDeep(details);
  return out;
}
