/**
 * What a gold build reads: the lake tables attached at one pinned commit, the model's state
 * (the commit of each input it consumed, the definition that built it), and the rows of an
 * input committed since a given commit (its delta), for incremental builds.
 */
import { createHash } from 'node:crypto';
import type { GoldModelConfig } from '../config/gold.js';
import type { Lake } from '../lake/lake.js';
import { liveRowsSql, mergeOnReadKey } from '../lake/merge.js';
import { attachTables, scanSql } from '../lake/query.js';
import { parquetScan } from '../lake/scan.js';

/** Where a gold model's progress is kept (catalog state, source `_gold`, stream = model). */
export const GOLD_STATE_SOURCE = '_gold';

export interface GoldState {
  /** Head commit of each input table when the build read it (null: the table did not exist). */
  inputs: Record<string, number | null>;
  /** Fingerprint of the model definition. */
  definition: string;
}

export function definitionOf(model: GoldModelConfig, extra = ''): string {
  return createHash('sha256').update(JSON.stringify(model)).update(extra).digest('hex').slice(0, 16);
}

export async function readState(lake: Lake, pipeline: string, model: string): Promise<GoldState | undefined> {
  return (await lake.catalog.getState(pipeline, GOLD_STATE_SOURCE, model)) as GoldState | undefined;
}

/** The head commit of every input (null when the table does not exist yet). */
export async function inputHeads(lake: Lake, inputs: readonly string[]): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  for (const t of inputs) out[t] = (await lake.catalog.getTable(t))?.headCommit ?? null;
  return out;
}

/** Every lake table as a `zone.table` view at the newest commit; returns that commit. */
export async function attachAll(lake: Lake): Promise<number | undefined> {
  return (await attachTables(lake)).commit;
}

/** A relation of a table's rows at a commit (empty, with the schema, when it had no files). */
export async function tableAt(lake: Lake, table: string, commit?: number): Promise<string> {
  const files = await lake.catalog.liveFiles(table, commit);
  const schema = (await lake.catalog.schemaAt(table, commit))?.schema;
  if (files.length === 0) return `(${scanSql(lake, 'parquet', [], schema?.columns ?? [])})`;
  return `(SELECT * FROM ${liveRowsSql(parquetScan(files.map((f) => lake.storage.uri(f.path))), files)})`;
}

export interface Delta {
  /** Rows committed since (added, or new versions of rewritten rows). */
  added: string;
  /** Rows gone since (removed, or old versions of rewritten rows); undefined when only files were added. */
  removed?: string | undefined;
  /** Files the delta read. */
  files: number;
}

/**
 * The rows of `table` committed after commit `since`, up to `head`: the files added since, when
 * every file live then is still live (an append-only history); otherwise the set difference of the
 * two snapshots (rewritten tables: merge, replace, compaction), read by time travel. Undefined when
 * the old snapshot cannot be read (expired by gc): the caller rebuilds in full.
 */
export async function deltaSince(lake: Lake, table: string, since: number, head: number): Promise<Delta | undefined> {
  if (since < (await lake.catalog.historyHorizon())) return undefined;
  const before = await lake.catalog.liveFiles(table, since);
  const now = await lake.catalog.liveFiles(table, head);
  if (mergeOnReadKey(now) || mergeOnReadKey(before)) {
    return {
      added: `(SELECT * FROM ${await tableAt(lake, table, head)} EXCEPT ALL SELECT * FROM ${await tableAt(lake, table, since)})`,
      removed: `(SELECT * FROM ${await tableAt(lake, table, since)} EXCEPT ALL SELECT * FROM ${await tableAt(lake, table, head)})`,
      files: now.length,
    };
  }
  const live = new Set(now.map((f) => f.path));
  if (before.every((f) => live.has(f.path))) {
    const seen = new Set(before.map((f) => f.path));
    const fresh = now.filter((f) => !seen.has(f.path));
    const schema = (await lake.catalog.schemaAt(table, head))?.schema;
    return {
      added: `(${scanSql(
        lake,
        'parquet',
        fresh.map((f) => f.path),
        schema?.columns ?? [],
      )})`,
      files: fresh.length,
    };
  }
  const [a, b] = [await tableAt(lake, table, head), await tableAt(lake, table, since)];
  return {
    added: `(SELECT * FROM ${a} EXCEPT ALL SELECT * FROM ${b})`,
    removed: `(SELECT * FROM ${b} EXCEPT ALL SELECT * FROM ${a})`,
    files: now.length,
  };
}
