/**
 * Lake storage: where data files live. Paths are relative, `/`-separated keys
 * (`bronze/shop/orders/date=2026-11-22/part-….parquet`). Engines write files locally first
 * (DuckDB COPY into `stagingDir()`), then `publish` moves them into the lake durably, so
 * an S3-compatible implementation only has to upload where the local one renames.
 */
export interface StoredObject {
  path: string;
  bytes: number;
  modifiedAt: Date;
}

export interface Storage {
  readonly kind: string;
  /** Human-readable location of the lake root (a directory or s3://bucket/prefix). */
  readonly location: string;
  /** A location DuckDB can read the object from (absolute local path or s3:// URI). */
  uri(path: string): string;
  /** A local directory for engines to write files into before `publish`. Created on demand. */
  stagingDir(): Promise<string>;
  /** Moves a finished local file to `path` atomically and durably; returns its size. */
  publish(localFile: string, path: string): Promise<StoredObject>;
  /** All objects under a prefix (recursive), in no particular order. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Deletes objects; missing objects are not an error. */
  delete(paths: readonly string[]): Promise<void>;
}
