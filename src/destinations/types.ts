/**
 * The destination contract: where DIP sends what it landed. A destination is its folder
 * `destinations/<kind>/`: `spec.ts` (kind, config schema, example) listed in ../destinations.ts,
 * and `index.ts` (default export: `open`, imported only when used). An open destination takes
 * messages, each with a stable id (the same change always gets the same id), and publishes them
 * in order; `publish` resolves once the destination acknowledged all of them.
 */
import type { z } from 'zod';

export interface DestinationSpec<Schema extends z.ZodType = z.ZodType, Kind extends string = string> {
  kind: Kind;
  description: string;
  schema: Schema;
  example: z.input<Schema>;
}

export function defineDestinationSpec<Schema extends z.ZodType, const Kind extends string>(
  spec: DestinationSpec<Schema, Kind>,
): DestinationSpec<Schema, Kind> {
  return spec;
}

/** One message: a stable id (dedup), a key (partitioning), the value (JSON text). */
export interface OutMessage {
  id: string;
  key: string | null;
  value: string;
}

export interface OpenDestination {
  /** Publishes in order; resolves once every message is acknowledged by the destination. */
  publish(messages: readonly OutMessage[]): Promise<void>;
  close(): Promise<void>;
}

export interface DestinationModule<Spec extends DestinationSpec = DestinationSpec> {
  spec: Spec;
  open(config: z.output<Spec['schema']>, context: { baseDir: string }): Promise<OpenDestination>;
}

export function defineDestination<Spec extends DestinationSpec>(d: DestinationModule<Spec>): DestinationModule<Spec> {
  return d;
}
