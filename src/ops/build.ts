/**
 * `dip build [model…]`: builds gold models (all, or the ones named, in dependency order) of the
 * pipelines that declare them, each pipeline's builds recorded as a run (so gc leaves the files
 * a build publishes before its commit alone).
 */
import type { PipelineConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';
import type { GoldEvent, GoldModelResult } from '../gold/index.js';
import type { Lake } from '../lake/lake.js';
import { asRegisteredWriter } from '../lake/writers.js';

export interface BuildOptions {
  /** Model names (`x` or `gold.x`); default: every model of every pipeline. */
  models?: string[] | undefined;
  fullRefresh?: boolean | undefined;
  onEvent?: ((e: GoldEvent) => void) | undefined;
  now?: Date | undefined;
}

export async function buildModels(lake: Lake, options: BuildOptions = {}): Promise<GoldModelResult[]> {
  const { runGold } = await import('../gold/index.js');
  const pipelines = lake.project.config.pipelines;
  const wanted = options.models?.map((m) => (m.startsWith('gold.') ? m.slice('gold.'.length) : m));
  const all = Object.entries(pipelines).flatMap(([p, c]) => Object.keys(c.gold ?? {}).map((m) => [p, m] as const));
  if (wanted) {
    const unknown = wanted.filter((m) => !all.some(([, n]) => n === m));
    if (unknown.length)
      throw new DipError(
        'not_found',
        `no gold model ${unknown.join(', ')} (gold models: ${all.map(([, n]) => n).join(', ') || 'none; declare them under pipelines.<name>.gold in dip.yaml'})`,
      );
  }
  const out: GoldModelResult[] = [];
  for (const [p, config] of Object.entries(pipelines)) {
    const models = Object.keys(config.gold ?? {}).filter((m) => !wanted || wanted.includes(m));
    if (models.length === 0) continue;
    const built = await asRegisteredWriter(
      lake,
      p,
      (runId) =>
        runGold(lake, p, config as PipelineConfig, {
          runId,
          models,
          fullRefresh: Boolean(options.fullRefresh),
          onEvent: options.onEvent,
          now: options.now,
        }),
      (results) => ({
        streams: Object.fromEntries(
          results.map((r) => [
            r.table,
            {
              rows: r.newRows,
              bytes: 0,
              files: 0,
              quarantined: r.quarantined,
              commits: r.commit === null ? 0 : 1,
              skippedFiles: 0,
            },
          ]),
        ),
      }),
    );
    out.push(...built);
  }
  return out;
}
