/**
 * The destinations DIP knows: one line per kind. Each kind's folder `destinations/<kind>/` holds
 * `spec.ts` (listed here) and `index.ts` (imported only when a destination of that kind opens).
 */
import { z } from 'zod';
import { duckdbDestinationSpec } from './duckdb/spec.js';
import { jetstreamDestinationSpec } from './jetstream/spec.js';
import { kafkaDestinationSpec } from './kafka/spec.js';
import { postgresDestinationSpec } from './postgres/spec.js';
import type { DestinationModule, OpenDestination } from './types.js';

export const DESTINATIONS = [
  kafkaDestinationSpec,
  jetstreamDestinationSpec,
  postgresDestinationSpec,
  duckdbDestinationSpec,
] as const;

export const destinationSchema = z.discriminatedUnion('kind', [
  kafkaDestinationSpec.schema,
  jetstreamDestinationSpec.schema,
  postgresDestinationSpec.schema,
  duckdbDestinationSpec.schema,
]);
export type DestinationConfig = z.output<typeof destinationSchema>;
/** A destination as written (defaults not yet applied). */
export type DestinationInput = z.input<typeof destinationSchema>;

/** Opens a destination (its config validated against its kind's schema). */
export async function openDestination(
  config: z.input<typeof destinationSchema>,
  baseDir: string,
): Promise<OpenDestination> {
  const parsed = destinationSchema.parse(config);
  const module = (await import(`./${parsed.kind}/index.js`)) as { default: Partial<DestinationModule> };
  if (!module.default.open)
    throw new Error(`destination kind ${parsed.kind} loads tables, not messages (use dip load)`);
  return module.default.open(parsed as never, { baseDir });
}
