import type { StreamStats } from '../catalog/types.js';
import type { GoldEvent } from '../gold/index.js';
import type { SilverEvent } from '../transform/silver.js';

/** What a run reports while it works; the CLI turns these into progress bars or log lines. */
export type RunEvent =
  | { type: 'run_started'; runId: string; pipeline: string }
  /** units/bytes are null when the source cannot tell them in advance. */
  | {
      type: 'stream_planned';
      pipeline: string;
      stream: string;
      units: number | null;
      bytes: number | null;
      skipped: number;
    }
  | { type: 'unit_progress'; pipeline: string; stream: string; unit: string; fraction: number; bytes: number }
  | {
      type: 'unit_committed';
      pipeline: string;
      stream: string;
      unit: string;
      rows: number;
      bytes: number;
      quarantined: number;
      commit: number | null;
    }
  /** A replace batch staged durably (listed in the stream state); it becomes visible with the stream's final commit. */
  | {
      type: 'unit_staged';
      pipeline: string;
      stream: string;
      unit: string;
      rows: number;
      bytes: number;
      quarantined: number;
      commit: number | null;
    }
  | { type: 'stream_committed'; pipeline: string; stream: string; commit: number | null; stats: StreamStats }
  | { type: 'stream_failed'; pipeline: string; stream: string; error: string }
  /** Something the user should know that does not fail the stream (a glob matching no files, an empty input). */
  | { type: 'stream_warning'; pipeline: string; stream: string; message: string }
  | { type: 'schema_changed'; table: string; changes: string[] }
  | { type: 'run_finished'; runId: string; pipeline: string; status: string }
  | SilverEvent
  | GoldEvent;

export type RunEventSink = (event: RunEvent) => void;
