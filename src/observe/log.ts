import { pino, type Logger } from 'pino';
import { secretRegistry } from '../config/secrets.js';

/**
 * Structured logs (JSON lines on stderr). Every message and string field passes through the
 * secret registry, so a resolved secret never reaches a log.
 */
export function createLogger(level = process.env['DIP_LOG_LEVEL'] ?? 'info'): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          const redacted = args.map((a) => (typeof a === 'string' ? secretRegistry.redact(a) : a));
          method.apply(this, redacted as Parameters<typeof method>);
        },
      },
    },
    pino.destination(2),
  );
}
