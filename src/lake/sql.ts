/** SQL text helpers for DuckDB statements built at run time. */
export function lit(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function litList(values: readonly string[]): string {
  return `[${values.map(lit).join(', ')}]`;
}
