/** SQL text helpers for DuckDB statements built at run time. */
export function lit(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** A double-quoted SQL identifier (DuckDB and PostgreSQL): the one quoter for both. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema"."name"`. */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

export function litList(values: readonly string[]): string {
  return `[${values.map(lit).join(', ')}]`;
}
