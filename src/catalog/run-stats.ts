/** What a run counted per stream: kept in its run record, shown by `dip status` and the API. */
export interface StreamStats {
  rows: number;
  bytes: number;
  files: number;
  quarantined: number;
  commits: number;
  skippedFiles: number;
  /** Inputs that held no records (read and recorded, nothing landed). */
  emptyFiles?: number;
  /** What the run should tell the user without failing the stream (a glob matching no files, an empty input). */
  warnings?: string[];
  /** Source counters (API requests, retries, throttled time, records skipped as already loaded). */
  source?: Record<string, number>;
}

export interface RunStats {
  streams: Record<string, StreamStats>;
}
