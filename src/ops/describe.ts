/** `dip describe`: a table with its schema versions and recent snapshots (commits). */
import type { CommitInfo, SchemaVersion } from '../catalog/types.js';
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { summarizeTable, tableNames, type TableSummary } from './tables.js';
import { goldModelInputs } from '../config/gold.js';

export interface TableDescription {
  /** Rows as readers see them (a CDC current-state table's true count; `pendingChanges` not merged yet). */
  table: TableSummary;
  versions: SchemaVersion[];
  commits: CommitInfo[];
  /** A gold table: the model that builds it, its inputs (lineage) and its documented columns. */
  model?: ModelDescription | undefined;
}

export interface ModelDescription {
  pipeline: string;
  kind: string;
  description?: string | undefined;
  materialized?: string | undefined;
  inputs: string[];
  columns: { name: string; type: string | null; description: string | null }[];
}

/** The gold model behind `gold.<name>`, from dip.yaml: kind, inputs and column documentation. */
export function describeModel(
  lake: Lake,
  name: string,
  schema: readonly { name: string; type: string }[],
): ModelDescription | undefined {
  if (!name.startsWith('gold.')) return undefined;
  const model = name.slice('gold.'.length);
  for (const [pipeline, p] of Object.entries(lake.project.config.pipelines)) {
    const gold = p.gold ?? {};
    const cfg = Object.hasOwn(gold, model) ? gold[model] : undefined;
    if (!cfg) continue;
    const docOf = (c: string) => {
      const d = cfg.columns[c];
      return typeof d === 'string' ? d : (d?.description ?? null);
    };
    const documented = Object.keys(cfg.columns).filter((c) => !schema.some((s) => s.name === c));
    return {
      pipeline,
      kind: cfg.kind,
      description: cfg.description,
      materialized: cfg.kind === 'sql' ? cfg.materialized : cfg.kind === 'module' ? cfg.materialized : undefined,
      inputs: goldModelInputs(model, cfg),
      columns: [
        ...schema.map((c) => ({ name: c.name, type: c.type, description: docOf(c.name) })),
        ...documented.map((c) => ({ name: c, type: null, description: docOf(c) })),
      ],
    };
  }
  return undefined;
}

export async function describeTable(lake: Lake, name: string, options: { commits: number }): Promise<TableDescription> {
  const table = await lake.catalog.getTable(name);
  if (!table) {
    const known = (await tableNames(lake)).join(', ') || '(none yet)';
    throw new DipError('not_found', `no table named ${name} (tables: ${known})`);
  }
  const versions = await lake.catalog.listSchemaVersions(name);
  const model = describeModel(lake, name, versions[versions.length - 1]?.schema.columns ?? []);
  return {
    table: await summarizeTable(lake, table),
    versions,
    commits: await lake.catalog.listCommits({ table: name, limit: options.commits }),
    ...(model ? { model } : {}),
  };
}
