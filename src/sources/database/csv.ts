/**
 * CSV lines for files a database source writes itself and hands over as `FileInput.columns`
 * (typed, not sniffed): RFC 4180, every non-null field quoted with `"` doubled inside, NULL an
 * unquoted empty field, the empty string `""`. Lines end with `\n`; a quoted field may hold
 * newlines. Binary values go in as DuckDB BLOB text (`blobText`).
 */

/** One field: null → empty (NULL), anything else quoted. */
export function csvField(value: string | null): string {
  if (value === null) return '';
  return value.includes('"') ? `"${value.replaceAll('"', '""')}"` : `"${value}"`;
}

/** One CSV record, `\n`-terminated, from text values (null = SQL NULL). */
export function csvLine(values: readonly (string | null)[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += ',';
    line += csvField(values[i] ?? null);
  }
  return `${line}\n`;
}

const BYTE_ESCAPES: readonly string[] = Array.from(
  { length: 256 },
  (_, b) => `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`,
);

/** Bytes as the text DuckDB casts to the same BLOB: `\xHH` for every byte. */
export function blobText(buf: Uint8Array): string {
  const parts = new Array<string>(buf.length);
  for (let i = 0; i < buf.length; i++) parts[i] = BYTE_ESCAPES[buf[i] as number] as string;
  return parts.join('');
}
