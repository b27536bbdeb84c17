import { DipError } from '../../core/errors.js';

export type TemplateVars = Record<string, unknown>;

const PLACEHOLDER = /\{([A-Za-z_][\w.-]*)\}/g;

function lookup(vars: TemplateVars, name: string): unknown {
  let v: unknown = vars;
  for (const part of name.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Placeholders a template uses (`{parent.id}` → `parent.id`). */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

/**
 * Fills `{name}` placeholders. `encode` URL-encodes values (path segments). An unknown
 * placeholder is a configuration error naming where it was used.
 */
export function fill(template: string, vars: TemplateVars, where: string, encode = false): string {
  return template.replace(PLACEHOLDER, (_, name: string) => {
    const value = lookup(vars, name);
    if (value === undefined || value === null) {
      const known = Object.keys(vars).filter((k) => vars[k] !== undefined);
      throw new DipError(
        'config',
        `${where}: placeholder {${name}} has no value (known here: ${known.map((k) => `{${k}.…}`).join(', ') || 'none'})`,
      );
    }
    const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
    return encode ? encodeURIComponent(text) : text;
  });
}

/** Fills every string inside a JSON value (request bodies). */
export function fillDeep(value: unknown, vars: TemplateVars, where: string): unknown {
  if (typeof value === 'string') return fill(value, vars, where);
  if (Array.isArray(value)) return value.map((v) => fillDeep(v, vars, where));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillDeep(v, vars, where)]));
  return value;
}
