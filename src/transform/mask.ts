/**
 * PII masks for the silver zone. Each policy is a pure DuckDB SQL expression, so masking runs
 * inside the one SELECT that writes a silver table; the more involved policies are temp macros
 * (`dip_mask_*`) created once per engine with `maskMacrosSql()`.
 *
 * Every mask takes the value as VARCHAR (other types are cast first), keeps null as null and
 * returns VARCHAR. Lengths and positions are counted in Unicode code points.
 */
import type { MaskPolicy } from '../config/silver.js';
import { ConfigError } from '../core/errors.js';
import { lit } from '../lake/sql.js';

export interface MaskContext {
  /** Salt of `hash` masks (privacy.salt or the project's generated salt). */
  salt: string;
  /** Key `tokenize` masks derive tokens from (`TokenVault.tokenKey`); present only when a vault is configured. */
  tokenKey?: string | undefined;
}

/** Characters of a token after the `tok_` prefix (hex digits of the SHA-256). */
export const TOKEN_HEX_CHARS = 32;

/**
 * The macros the mask expressions call. Run each statement once per engine before the silver
 * SELECT (they are `CREATE OR REPLACE TEMP MACRO`, so running them again is harmless).
 *
 * Performance notes (DuckDB 1.5, CPU per value): a global regexp_replace costs 0.1–0.2 µs per
 * match, so character mappings avoid it: digits go through `translate` (~0.5 µs), and `redact`
 * maps characters in a vectorized list lambda (~1.5 µs for 20 characters) whose Unicode branch
 * (regexes) only runs for caseless non-ASCII characters. sha256 costs ~0.5 µs per 64-byte block
 * of salt ‖ value: a short salt keeps short values within one block.
 */
export function maskMacrosSql(): string[] {
  return [
    // last4: `suffix` starts at the 4th-last digit (RE2 has no lookahead: the leftmost position
    // from which at most 4 digits remain); digits before it become *.
    `CREATE OR REPLACE TEMP MACRO dip_mask_last4_split(s, suffix) AS
      translate(left(s, length(s) - length(suffix)), '0123456789', '**********') || suffix`,
    String.raw`CREATE OR REPLACE TEMP MACRO dip_mask_last4(s) AS
      dip_mask_last4_split(s, regexp_extract(s, '(\d\D*){0,4}$'))`,
    // email: the local part (before the last @) keeps its first character; a one-character
    // local part is masked whole; without @ the whole value is masked.
    `CREATE OR REPLACE TEMP MACRO dip_mask_email_split(s, domain) AS
      CASE
        WHEN domain = '' THEN repeat('*', length(s))
        WHEN length(s) - length(domain) <= 1 THEN repeat('*', length(s) - length(domain)) || domain
        ELSE left(s, 1) || repeat('*', length(s) - length(domain) - 1) || domain
      END`,
    `CREATE OR REPLACE TEMP MACRO dip_mask_email(s) AS dip_mask_email_split(s, regexp_extract(s, '@[^@]*$'))`,
    // redact: letters → x / X (upper and title case), digits → 9, everything else kept, one
    // code point at a time in a vectorized list lambda. ASCII is decided by comparisons; other
    // cased letters by lower()/upper(); only caseless non-ASCII characters (CJK, Arabic, …)
    // reach the Unicode regexes.
    String.raw`CREATE OR REPLACE TEMP MACRO dip_mask_redact(s) AS
      array_to_string(list_transform(string_split(s, ''), c -> CASE
        WHEN c < chr(128) THEN (CASE
          WHEN c >= 'a' THEN (CASE WHEN c <= 'z' THEN 'x' ELSE c END)
          WHEN c >= 'A' THEN (CASE WHEN c <= 'Z' THEN 'X' ELSE c END)
          WHEN c >= '0' AND c <= '9' THEN '9'
          ELSE c
        END)
        WHEN lower(c) <> c THEN 'X'
        WHEN upper(c) <> c THEN 'x'
        WHEN regexp_full_match(c, '\p{L}') THEN 'x'
        WHEN regexp_full_match(c, '\p{Nd}') THEN '9'
        ELSE c
      END), '')`,
    // partial: keep `f` characters at the start and `l` at the end; a value no longer than
    // f + l would be shown whole, so it is replaced entirely.
    `CREATE OR REPLACE TEMP MACRO dip_mask_partial(s, f, l, ch) AS
      CASE
        WHEN length(s) <= f + l THEN repeat(ch, length(s))
        ELSE left(s, f) || repeat(ch, length(s) - f - l) || right(s, l)
      END`,
  ];
}

/**
 * SQL expression masking `valueSql` with `policy`. `column` only names the column in errors.
 * Null stays null; the result is VARCHAR.
 */
export function maskExpression(policy: MaskPolicy, valueSql: string, ctx: MaskContext, column: string): string {
  const v = `CAST((${valueSql}) AS VARCHAR)`;
  if (typeof policy === 'object') {
    const { keep_first: first, keep_last: last, char } = policy.partial;
    return `dip_mask_partial(${v}, ${wholeNumber(first)}, ${wholeNumber(last)}, ${lit(char)})`;
  }
  switch (policy) {
    case 'hash':
      return `sha256(${lit(ctx.salt)} || ${v})`;
    case 'last4':
      return `dip_mask_last4(${v})`;
    case 'email':
      return `dip_mask_email(${v})`;
    case 'redact':
      return `dip_mask_redact(${v})`;
    case 'tokenize':
      if (ctx.tokenKey === undefined || ctx.tokenKey === '') {
        throw new ConfigError(
          `column ${column}: mask tokenize needs privacy.vault in dip.yaml (the token vault that keeps the clear values)`,
        );
      }
      return tokenSql(ctx.tokenKey, v);
    case 'null':
      return 'NULL::VARCHAR';
  }
}

/** SQL computing the token of a VARCHAR expression; the same as `tokenFor` in vault.ts. */
export function tokenSql(tokenKey: string, varcharSql: string): string {
  return `('tok_' || left(sha256(${lit(tokenKey)} || ${varcharSql}), ${TOKEN_HEX_CHARS}))`;
}

function wholeNumber(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(`mask partial: expected a whole number ≥ 0, got ${n}`);
  return String(n);
}
