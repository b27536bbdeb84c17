/** `kind: duckdb` destinations: a DuckDB database file (a portable hand-off for analysts). */
import { z } from 'zod';
import { defineDestinationSpec } from '../types.js';

export const duckdbDestinationSchema = z
  .strictObject({
    kind: z.literal('duckdb'),
    path: z.string().min(1).describe('The database file (relative to the project directory)'),
    schema: z.string().min(1).default('main').describe('Schema tables are created in (default main)'),
  })
  .describe('A DuckDB database file');

export const duckdbDestinationSpec = defineDestinationSpec({
  kind: 'duckdb',
  description: 'A DuckDB database file (the last loaded lake commit kept in dip_loads)',
  schema: duckdbDestinationSchema,
  example: { kind: 'duckdb', path: 'exports/analytics.duckdb' },
});
