/**
 * Stream names of database sources that the configuration alone decides (no database asked):
 * the loader's project checks, the DAG and the pipeline lookup all use them.
 */
import type { DatabaseSourceConfig } from './database.js';

/** A stream name from a table name: lower case, anything else than [a-z0-9_] becomes _. */
export function streamNameOf(table: string): string {
  const name = table.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return /^[a-z_]/.test(name) ? name : `t_${name}`;
}

/**
 * Stream names known without asking the database; `patterns` is true when patterns or
 * schema-qualified names (whose stream name depends on the default schema) leave some open.
 */
export function declaredStreamNames(config: DatabaseSourceConfig): { names: string[]; patterns: boolean } {
  const names: string[] = [];
  let patterns = false;
  for (const entry of config.tables) {
    const name = typeof entry === 'string' ? entry : 'name' in entry ? (entry.stream ?? entry.name) : undefined;
    if (name === undefined || name.includes('.')) patterns = true;
    else names.push(typeof entry !== 'string' && 'stream' in entry && entry.stream ? entry.stream : streamNameOf(name));
  }
  return { names: [...names, ...Object.keys(config.queries)], patterns };
}
