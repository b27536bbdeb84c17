/**
 * The one email address pattern: the quality check `format: email` (in DuckDB, RE2) and PII
 * detection (in JavaScript) both use it. A local part of the characters RFC 5322 allows
 * unquoted, `@`, host labels of 1–63 letters, digits and inner hyphens, and a top-level domain
 * of two or more letters.
 */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';

/** The pattern text, unanchored (for `regexp_full_match` or a wrapping `^…$`). */
export const EMAIL_PATTERN = `[A-Za-z0-9.!#$%&'*+/=?^_\`{|}~-]+@(?:${LABEL}\\.)+[A-Za-z]{2,}`;

/** The whole string is an email address. */
export const EMAIL_RE = new RegExp(`^${EMAIL_PATTERN}$`);
