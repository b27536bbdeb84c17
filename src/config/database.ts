/** The database connectors' config schema moved to sources/database/spec.ts; kept for importers. */
export * from '../sources/database/spec.js';
