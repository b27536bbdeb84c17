import type { LoadedProject } from '../config/load.js';
import type { PipelineConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';

/** A pipeline of the project, or a not-found error that lists the ones there are. */
export function pipelineNamed(project: LoadedProject, name: string): PipelineConfig {
  const pipeline = project.config.pipelines[name];
  if (!pipeline) {
    const known = Object.keys(project.config.pipelines).join(', ') || '(none)';
    throw new DipError('not_found', `no pipeline named "${name}" in ${project.file} (pipelines: ${known})`);
  }
  return pipeline;
}

/** Every stream name a pipeline declares, across its sources. */
export function streamNames(pipeline: PipelineConfig): string[] {
  return Object.values(pipeline.sources).flatMap((s) => Object.keys(s.type === 'rest' ? s.resources : s.streams));
}
