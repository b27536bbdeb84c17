/**
 * Turns zod issues into messages a user can act on: the dotted path, the bad value and what
 * was expected. Shared by the YAML loader (which adds line:column) and `defineProject`.
 */
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';

export interface ConfigIssue {
  /** Dotted path into the config, e.g. `pipelines.shop.sources.files.type`; empty for the top level. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

/** `key` points at a mapping key (unknown or invalid names), `value` at what the key holds. */
export type IssueTarget = 'key' | 'value';

export type Locator = (
  path: readonly PropertyKey[],
  target: IssueTarget,
) => { line: number; column: number } | undefined;

export const MAX_REPORTED_ISSUES = 20;

type Segment = string | number;

interface RawIssue {
  path: Segment[];
  target: IssueTarget;
  message: string;
}

export function dottedPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z0-9_-]+$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** Validation issues as located, readable ConfigIssues (unknown keys split into one issue per key). */
export function describeIssues(
  schema: z.core.$ZodType,
  data: unknown,
  issues: readonly z.core.$ZodIssue[],
  locate?: Locator,
): ConfigIssue[] {
  const raw = issues.flatMap((iss) => describeIssue(schema, data, iss));
  const located = raw.map((r): ConfigIssue => {
    const pos = locate?.(r.path, r.target);
    return pos
      ? { path: dottedPath(r.path), line: pos.line, column: pos.column, message: r.message }
      : { path: dottedPath(r.path), message: r.message };
  });
  // File order reads best; Array.prototype.sort is stable so unlocated issues keep zod's order.
  return located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/** Parses `data` with `schema`, or throws one ConfigError describing every issue. */
export function validateConfig<S extends z.ZodType>(
  schema: S,
  data: unknown,
  title: string,
  source: string,
  locate?: Locator,
): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  throw configIssuesError(title, source, describeIssues(schema, data, result.error.issues, locate));
}

/** One ConfigError listing every issue (up to MAX_REPORTED_ISSUES), one per line. */
export function configIssuesError(title: string, source: string, issues: ConfigIssue[]): ConfigError {
  const shown = issues.slice(0, MAX_REPORTED_ISSUES).map((i) => `  ${formatIssueLine(source, i)}`);
  const more = issues.length > MAX_REPORTED_ISSUES ? [`  ... and ${issues.length - MAX_REPORTED_ISSUES} more`] : [];
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  return new ConfigError([`${title} (${count}):`, ...shown, ...more].join('\n'), {
    details: { file: source, issues },
  });
}

export function formatIssueLine(source: string, issue: ConfigIssue): string {
  const where = issue.line === undefined ? source : `${source}:${issue.line}:${issue.column ?? 1}`;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

function describeIssue(schema: z.core.$ZodType, data: unknown, iss: z.core.$ZodIssue): RawIssue[] {
  const path = iss.path.filter((p): p is Segment => typeof p !== 'symbol');
  const value = valueAt(data, path);
  // A check that refuses a literal secret never echoes it.
  if (iss.code === 'custom' && iss.params?.['secret'] === true)
    return [{ path, target: 'value', message: iss.message }];
  const got = `got ${showValue(value)}`;
  const one = (message: string, target: IssueTarget = 'value'): RawIssue[] => [{ path, target, message }];

  switch (iss.code) {
    case 'unrecognized_keys': {
      const allowed = allowedKeys(schema, path, data);
      return iss.keys.map((key) => ({
        path: [...path, key],
        target: 'key' as const,
        message: unknownKeyMessage(key, allowed),
      }));
    }
    case 'invalid_type':
      if (value === undefined)
        return one(`missing required key ${JSON.stringify(String(path.at(-1)))} (expected ${typeName(iss.expected)})`);
      return one(`${got}, expected ${typeName(iss.expected)}`);
    case 'invalid_value':
      return one(`${got}, expected ${expectedValues(iss.values)}`);
    case 'invalid_union':
      if (iss.discriminator !== undefined && 'options' in iss && iss.options) {
        const expected = expectedValues(iss.options);
        if (value === undefined)
          return one(`missing required key ${JSON.stringify(iss.discriminator)} (expected ${expected})`);
        return one(`${got}, expected ${expected}`);
      }
      return one(`${got}, expected ${unionExpectation(iss.errors) ?? 'a different value'}`);
    case 'invalid_key': {
      const key = String(path.at(-1));
      const why = iss.issues[0]?.message ?? iss.message;
      return one(`invalid name ${JSON.stringify(key)}: ${why}`, 'key');
    }
    case 'too_small':
      return one(`${got}, expected ${sizeExpectation(iss.origin, 'at least', '>', iss.minimum, iss.inclusive)}`);
    case 'too_big':
      return one(`${got}, expected ${sizeExpectation(iss.origin, 'at most', '<', iss.maximum, iss.inclusive)}`);
    case 'invalid_format':
      // The schema's own message (e.g. for identifiers) already says what is expected.
      return one(`${got}, ${iss.message.startsWith('expected') ? iss.message : `expected ${iss.message}`}`);
    default:
      return one(`${got}: ${iss.message}`);
  }
}

function unknownKeyMessage(key: string, allowed: string[] | undefined): string {
  let msg = `unknown key ${JSON.stringify(key)}`;
  if (!allowed) return msg;
  msg += `; allowed keys here: ${allowed.join(', ')}`;
  const near = closest(key, allowed);
  return near ? `${msg} (did you mean ${JSON.stringify(near)}?)` : msg;
}

function expectedValues(values: readonly unknown[]): string {
  const shown = values.map((v) => (typeof v === 'string' ? v : showValue(v)));
  return shown.length === 1 ? String(shown[0]) : `one of ${shown.join(', ')}`;
}

function typeName(expected: string): string {
  const names: Record<string, string> = {
    object: 'a mapping',
    record: 'a mapping',
    array: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    boolean: 'true or false',
  };
  return names[expected] ?? expected;
}

function sizeExpectation(
  origin: string,
  words: string,
  op: string,
  limit: number | bigint,
  inclusive: boolean | undefined,
): string {
  const n = Number(limit);
  if (origin === 'array' || origin === 'set') return `${words} ${n} item${n === 1 ? '' : 's'}`;
  if (origin === 'string') return `${words} ${n} character${n === 1 ? '' : 's'}`;
  return `a number ${op}${inclusive ? '=' : ''} ${n}`;
}

/** For plain unions: the types each branch would have accepted, e.g. "a string or a list". */
function unionExpectation(branches: readonly (readonly z.core.$ZodIssue[])[]): string | undefined {
  const names: string[] = [];
  for (const branch of branches) {
    const top = branch.find((i) => i.path.length === 0 && i.code === 'invalid_type');
    if (top?.code !== 'invalid_type') {
      // The value had the right type for this branch but was still invalid: that issue says more.
      const inner = branch[0];
      return inner ? `${dottedPath(inner.path) ? `${dottedPath(inner.path)}: ` : ''}${inner.message}` : undefined;
    }
    names.push(typeName(top.expected));
  }
  return names.length ? names.join(' or ') : undefined;
}

function valueAt(data: unknown, path: readonly Segment[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<Segment, unknown>)[seg];
  }
  return cur;
}

function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (empty value)';
  if (Array.isArray(value))
    return value.length === 0 ? 'an empty list' : `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (typeof value === 'object') return 'a mapping';
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let cur = schema;
  for (;;) {
    if (
      cur instanceof z.ZodOptional ||
      cur instanceof z.ZodDefault ||
      cur instanceof z.ZodNullable ||
      cur instanceof z.ZodPrefault
    )
      cur = cur.unwrap();
    else if (cur instanceof z.ZodPipe) cur = cur.in;
    else return cur;
  }
}

/** A discriminated union resolves to the branch the data selects. */
function selectBranch(schema: z.core.$ZodType, value: unknown): z.core.$ZodType | undefined {
  const s = unwrap(schema);
  if (!(s instanceof z.ZodDiscriminatedUnion)) return s;
  const tag =
    value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[s.def.discriminator] : undefined;
  return s.options.find((o) => {
    const lit = o instanceof z.ZodObject ? o.shape[s.def.discriminator] : undefined;
    return lit instanceof z.ZodLiteral && lit.values.has(tag as z.core.util.Literal);
  });
}

/** Keys a strict object at `path` accepts, found by walking the schema alongside the data. */
export function allowedKeys(schema: z.core.$ZodType, path: readonly Segment[], data: unknown): string[] | undefined {
  let cur: z.core.$ZodType | undefined = schema;
  let value = data;
  for (const seg of path) {
    cur = cur && selectBranch(cur, value);
    if (cur instanceof z.ZodObject) cur = (cur.shape as Record<string, z.core.$ZodType>)[String(seg)];
    else if (cur instanceof z.ZodRecord) cur = cur.valueType;
    else if (cur instanceof z.ZodArray) cur = cur.element;
    else return undefined;
    value = valueAt(value, [seg]);
  }
  const target = cur && selectBranch(cur, value);
  return target instanceof z.ZodObject ? Object.keys(target.shape) : undefined;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
