/** What the routes of `dip serve` work with. */
import type { PipelineConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';
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

/**
 * The pipeline a URL names (own properties only), or a not-found error that lists the pipelines
 * but, unlike pipelineNamed() for the CLI, not the project file's path.
 */
export function servedPipeline(lake: Lake, name: string): PipelineConfig {
  const pipelines = lake.project.config.pipelines;
  const config = Object.hasOwn(pipelines, name) ? pipelines[name] : undefined;
  if (!config)
    throw new DipError(
      'not_found',
      `no pipeline named "${name}" (pipelines: ${Object.keys(pipelines).join(', ') || 'none'})`,
    );
  return config;
}
