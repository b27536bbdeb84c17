import type { LoadedProject } from '../config/load.js';
import type { PipelineConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';
import { declaredStreamNames } from '../config/stream-names.js';

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
  for (const s of Object.values(pipeline.sources)) {
    if (s.type === 'rest') names.push(...Object.keys(s.resources));
    else if (s.type === 'files') names.push(...Object.keys(s.streams));
    else {
      const declared = declaredStreamNames(s);
      names.push(...declared.names);
      complete &&= !declared.patterns;
    }
  }
  return { names, complete };
}

/** The bronze tables a pipeline's streams land in (the stream name unless the stream names its table). */
export function bronzeTableNames(pipeline: PipelineConfig): { names: string[]; complete: boolean } {
  const streams = streamNames(pipeline);
  const renamed = Object.values(pipeline.sources).flatMap((s) =>
    s.type === 'files'
      ? Object.entries(s.streams).map(([n, st]) => [n, st.table ?? n] as const)
      : s.type === 'rest'
        ? Object.entries(s.resources).map(([n, r]) => [n, r.table ?? n] as const)
        : [],
  );
  const byStream = new Map(renamed);
  return { names: streams.names.map((n) => byStream.get(n) ?? n), complete: streams.complete };
}
