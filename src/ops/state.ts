/**
 * Stream state: what each stream of a pipeline remembers between runs (incremental cursors, CDC
 * positions, API partitions), and its reset, a state-only commit (history keeps the old value).
 */
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { pipelineNamed } from '../pipeline/pipelines.js';

export interface StreamState {
  source: string;
  stream: string;
  value: unknown;
  commitId: number;
}

/** The pipeline's saved stream states, only `streams` when given (each must have state). */
export async function streamStates(lake: Lake, pipeline: string, streams?: readonly string[]): Promise<StreamState[]> {
  pipelineNamed(lake.project, pipeline);
  const all = (await lake.catalog.listStates(pipeline)).filter(
    // `_reconcile.<stream>` holds reconcile reports (ops/reconcile.ts), not a stream's position.
    (s) => s.value !== null && s.stream !== '_source' && !s.stream.startsWith('_reconcile.'),
  );
  const chosen = streams ? all.filter((s) => streams.includes(s.stream)) : all;
  const unknown = (streams ?? []).filter((s) => !all.some((a) => a.stream === s));
  if (unknown.length)
    throw new DipError(
      'not_found',
      `no saved state for stream ${unknown.join(', ')} of ${pipeline} (streams with state: ${all.map((s) => s.stream).join(', ') || '(none)'})`,
    );
  return chosen;
}

/** Forgets the chosen streams' state so the next run reads them from the start; returns the states it reset. */
export async function resetStreamStates(
  lake: Lake,
  pipeline: string,
  streams?: readonly string[],
): Promise<StreamState[]> {
  const chosen = await streamStates(lake, pipeline, streams);
  if (chosen.length) {
    await lake.catalog.commit({
      runId: 'state-reset',
      operation: 'state',
      tables: [],
      state: chosen.map((s) => ({ pipeline, source: s.source, stream: s.stream, value: null })),
      summary: { pipeline, reset: chosen.map((s) => `${s.source}.${s.stream}`) },
    });
  }
  return chosen;
}
