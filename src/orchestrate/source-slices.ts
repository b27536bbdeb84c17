/**
 * Whether runs of a source for different intervals may ingest at the same time. Only when every
 * stream reads the slice its run's interval names (an `{interval.*}` template in what selects
 * the data) and keeps no state that runs advance in turn: a REST cursor or time window, a
 * database cursor or change position. Anything else shares one state, and its runs must ingest
 * one at a time (a mutex on the ingest task), or a cursor could move backwards.
 */
import type { SourceConfig } from '../config/schema.js';
import { sourceReadsDisjointSlices } from '../sources/connectors.js';

/** Each connector answers for its own config (`readsDisjointSlices` in sources/<type>/spec.ts). */
export function readsDisjointSlices(source: SourceConfig): boolean {
  return sourceReadsDisjointSlices(source);
}
