/** What the routes of `dip serve` work with. */
import type { Lake } from '../lake/lake.js';
import type { Runtime } from '../orchestrate/runtime.js';
import type { DipMetrics } from './metrics.js';
import type { OpenApiDocument } from './openapi.js';
import type { SchedulerStatus } from './scheduler.js';

export interface ApiContext {
  lake: Lake;
  runtime: Runtime;
  clock: () => Date;
  scheduler: SchedulerStatus;
  /** Intervals one backfill request may queue (serve.max_backfill_intervals). */
  maxBackfillIntervals: number;
  metrics: DipMetrics;
  openapi: () => OpenApiDocument;
}
