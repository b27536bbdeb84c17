import { RAW_SCHEMA } from './zone-schemas.js';
import { lit, litList } from './sql.js';

/**
 * DuckDB relations over lake files. Hive partitioning is off: our `date=…` folders are for
 * people and pruning, and DuckDB would otherwise add a `date` column that shadows a source
 * column of the same name.
 */
export function parquetScan(uris: readonly string[], options: readonly string[] = []): string {
  return `read_parquet(${litList(uris)}, ${['union_by_name=true', 'hive_partitioning=false', ...options].join(', ')})`;
}

const RAW_COLUMNS = RAW_SCHEMA.columns.map((c) => `${lit(c.name)}: ${lit(c.type)}`).join(', ');

/** Raw-zone envelopes, in file order. */
export function rawScan(uris: readonly string[]): string {
  return `read_json(${litList(uris)}, format='newline_delimited', hive_partitioning=false, columns={${RAW_COLUMNS}})`;
}
