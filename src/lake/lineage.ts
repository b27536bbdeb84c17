import type { DataFile } from '../catalog/types.js';

/** Which source inputs a lake file holds rows of: one for ingested files, several once compacted. */
export interface SourceRef {
  run_id: string;
  source_file: string;
}

export function lineage(file: Pick<DataFile, 'meta'>): SourceRef[] {
  const sources = file.meta['sources'];
  if (Array.isArray(sources)) return sources as SourceRef[];
  const sourceFile = file.meta['source_file'];
  return typeof sourceFile === 'string' ? [{ run_id: String(file.meta['run_id']), source_file: sourceFile }] : [];
}

export function refKey(ref: SourceRef): string {
  return `${ref.run_id}\u0000${ref.source_file}`;
}

/** The lineage of files merged into one, without repeats. */
export function combinedLineage(files: readonly Pick<DataFile, 'meta'>[]): SourceRef[] {
  const seen = new Map<string, SourceRef>();
  for (const f of files) for (const ref of lineage(f)) seen.set(refKey(ref), ref);
  return [...seen.values()];
}
