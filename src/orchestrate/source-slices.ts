/**
 * Whether runs of a source for different intervals may ingest at the same time. Only when every
 * stream reads the slice its run's interval names (an `{interval.*}` template in what selects
 * the data) and keeps no state that runs advance in turn: a REST cursor or time window, a
 * database cursor or change position. Anything else shares one state, and its runs must ingest
 * one at a time (a mutex on the ingest task), or a cursor could move backwards.
 */
import type { SourceConfig } from '../config/schema.js';

const cutByInterval = (value: unknown): boolean => JSON.stringify(value ?? null).includes('{interval.');

export function readsDisjointSlices(source: SourceConfig): boolean {
  switch (source.type) {
    case 'files': {
      const streams = Object.values(source.streams);
      return streams.length > 0 && streams.every((s) => cutByInterval(s.path));
    }
    case 'rest': {
      const resources = Object.values(source.resources);
      return (
        resources.length > 0 &&
        resources.every((r) => r.incremental === undefined && r.window === undefined && cutByInterval(r))
      );
    }
    case 'postgres':
    case 'mysql': {
      const tables = source.tables.map((t) =>
        typeof t === 'string'
          ? { mode: source.mode, sliced: false }
          : { mode: t.mode ?? source.mode, sliced: cutByInterval(t.where) },
      );
      const queries = Object.values(source.queries).map((q) => ({ mode: q.mode, sliced: cutByInterval(q.sql) }));
      const streams = [...tables, ...queries];
      return streams.length > 0 && streams.every((s) => s.mode === 'full' && s.sliced);
    }
  }
}
