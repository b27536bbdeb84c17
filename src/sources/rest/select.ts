import { JSONPath } from 'jsonpath-plus';
import { DipError } from '../../core/errors.js';

const SIMPLE = /^\$?(?:\.?[A-Za-z_][\w-]*|\[\d+\])*$/;

/** Compiles a JSONPath once; simple dotted paths skip the general evaluator (hot per page). */
export function compilePath(path: string): (value: unknown) => unknown {
  const trimmed = path.trim();
  if (trimmed === '$' || trimmed === '') return (v) => v;
  if (SIMPLE.test(trimmed)) {
    const steps = [...trimmed.replace(/^\$/, '').matchAll(/\.?([A-Za-z_][\w-]*)|\[(\d+)\]/g)].map((m) =>
      m[2] !== undefined ? Number(m[2]) : (m[1] as string),
    );
    return (value) => {
      let v: unknown = value;
      for (const step of steps) {
        if (v === null || typeof v !== 'object') return undefined;
        v = (v as Record<string | number, unknown>)[step];
      }
      return v;
    };
  }
  const json = trimmed.startsWith('$') ? trimmed : `$.${trimmed}`;
  return (value) => {
    const found = JSONPath({ path: json, json: value as object, wrap: true }) as unknown[];
    // A path with a wildcard or filter selects many values; a plain path selects one.
    return /[*?]|\.\./.test(json) ? found : found[0];
  };
}

export interface Selection {
  records: Record<string, unknown>[];
  /** The records' DuckDB JSON path in the body, when it is a plain path (replay reads it). */
  path: string | undefined;
}

/**
 * The records of a page: the value at `path` when given (a list, or one object as one
 * record), else the body itself when it is a list, else the first list-valued field.
 */
export function recordSelector(path: string | undefined, where: string): (body: unknown) => Selection {
  const at = path ? compilePath(path) : undefined;
  const fixed = duckdbPath(path);
  return (body) => {
    let value: unknown;
    let used = fixed;
    if (at) value = at(body);
    else if (Array.isArray(body)) (value = body), (used = '$');
    else if (body && typeof body === 'object') {
      const entry = Object.entries(body).find(([, v]) => Array.isArray(v));
      value = entry ? entry[1] : body;
      used = entry && /^[A-Za-z_][\w]*$/.test(entry[0]) ? `$.${entry[0]}` : entry ? undefined : '$';
    }
    if (value === undefined && at && body !== null && body !== undefined) {
      // The response has content but the selector finds nothing: a wrong path (or an error
      // document in a 200), never "no records". An explicit null or [] is no records.
      throw new DipError(
        'input',
        `${where}: records selector ${path} matches nothing in the response; ${keysPresent(body, path as string)}`,
      );
    }
    if (value === undefined || value === null) return { records: [], path: used };
    const list = Array.isArray(value) ? value : [value];
    for (const r of list) {
      if (r === null || typeof r !== 'object' || Array.isArray(r)) {
        throw new DipError(
          'input',
          `${where}: records at ${path ?? '(auto)'} must be JSON objects, found ${JSON.stringify(r)?.slice(0, 80)}`,
        );
      }
    }
    return { records: list as Record<string, unknown>[], path: used };
  };
}

/** Reads a field of a record by a dotted name (`author.id`), for cursors and parent fields. */
export function fieldOf(record: Record<string, unknown>, dotted: string): unknown {
  let v: unknown = record;
  for (const part of dotted.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The DuckDB JSON path equivalent of a simple JSONPath, or undefined (replay needs it). */
export function duckdbPath(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const trimmed = path.trim();
  if (!SIMPLE.test(trimmed)) return undefined;
  return trimmed.startsWith('$') ? trimmed : `$.${trimmed}`;
}

/** The keys found where a JSONPath stops matching: `at $.paging: next, previous`. */
export function keysPresent(body: unknown, path: string): string {
  const steps = [
    ...path
      .trim()
      .replace(/^\$/, '')
      .matchAll(/\.?([A-Za-z_][\w-]*)|\[(\d+)\]/g),
  ].map((m) => (m[2] !== undefined ? Number(m[2]) : (m[1] as string)));
  let v: unknown = body;
  let at = '$';
  for (const step of steps) {
    if (v === null || typeof v !== 'object') break;
    const next = (v as Record<string | number, unknown>)[step];
    if (next === undefined || next === null || typeof next !== 'object') break;
    v = next;
    at += typeof step === 'number' ? `[${step}]` : `.${step}`;
  }
  if (v === null || typeof v !== 'object') return `the response body is ${v === null ? 'empty (null)' : typeof v}`;
  const keys = Array.isArray(v) ? [`(a list of ${v.length})`] : Object.keys(v);
  return `keys present at ${at}: ${keys.length ? keys.join(', ') : '(none)'}`;
}
