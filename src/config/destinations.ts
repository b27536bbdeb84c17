/**
 * `destinations:` in dip.yaml: where lake tables are loaded (`dip load`). Each destination is
 * its kind's connection settings (validated against the kind's schema in `destinations/` when
 * it opens) plus the tables it loads.
 */
import { z } from 'zod';
import { identifier } from './primitives.js';

const column = z.string().min(1);

export const loadTableSchema = z
  .strictObject({
    table: z
      .string()
      .regex(/^(bronze|silver|gold)\.[A-Za-z0-9_]+$/, 'expected zone.table, e.g. silver.orders')
      .describe('The lake table loaded'),
    mode: z
      .enum(['replace', 'append', 'merge'])
      .default('replace')
      .describe(
        'replace: staging table swapped in atomically; append: new lake commits only; merge: upsert by key, deletes applied',
      ),
    target: z.string().min(1).optional().describe('Target table name (default: the lake table name without its zone)'),
    schema: z.string().min(1).optional().describe("Target schema (default: the destination's schema)"),
    key: z.array(column).min(1).optional().describe("Primary/merge key (default: the lake table's primary key)"),
    indexes: z.array(column).default([]).describe('Columns to index'),
    comments: z.record(z.string(), z.string()).default({}).describe('Column comments, by column'),
  })
  .describe('One lake table loaded into the destination');

export const destinationEntrySchema = z
  .looseObject({
    kind: z.string().min(1).describe('Destination kind, e.g. postgres'),
    tables: z.array(loadTableSchema).default([]).describe('The lake tables this destination loads'),
  })
  .describe("A destination: its kind's connection settings and the tables it loads");

export const destinationsSchema = z.record(identifier, destinationEntrySchema).describe('Destinations, by name');
export type DestinationEntry = z.output<typeof destinationEntrySchema>;
export type LoadTableConfig = z.output<typeof loadTableSchema>;
