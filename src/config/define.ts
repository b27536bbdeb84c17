/**
 * TypeScript API for projects written in code (dip.config.ts). `defineProject` validates with
 * the same schema, and reports problems the same way, as dip.yaml.
 */
import { validateConfig } from './issues.js';
import {
  currentProjectSchema,
  type PipelineConfigInput,
  type ProjectConfig,
  type ProjectConfigInput,
  type SourceConfigInput,
} from './schema.js';

/** Validates a project and applies defaults; throws a ConfigError naming each bad path, value and expectation. */
export function defineProject(input: ProjectConfigInput): ProjectConfig {
  return validateConfig(currentProjectSchema(), input, 'Invalid project passed to defineProject()', 'defineProject()');
}

/** Type-checks a pipeline written apart from its project; validated when the project is. */
export function definePipeline(input: PipelineConfigInput): PipelineConfigInput {
  return input;
}

/** Type-checks a source written apart from its pipeline; validated when the project is. */
export function defineSource(input: SourceConfigInput): SourceConfigInput {
  return input;
}
