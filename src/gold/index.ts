/**
 * The gold step: builds a pipeline's gold models (all, or the ones named) in dependency order,
 * each from the lake tables attached at one commit, each landing in ONE commit with its state
 * (the commit its inputs were read at and its definition), quality report and quarantine.
 * A model whose inputs have not moved since it was built, under the same definition, is up to date.
 */
import type { PipelineConfig } from '../config/schema.js';
import { goldModelInputs, type GoldModelConfig } from '../config/gold.js';
import { ConfigError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { buildAggregate } from './aggregate.js';
import { attachAll, definitionOf, readState, type GoldState } from './inputs.js';
import { buildModuleModel } from './module-model.js';
import { buildScd2 } from './scd2.js';
import { buildSqlModel } from './sql-model.js';
import { buildDateDimension, buildDimension, buildFact, buildTimeDimension, holidaysFingerprint } from './star.js';
import type { GoldModelResult, GoldTarget } from './write.js';

export type { GoldModelResult } from './write.js';
export { GOLD_STATE_SOURCE } from './inputs.js';

export interface GoldOptions {
  runId: string;
  /** Models to build (default: all of the pipeline). */
  models?: string[] | undefined;
  /** Rebuild from every input row. */
  fullRefresh?: boolean | undefined;
  now?: Date | undefined;
  signal?: AbortSignal | undefined;
  onEvent?: ((event: GoldEvent) => void) | undefined;
}

export type GoldEvent =
  | { type: 'gold_started'; table: string; kind: GoldModelConfig['kind'] }
  | { type: 'gold_warning'; table: string; message: string }
  | { type: 'gold_committed'; table: string; result: GoldModelResult };

/** The models to build, every one after the gold models it reads. */
export function goldModels(pipeline: PipelineConfig, only?: readonly string[]): [string, GoldModelConfig][] {
  const gold = pipeline.gold ?? {};
  const all = Object.entries(gold);
  if (only) {
    const unknown = only.filter((m) => !Object.hasOwn(gold, m));
    if (unknown.length)
      throw new ConfigError(
        `no gold model ${unknown.join(', ')} in this pipeline (gold models: ${all.map(([n]) => n).join(', ') || 'none'})`,
      );
  }
  const chosen = all.filter(([n]) => !only || only.includes(n));
  const names = new Set(chosen.map(([n]) => n));
  const out: [string, GoldModelConfig][] = [];
  const done = new Set<string>();
  const visit = (entry: [string, GoldModelConfig], path: string[]) => {
    const [name, cfg] = entry;
    if (done.has(name)) return;
    if (path.includes(name))
      throw new ConfigError(`gold models depend on each other in a cycle: ${[...path, name].join(' → ')}`);
    for (const input of goldModelInputs(name, cfg)) {
      const dep = input.startsWith('gold.') ? input.slice('gold.'.length) : undefined;
      const e = dep && names.has(dep) ? chosen.find(([n]) => n === dep) : undefined;
      if (e) visit(e, [...path, name]);
    }
    done.add(name);
    out.push(entry);
  };
  for (const e of chosen) visit(e, []);
  return out;
}

export async function runGold(
  lake: Lake,
  pipelineName: string,
  pipeline: PipelineConfig,
  options: GoldOptions,
): Promise<GoldModelResult[]> {
  const results: GoldModelResult[] = [];
  for (const [name, model] of goldModels(pipeline, options.models)) {
    options.signal?.throwIfAborted();
    results.push(await buildModel(lake, pipelineName, pipeline, name, model, options));
  }
  return results;
}

async function buildModel(
  lake: Lake,
  pipelineName: string,
  pipeline: PipelineConfig,
  name: string,
  model: GoldModelConfig,
  options: GoldOptions,
): Promise<GoldModelResult> {
  const table = `gold.${name}`;
  const emit = options.onEvent ?? (() => undefined);
  const warnings: string[] = [];
  const t: GoldTarget = {
    lake,
    pipeline: pipelineName,
    runId: options.runId,
    now: options.now ?? new Date(),
    warn: (message) => {
      warnings.push(message);
      emit({ type: 'gold_warning', table, message });
    },
  };
  const inputs = goldModelInputs(name, model);
  const definition = definitionOf(
    model,
    model.kind === 'date_dimension' ? holidaysFingerprint(lake.project.dir, model) : '',
  );
  const previous = await lake.catalog
    .getTable(table)
    .then(async (info) => (info?.headCommit != null ? readState(lake, pipelineName, name) : undefined));
  const heads: Record<string, number | null> = {};
  for (const i of inputs) heads[i] = (await lake.catalog.getTable(i))?.headCommit ?? null;
  const missing = inputs.filter((i) => heads[i] === null);
  const sameDefinition = !options.fullRefresh && previous !== undefined && previous.definition === definition;
  const moved = inputs.some((i) => {
    const seen = previous?.inputs[i];
    return seen === undefined || seen === null || (heads[i] as number) > seen;
  });
  if (missing.length || (sameDefinition && !moved)) {
    const info = await lake.catalog.getTable(table);
    if (missing.length) t.warn(`${missing.join(', ')} ${missing.length === 1 ? 'has' : 'have'} no data yet`);
    return {
      table,
      kind: model.kind,
      mode: 'up_to_date',
      rows: info?.rows ?? 0,
      newRows: 0,
      quarantined: 0,
      commit: null,
      warnings,
    };
  }
  emit({ type: 'gold_started', table, kind: model.kind });
  // Every input is read at this one commit, which the state records for each of them.
  const head = (await attachAll(lake)) ?? 0;
  const state: GoldState = { inputs: Object.fromEntries(inputs.map((i) => [i, head])), definition };
  const b = { name, state, previous, incrementalOk: sameDefinition, head };
  let result: GoldModelResult;
  switch (model.kind) {
    case 'sql':
      result = await buildSqlModel(t, { ...b, model });
      break;
    case 'module':
      result = await buildModuleModel(t, { ...b, model });
      break;
    case 'scd2': {
      const from = await lake.catalog.getTable(model.from);
      const at = from?.headCommit != null ? (await lake.catalog.getCommit(from.headCommit))?.committedAt : undefined;
      result = await buildScd2(t, { ...b, model, snapshotAt: at ?? t.now });
      break;
    }
    case 'dimension':
      result = await buildDimension(t, name, model, state);
      break;
    case 'date_dimension':
      result = await buildDateDimension(t, name, model, state);
      break;
    case 'time_dimension':
      result = await buildTimeDimension(t, name, model, state);
      break;
    case 'fact':
      result = await buildFact(t, name, model, pipeline.gold ?? {}, state);
      break;
    case 'aggregate':
      result = await buildAggregate(t, { ...b, model });
      break;
  }
  result.warnings = [...warnings, ...result.warnings];
  emit({ type: 'gold_committed', table, result });
  return result;
}
