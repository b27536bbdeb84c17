/**
 * Redaction of what a REST source keeps: response payloads (raw zone, records), headers and
 * stream state. Text redaction (`redact`) masks every encoded form of every secret and, by
 * structure, secret query parameters in any URL; payloads are redacted through their parsed
 * structure so a masked value never breaks the JSON it sits in.
 */
import { REDACTED, redactDeep, secretRegistry } from '../../../config/secrets.js';

/** The payload text with secrets masked; unchanged (the same string) when it holds none. */
export function redactPayload(
  raw: string,
  format: 'json' | 'ndjson' | 'csv',
  redact: (text: string) => string,
): string {
  const masked = redact(raw);
  if (masked === raw || format === 'csv') return masked;
  if (format === 'json') return redactJsonText(raw, masked, redact);
  return raw
    .split('\n')
    .map((line) => {
      const m = redact(line);
      return m === line || !line.trim() ? m : redactJsonText(line, m, redact);
    })
    .join('\n');
}

/** JSON re-serialized with every string (keys too) redacted; text that is not JSON gets the text-level mask. */
function redactJsonText(raw: string, masked: string, redact: (text: string) => string): string {
  if (raw.trim() === '') return masked;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return masked;
  }
  return JSON.stringify(redactDeep(value, redact));
}

/** Response headers kept in raw envelopes: secret ones (by name) masked, the rest redacted as text. */
export function redactHeader(name: string, value: string, redact: (text: string) => string): string {
  return secretRegistry.isSecretName(name) ? REDACTED : redact(value);
}
