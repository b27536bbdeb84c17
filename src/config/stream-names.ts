/** Database stream names known from the configuration alone: sources/database/spec.ts; kept for importers. */
export { declaredStreamNames, streamNameOf } from '../sources/database/spec.js';
