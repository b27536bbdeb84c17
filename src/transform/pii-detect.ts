/**
 * PII detection for the silver zone (privacy.detect): samples the text columns of a relation
 * with one cheap query and reports the columns whose values mostly look like e-mail
 * addresses, phone numbers, card numbers (passing Luhn), US social security numbers or IP
 * addresses. Classification runs in TypeScript on the sample; examples in findings are
 * redacted (letters → x/X, digits → 9) so logs never show clear PII.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { EMAIL_RE } from '../core/email.js';
import { isTextType, isWholeNumberType } from '../lake/duck-types.js';
import type { Engine } from '../lake/engine.js';
import { ident } from '../lake/sql.js';

export type DetectedPii = 'email' | 'phone' | 'card' | 'ssn' | 'ip';

export interface PiiFinding {
  column: string;
  kind: DetectedPii;
  /** Sampled values that look like `kind`. */
  matched: number;
  /** Non-empty values sampled. */
  sampled: number;
  /** Up to 3 distinct matching values, redacted (the first in sort order). */
  examples: string[];
}

export interface DetectPiiOptions {
  /** Non-empty values looked at per column (default 1000). */
  sample?: number;
  /** Share of sampled values that must look like one kind (default 0.8). */
  threshold?: number;
  /** Also sample whole-number columns (BIGINT, HUGEINT, DECIMAL(p,0)) for card numbers written as numbers (default false). */
  wholeNumbers?: boolean;
}

/** When a column matches several kinds equally often, the first in this order wins (a Luhn-valid card before a phone). */
const KIND_ORDER: readonly DetectedPii[] = ['email', 'ssn', 'ip', 'card', 'phone'];

const SSN = /^\d{3}-\d{2}-\d{4}$/;
const CARD = /^\d(?:[ -]?\d){12,18}$/;
const E164 = /^\+[1-9]\d{9,14}$/;
const PHONE_CHARS = /^[+(]?\d[\d\s().-]*\d$/;
const PHONE_SEPARATOR = /[\s().-]/;
const PLAIN_DECIMAL = /^\d+\.\d+$/;

/** True when `digits` (digits only) passes the Luhn checksum of card numbers. */
export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** The PII kinds a single (trimmed) value looks like. */
export function classifyValue(value: string): DetectedPii[] {
  const kinds: DetectedPii[] = [];
  if (EMAIL_RE.test(value)) kinds.push('email');
  if (SSN.test(value)) kinds.push('ssn');
  if (isIPv4(value) || isIPv6(value)) kinds.push('ip');
  const digits = value.replace(/\D/g, '');
  if (CARD.test(value) && luhnValid(digits)) kinds.push('card');
  if (isPhone(value, digits.length)) kinds.push('phone');
  return kinds;
}

/**
 * A phone number: E.164 (+ and 10–15 digits), or 10–15 digits written with common separators
 * (spaces, dashes, dots, parentheses; an optional leading +). Plain digit strings without + are
 * not taken for phones (identifiers look the same), nor are plain decimals.
 */
function isPhone(value: string, digitCount: number): boolean {
  if (E164.test(value)) return true;
  if (digitCount < 10 || digitCount > 15) return false;
  if (!PHONE_CHARS.test(value) || PLAIN_DECIMAL.test(value)) return false;
  if (!value.startsWith('+') && !PHONE_SEPARATOR.test(value)) return false;
  return balancedParentheses(value);
}

function balancedParentheses(value: string): boolean {
  let depth = 0;
  for (const c of value) {
    if (c === '(') depth++;
    else if (c === ')' && --depth < 0) return false;
    if (depth > 1) return false;
  }
  return depth === 0;
}

/**
 * Format-preserving redaction, as the `redact` mask does in SQL: cased letters → X (upper and
 * title case) or x, other letters → x, digits → 9, everything else kept.
 */
export function redactValue(value: string): string {
  let out = '';
  for (const c of value) {
    if (c.toLowerCase() !== c) out += 'X';
    else if (c.toUpperCase() !== c) out += 'x';
    else if (c >= '0' && c <= '9') out += '9';
    else if (c < '\u0080') out += c;
    else if (/\p{L}/u.test(c)) out += 'x';
    else if (/\p{Nd}/u.test(c)) out += '9';
    else out += c;
  }
  return out;
}

/**
 * Samples up to `sample` non-empty values of each VARCHAR column of `relationSql` (a query, a
 * table name or a table function) with one query, each column reading only until it has its
 * sample, and reports the columns where at least `threshold` of the values look like one PII
 * kind. Other columns are skipped.
 */
export async function detectPii(
  engine: Engine,
  relationSql: string,
  columns: readonly { name: string; type: string }[],
  options: DetectPiiOptions = {},
): Promise<PiiFinding[]> {
  const sample = options.sample ?? 1000;
  const threshold = options.threshold ?? 0.8;
  if (!Number.isSafeInteger(sample) || sample < 1)
    throw new RangeError(`detectPii: sample must be a whole number ≥ 1, got ${sample}`);
  // Whole numbers of 13 to 19 digits can be card numbers too (a JSON number): judged as cards only.
  const text = columns.filter(
    (c) => isTextType(c.type) || (options.wholeNumbers === true && isWholeNumberType(c.type)),
  );
  if (text.length === 0) return [];
  // A query is wrapped in parentheses; a table name or table function is used as it is.
  const source = /^\s*(select|from|with|values|table|\()/i.test(relationSql) ? `(${relationSql})` : relationSql;
  const selects = text.map((c, i) => {
    const col = isTextType(c.type) ? ident(c.name) : `CAST(${ident(c.name)} AS VARCHAR)`;
    return `(SELECT list(v) FROM (SELECT trim(${col}) AS v FROM ${source} AS _dip_pii WHERE ${col} IS NOT NULL AND trim(${col}) <> '' LIMIT ${sample})) AS c${i}`;
  });
  const [row] = await engine.all(`SELECT ${selects.join(', ')}`);
  const findings: PiiFinding[] = [];
  text.forEach((c, i) => {
    const values = row?.[`c${i}`];
    if (!Array.isArray(values) || values.length === 0) return;
    const finding = judgeColumn(c.name, values.map(String), threshold, isTextType(c.type) ? undefined : ['card']);
    if (finding) findings.push(finding);
  });
  return findings;
}

function judgeColumn(
  column: string,
  values: readonly string[],
  threshold: number,
  only?: readonly DetectedPii[],
): PiiFinding | undefined {
  const matches = new Map<DetectedPii, string[]>((only ?? KIND_ORDER).map((k) => [k, []]));
  for (const value of values) for (const kind of classifyValue(value)) matches.get(kind)?.push(value);
  let best: { kind: DetectedPii; hits: string[] } | undefined;
  for (const kind of KIND_ORDER) {
    const hits = matches.get(kind) ?? [];
    if (hits.length / values.length >= threshold && hits.length > (best?.hits.length ?? 0)) best = { kind, hits };
  }
  if (!best) return undefined;
  return {
    column,
    kind: best.kind,
    matched: best.hits.length,
    sampled: values.length,
    examples: [...new Set(best.hits.map(redactValue))].sort().slice(0, 3),
  };
}
