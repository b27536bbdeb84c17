/**
 * Compaction of merge-on-read silver tables after a build: once a table's upsert and delete
 * files pass its `compaction` limits, they are folded into a new base file, as a commit of its
 * own after the build's (readers already see the build; a failed or killed compaction changes
 * nothing, and gc removes its unreferenced file).
 */
import type { SilverTableConfig } from '../config/silver.js';
import { errorMessage } from '../core/errors.js';
import { deltaRows, hasDeltas } from '../lake/deletes.js';
import type { Lake } from '../lake/lake.js';
import { compactMergeOnRead } from '../lake/maintenance.js';

export const COMPACTION_DEFAULTS = { delta_ratio: 0.25, max_builds: 16 } as const;

/** Whether a table's deltas call for compaction under these limits. */
export function needsCompaction(
  files: Parameters<typeof deltaRows>[0],
  limits: { delta_ratio: number; max_builds: number },
): boolean {
  if (!hasDeltas(files)) return false;
  const d = deltaRows(files);
  return d.delta >= limits.delta_ratio * Math.max(d.base, 1) || d.builds >= limits.max_builds;
}

/** Compacts the silver table and its child tables that need it; a failure is a warning (the build is committed). */
export async function compactAfterBuild(
  lake: Lake,
  table: string,
  cfg: SilverTableConfig,
  warn: (message: string) => void,
): Promise<{ table: string; commit: number; rows: number; ms: number }[]> {
  const limits = cfg.compaction ?? COMPACTION_DEFAULTS;
  const names = [table, ...Object.keys(cfg.children).map((c) => `${table}__${c}`)];
  for (const t of await lake.catalog.listTables())
    if (t.name.startsWith(`${table}__`) && !names.includes(t.name)) names.push(t.name);
  const done: { table: string; commit: number; rows: number; ms: number }[] = [];
  for (const name of names) {
    const info = await lake.catalog.getTable(name);
    if (!info) continue;
    const live = await lake.catalog.liveFiles(name);
    if (!needsCompaction(live, limits)) continue;
    const t0 = performance.now();
    try {
      const r = await compactMergeOnRead(lake, name, info, live);
      if (r.commit)
        done.push({ table: name, commit: r.commit.id, rows: r.rows, ms: Math.round(performance.now() - t0) });
    } catch (err) {
      warn(
        `compaction of ${name} after the build failed (the build is committed; dip compact ${name} retries): ${errorMessage(err)}`,
      );
    }
  }
  return done;
}
