/**
 * Column naming for silver tables: snake_case conversion and collision-free output names.
 * DuckDB column names are case-insensitive, so uniqueness is judged case-insensitively.
 */

export type NamingMode = 'snake_case' | 'keep';

/** Used when a name has no letter or digit at all (e.g. "!!!"). */
const FALLBACK_NAME = 'column';

/**
 * snake_case of one name: userId → user_id, HTTPStatus → http_status, "First Name" → first_name,
 * "a.b-c" → a_b_c, already_snake unchanged; runs of separators collapse to one `_`, leading and
 * trailing `_` are dropped, a leading digit gets a `_` prefix (2fa → _2fa). Letters and digits of
 * any script are kept (lower-cased). Never returns an empty string.
 */
export function snakeCase(name: string): string {
  const body = snakeSegment(name);
  if (body === '') return FALLBACK_NAME;
  return /^\p{N}/u.test(body) ? `_${body}` : body;
}

/** snake_case without the leading-digit prefix or fallback: for segments joined under a parent. */
function snakeSegment(name: string): string {
  return name
    .replace(/(\p{Ll}|\p{N})(\p{Lu})/gu, '$1_$2') // userId → user_Id, v2Name → v2_Name
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1_$2') // HTTPStatus → HTTP_Status
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '_')
    .replace(/^_+|_+$/g, '');
}

/** The name of one source name under a naming mode (before de-duplication). */
export function applyNaming(name: string, naming: NamingMode): string {
  return naming === 'snake_case' ? snakeCase(name) : name;
}

/**
 * The name of a nested path: each segment named on its own and joined with `__`
 * (['author', 'displayName'] → author__display_name). Under snake_case only the whole name gets
 * the leading-digit prefix.
 */
export function pathName(path: readonly string[], naming: NamingMode): string {
  if (naming === 'keep') return path.join('__');
  const segments = path.map((s) => {
    const seg = snakeSegment(s);
    return seg === '' ? FALLBACK_NAME : seg;
  });
  const joined = segments.join('__');
  return /^\p{N}/u.test(joined) ? `_${joined}` : joined;
}

/**
 * Makes names unique (case-insensitively, as DuckDB compares column names): the first holder of
 * a name keeps it, later ones get `_2`, `_3`, … (skipping any name already in the list or in
 * `reserved`). Returns the names in input order.
 */
export function uniqueNames(names: readonly string[], reserved: readonly string[] = []): string[] {
  const key = (n: string) => n.toLowerCase();
  const bases = new Set([...names, ...reserved].map(key));
  const taken = new Set(reserved.map(key));
  return names.map((name) => {
    let out = name;
    if (taken.has(key(out))) {
      for (let n = 2; ; n++) {
        const candidate = `${name}_${n}`;
        if (!taken.has(key(candidate)) && !bases.has(key(candidate))) {
          out = candidate;
          break;
        }
      }
    }
    taken.add(key(out));
    return out;
  });
}

/**
 * Output names of a list of source column names: snake_case (or kept as written), made unique
 * with `_2`, `_3`, … suffixes in input order (userId and user_id → user_id, user_id_2).
 */
export function outputNames(names: readonly string[], naming: NamingMode): string[] {
  return uniqueNames(names.map((n) => applyNaming(n, naming)));
}
