export * from './schema.js';
export * from './orchestrate.js';
export * from './silver.js';
export { loadProject, parseProject, findProjectFile, PROJECT_FILE_NAMES, type LoadedProject } from './load.js';
export { defineProject, definePipeline, defineSource } from './define.js';
export {
  resolveSecrets,
  hasSecretRef,
  redact,
  SecretRegistry,
  secretRegistry,
  REDACTED,
  type ResolveSecretsOptions,
} from './secrets.js';
export { type ConfigIssue, formatIssueLine, MAX_REPORTED_ISSUES } from './issues.js';
