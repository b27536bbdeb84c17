/**
 * Lake storage: where data files live. Paths are relative, `/`-separated keys
 * (`bronze/shop/orders/date=2026-11-22/part-….parquet`). Engines write files locally first
 * (DuckDB COPY into `stagingDir()`, a local directory outside the lake root), then `publish`
 * moves them into the lake durably, so an S3-compatible implementation only has to upload
 * where the local one links. `test/storage.contract.test.ts` is the contract every
 * implementation passes.
 */
import type { EngineAccess } from '../engine.js';

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
  /**
   * A local directory (0700, never inside the lake root) for engines to write files into
   * before `publish`. Created on demand. Files a killed writer left there are `dip gc`'s.
   */
  stagingDir(): Promise<string>;
  /**
   * Moves a finished local file to `path` atomically (readers see the whole file or none)
   * and durably (on disk when this returns); returns its size. Lake files are immutable:
   * publishing to a path that exists fails with a `conflict` DipError and leaves it as it was.
   */
  publish(localFile: string, path: string): Promise<StoredObject>;
  /**
   * All objects under a prefix (recursive), in no particular order. The prefix is whole path
   * segments: `bronze/a` lists `bronze/a/…` (or the object `bronze/a`), never `bronze/ab/…`.
   */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Deletes objects; missing objects are not an error. */
  delete(paths: readonly string[]): Promise<void>;
  /** For a lake DuckDB cannot read by local path: what the engine does first (S3: httpfs or the read cache). */
  readonly access?: EngineAccess;
}
