/** The REST connector's config schema moved to its folder (sources/rest/spec.ts); kept for importers. */
export * from '../sources/rest/spec.js';
