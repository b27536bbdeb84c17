import type { LoadedProject } from '../config/load.js';
import type { PipelineConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';
import { declaredBy } from '../sources/connectors.js';

/** A pipeline of the project, or a not-found error that lists the ones there are. */
export function pipelineNamed(project: LoadedProject, name: string): PipelineConfig {
  // Own properties only: `dip run __proto__` names no pipeline.
  const pipeline = Object.hasOwn(project.config.pipelines, name) ? project.config.pipelines[name] : undefined;
  if (!pipeline) {
    const known = Object.keys(project.config.pipelines).join(', ') || '(none)';
    throw new DipError('not_found', `no pipeline named "${name}" in ${project.file} (pipelines: ${known})`);
  }
  return pipeline;
}

/**
 * Every stream name a pipeline declares, across its sources; `complete` is false when
 * database table patterns add streams only known once the database is asked.
 */
export function streamNames(pipeline: PipelineConfig): { names: string[]; complete: boolean } {
  const names: string[] = [];
  let complete = true;
  for (const source of Object.values(pipeline.sources)) {
    const declared = declaredBy(source);
    for (const t of declared.tables) if (!t.changeLog && t.stream !== undefined) names.push(t.stream);
    complete &&= declared.complete;
  }
  return { names: [...new Set(names)], complete };
}

/** The bronze tables a pipeline's streams land in (the stream name unless the stream names its table). */
export function bronzeTableNames(pipeline: PipelineConfig): { names: string[]; complete: boolean } {
  const names: string[] = [];
  let complete = true;
  for (const source of Object.values(pipeline.sources)) {
    const declared = declaredBy(source);
    names.push(...declared.tables.map((t) => t.table));
    complete &&= declared.complete;
  }
  return { names: [...new Set(names)], complete };
}
