/**
 * Table-level lineage of a project: each source's streams land raw (when kept) and in bronze, and
 * silver tables are refined from bronze tables (their `from`), their child tables from them. Nodes
 * carry the rows the catalog holds (null when the table has not been committed yet).
 */
import type { Lake } from '../lake/lake.js';
import { bronzeTableNames } from '../pipeline/pipelines.js';

export type LineageKind = 'source' | 'raw' | 'bronze' | 'silver' | 'gold';

export interface LineageNode {
  id: string;
  kind: LineageKind;
  pipeline: string;
  /** Rows committed (null: not in the catalog yet, or a source). */
  rows: number | null;
}

export interface LineageEdge {
  from: string;
  to: string;
}

export interface LineageGraph {
  nodes: LineageNode[];
  edges: LineageEdge[];
}

const bronzeName = (table: string): string => (table.startsWith('bronze.') ? table : `bronze.${table}`);

export async function projectLineage(lake: Lake): Promise<LineageGraph> {
  const tables = new Map((await lake.catalog.listTables()).map((t) => [t.name, t]));
  const nodes = new Map<string, LineageNode>();
  const edges = new Map<string, LineageEdge>();
  const node = (id: string, kind: LineageKind, pipeline: string) => {
    if (!nodes.has(id)) nodes.set(id, { id, kind, pipeline, rows: tables.get(id)?.rows ?? null });
  };
  const edge = (from: string, to: string) => edges.set(`${from}\u0000${to}`, { from, to });
  for (const [pipeline, config] of Object.entries(lake.project.config.pipelines)) {
    const rawKept = config.raw?.enabled ?? true;
    for (const [sourceName, source] of Object.entries(config.sources)) {
      const sourceId = `source:${pipeline}.${sourceName}`;
      node(sourceId, 'source', pipeline);
      for (const table of bronzeTableNames({ ...config, sources: { [sourceName]: source } }).names) {
        const bronze = bronzeName(table);
        node(bronze, 'bronze', pipeline);
        const raw = `raw.${table.replace(/^bronze\./, '')}`;
        if (rawKept && tables.has(raw)) {
          node(raw, 'raw', pipeline);
          edge(sourceId, raw);
          edge(raw, bronze);
        } else edge(sourceId, bronze);
      }
    }
    for (const [name, silver] of Object.entries(config.silver)) {
      const id = `silver.${name}`;
      node(id, 'silver', pipeline);
      const from = bronzeName(silver.from);
      node(from, 'bronze', pipeline);
      edge(from, id);
      // Child tables (<table>__<name>) that exist in the catalog.
      for (const t of tables.keys())
        if (t.startsWith(`${id}__`)) {
          node(t, 'silver', pipeline);
          edge(id, t);
        }
    }
  }
  for (const t of tables.values())
    if (t.zone === 'gold') {
      node(t.name, 'gold', '');
    }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}
