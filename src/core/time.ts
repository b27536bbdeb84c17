import { ConfigError } from './errors.js';

/** UTC calendar date `YYYY-MM-DD`, the partition value for ingest dates. */
export function utcDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** What `parseDuration` accepts (config schemas validate durations with it). */
export const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `15m`, `7d` into milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
}

/** A duration setting in milliseconds; a config error naming the field when it is not one. */
export function durationMs(text: string, field: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new ConfigError(`${field}: "${text}" is not a duration such as 500ms, 30s, 5m, 1h or 7d`);
  return ms;
}
