import { DipError } from '../core/errors.js';

/** Parses a whole-number option, naming the flag and the value when it is not one. */
export function wholeNumber(text: string, flag: string, min = 0): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < min) {
    throw new DipError('input', `${flag} "${text}": expected a whole number${min > 0 ? ` of at least ${min}` : ''}`);
  }
  return Number(text);
}

/** Checks requested names against the known ones, naming both on a mismatch. */
export function assertKnown(kind: string, requested: readonly string[], known: readonly string[]): void {
  const unknown = requested.filter((n) => !known.includes(n));
  if (unknown.length) {
    throw new DipError(
      'not_found',
      `no ${kind} named ${unknown.map((n) => `"${n}"`).join(', ')} (${kind}s: ${known.join(', ') || '(none)'})`,
    );
  }
}
