/**
 * A toy connector, defined outside DIP's source tree to show what adding a source type takes:
 * this folder (spec + implementation) and one `registerConnector` call. `type: toy` makes
 * `rows` numbered records per stream, once (its state remembers what it emitted).
 */
import { z } from 'zod';
import { defineConnectorSpec } from '../../../src/sources/spec.js';

const toyStream = z
  .strictObject({
    rows: z.number().int().min(0).describe('How many records the stream yields'),
    table: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/)
      .optional()
      .describe('Destination table; the stream name by default'),
  })
  .describe('One toy stream');

export const toySourceSchema = z
  .strictObject({
    type: z.literal('toy'),
    streams: z.record(z.string(), toyStream).describe('Streams, by name'),
  })
  .describe('Numbered records made up on the spot (tests)');

export const toySpec = defineConnectorSpec({
  type: 'toy',
  description: 'Numbered records made up on the spot (tests)',
  schema: toySourceSchema,
  example: { type: 'toy', streams: { widgets: { rows: 3 } } },
  declared: (config) => ({
    tables: Object.entries(config.streams).map(([name, s]) => ({
      table: s.table ?? name,
      stream: name,
      path: ['streams', name],
    })),
    complete: true,
  }),
  readsDisjointSlices: () => false,
});
