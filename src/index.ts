/**
 * DIP's programmatic API: define projects in TypeScript, open a lake, run pipelines, query.
 *
 *   import { defineProject, loadProject, Lake, runPipeline, query } from 'dip';
 */
export {
  defineProject,
  definePipeline,
  defineSource,
  loadProject,
  parseProject,
  findProjectFile,
} from './config/index.js';
export type {
  ProjectConfig,
  ProjectConfigInput,
  PipelineConfig,
  PipelineConfigInput,
  SourceConfig,
  SourceConfigInput,
  FileStreamConfig,
  CsvOptions,
  WriteDisposition,
  LoadedProject,
} from './config/index.js';
export { Lake } from './lake/lake.js';
export { query, attachTables, type QueryResult } from './lake/query.js';
export {
  collectGarbage,
  compactTable,
  rollbackTable,
  type GcOptions,
  type GcResult,
  type CompactOptions,
  type CompactResult,
} from './lake/maintenance.js';
export { replayStream, type ReplayRange, type ReplayResult } from './lake/replay.js';
export { runPipeline, type RunOptions, type RunResult } from './pipeline/run.js';
export type { RunEvent, RunEventSink } from './pipeline/events.js';
export { openCatalog } from './catalog/index.js';
export type * from './catalog/types.js';
export { openStorage, type Storage, type StoredObject } from './lake/storage/index.js';
export {
  defineConnector,
  type Connector,
  type SourceInstance,
  type StreamSpec,
  type ReadUnit,
  type FileInput,
  type PlanContext,
  type StreamPlan,
} from './sources/types.js';
export { defineConnectorSpec, type ConnectorSpec, type Declared, type DeclaredTable } from './sources/spec.js';
export { CONNECTORS } from './sources/connectors.js';
export { registerConnector, type ConnectorModule } from './sources/open.js';
export { DipError, ConfigError, SchemaChangeError, CommitConflictError, type ErrorKind } from './core/errors.js';
