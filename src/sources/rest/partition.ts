import type { PageRequest } from './paginators.js';
import type { TemplateVars } from './template.js';

/**
 * One independent listing of a resource: the whole resource, one time window, or one parent
 * record's children. Partitions page independently and may run in parallel.
 */
export interface Partition {
  /** Stable identity across runs ('' for an unpartitioned resource). */
  key: string;
  /** Values for placeholders: parent, window, incremental. */
  vars: TemplateVars;
  /** Query parameters of this partition (incremental start, window bounds). */
  params: Record<string, string>;
  /** Parent fields copied into every record of this partition. */
  copy: Record<string, unknown>;
  /** Where an interrupted run stopped: the next page to request. */
  resume?: PageRequest | undefined;
}

/** A request that still failed after its retries, recorded so `--retry-failed` fetches exactly it again. */
export interface FailedRequest {
  partition: string;
  vars: TemplateVars;
  params: Record<string, string>;
  copy: Record<string, unknown>;
  resume?: PageRequest | undefined;
  url: string;
  status: number | null;
  error: string;
  at: string;
}

export interface CursorMark {
  value: string | number;
  /** Keys of the records seen at exactly `value`, so an inclusive `since` re-read skips them. */
  keys: string[];
}

/** What a REST stream keeps in the catalog, committed with each batch of its records. */
export interface RestStreamState {
  /** Last cursor value per partition, advanced when a pass completes. */
  incremental?: Record<string, CursorMark>;
  /** Windows: everything before this instant has been read. */
  windows_done_until?: string;
  /** The pass in progress (absent once it completed). */
  pass?: PassState;
  failed?: FailedRequest[];
}

export interface PassState {
  started_at: string;
  /** Whether this pass only re-fetches failed requests. */
  retry_failed?: boolean;
  done: string[];
  resume: Record<string, PageRequest>;
  max: Record<string, CursorMark>;
  /** Upper bound of the windows of this pass (fixed at its start, so a resumed pass plans the same windows). */
  window_to?: string;
  failed: FailedRequest[];
}
