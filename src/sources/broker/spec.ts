/**
 * What the broker connectors' specs share (kafka/spec.ts, jetstream/spec.ts): where a stream
 * with no saved position starts, the micro-batch settings and the optional JSON Schema of
 * messages. Not a connector: no `type` of its own.
 */
import { z } from 'zod';
import { duration } from '../../config/primitives.js';

export const startSchema = z
  .union([
    z.enum(['earliest', 'latest']),
    z.strictObject({
      timestamp: z.string().datetime({ offset: true }).describe('ISO 8601 time, e.g. 2026-01-01T00:00:00Z'),
    }),
  ])
  .describe(
    'Where a stream with no saved position starts: earliest, latest, or the first message at or after a timestamp (default earliest); later runs resume from the catalog',
  );

export const batchSchema = z
  .strictObject({
    max_events: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('Messages per committed batch at most (default 10000)'),
    max_age: duration.default('1s').describe('How long a batch waits for more messages when following (default 1s)'),
  })
  .default({ max_events: 10_000, max_age: '1s' })
  .describe('Micro-batches: each is one raw + bronze commit with its positions');

export const payloadSchemaField = z
  .union([z.string().min(1), z.record(z.string(), z.unknown())])
  .optional()
  .describe('JSON Schema every message must satisfy: a file (relative to the project) or inline; invalid → quarantine');
