/**
 * What the rest of DIP knows about a connector without loading it: its `type`, its config spec
 * (zod, with descriptions, from which the dip.yaml union and the JSON Schema are built), an
 * example, and the answers the loader, the task graph and the orchestrator need from a config
 * (which bronze tables it writes, whether its streams read disjoint slices). Each connector
 * declares this in `sources/<type>/spec.ts`; its implementation (`sources/<type>/index.ts`,
 * heavy: drivers, HTTP clients) is imported only when a run opens a source of that type.
 *
 * This module and the specs sit below config in the layer order (docs/architecture.md): they
 * import only zod, core and config/primitives.
 */
import type { z } from 'zod';

/** A path into a source's config, from the source (e.g. ['streams', 'orders', 'table']). */
export type SpecPath = (string | number)[];

/** A bronze table a source's config declares, with the stream writing it and where it is declared. */
export interface DeclaredTable {
  /** The bronze table name, without the zone. */
  table: string;
  /** The stream writing it; undefined when only the database can tell (a schema-qualified name). */
  stream: string | undefined;
  /** Where in the source's config it is declared (for error messages pointing at dip.yaml). */
  path: SpecPath;
  /** A change log beside a CDC stream's current table (`<table>_changes`): no stream of its own. */
  changeLog?: boolean;
}

export interface Declared {
  tables: DeclaredTable[];
  /** False when discovery (database table patterns) adds streams known only once the source is asked. */
  complete: boolean;
}

export interface ConnectorSpec<Schema extends z.ZodType = z.ZodType, Type extends string = string> {
  /** The `type:` of a source in dip.yaml. */
  type: Type;
  /** One line for docs and the JSON Schema. */
  description: string;
  /** The source's config: a strict object with `type: z.literal(type)`, every field described. */
  schema: Schema;
  /** A source config that validates against `schema` (docs, the contract test). */
  example: z.input<Schema>;
  /** The streams and bronze tables a config declares. */
  declared(config: z.output<Schema>): Declared;
  /**
   * Whether runs of this source for different intervals may ingest at once: every stream reads
   * the slice its run's interval names and keeps no state runs advance in turn.
   */
  readsDisjointSlices(config: z.output<Schema>): boolean;
}

export function defineConnectorSpec<Schema extends z.ZodType, const Type extends string>(
  spec: ConnectorSpec<Schema, Type>,
): ConnectorSpec<Schema, Type> {
  return spec;
}

/** Whether a value (a path, a resource, a where clause) names the run's interval (`{interval.…}`). */
export const cutByInterval = (value: unknown): boolean => JSON.stringify(value ?? null).includes('{interval.');
