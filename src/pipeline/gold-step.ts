/** The gold step of a run: each gold model built after silver and recorded like a stream. */
import type { RunStats } from '../catalog/types.js';
import type { PipelineConfig } from '../config/schema.js';
import type { Lake } from '../lake/lake.js';
import type { RunEventSink } from './events.js';

export interface GoldStepContext {
  lake: Lake;
  pipeline: string;
  runId: string;
  stats: RunStats;
  signal: AbortSignal;
  emit: RunEventSink;
  persistStats: boolean;
}

export async function buildGoldStep(
  ctx: GoldStepContext,
  pipeline: PipelineConfig,
  now: Date | undefined,
  only: string[] | undefined,
  fail: (caught: unknown, key: string) => void,
): Promise<void> {
  const { lake, pipeline: name, runId, stats, signal, emit } = ctx;
  // Imported here: a pipeline without gold models never loads the gold module.
  const { runGold, goldModels } = await import('../gold/index.js');
  for (const [model] of goldModels(pipeline, only)) {
    const key = `gold.${model}`;
    const s = (stats.streams[key] = { rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 0 });
    try {
      const [result] = await runGold(lake, name, pipeline, {
        runId,
        models: [model],
        now,
        signal,
        onEvent: (e) => emit(e),
      });
      if (result) {
        s.rows = result.newRows;
        s.quarantined = result.quarantined;
        s.commits = result.commit === null ? 0 : 1;
      }
    } catch (caught) {
      if (signal.aborted) throw caught;
      fail(caught, key);
    }
    if (ctx.persistStats) await lake.catalog.updateRunStats(runId, stats);
  }
}
