/**
 * `type: jetstream` sources: NATS JetStream subjects consumed as DIP streams. Each stream reads
 * one or more filter subjects of a JetStream stream (its partitions, read in parallel); the next
 * stream sequence of each is committed in the catalog with the data. The spec: config schema,
 * example, declared tables.
 */
import { z } from 'zod';
import { duration, identifier } from '../../config/primitives.js';
import { defineConnectorSpec } from '../spec.js';

// Start, batch and payload schema: the same in kafka/spec.ts and jetstream/spec.ts (specs do not import each other).
const startSchema = z
  .union([
    z.enum(['earliest', 'latest']),
    z.strictObject({
      timestamp: z.string().datetime({ offset: true }).describe('ISO 8601 time, e.g. 2026-01-01T00:00:00Z'),
    }),
  ])
  .describe(
    'Where a stream with no saved position starts: earliest, latest, or the first message at or after a timestamp (default earliest); later runs resume from the catalog',
  );

const batchSchema = z
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

const payloadSchemaField = z
  .union([z.string().min(1), z.record(z.string(), z.unknown())])
  .optional()
  .describe('JSON Schema every message must satisfy: a file (relative to the project) or inline; invalid → quarantine');

export const jetstreamStreamSchema = z
  .strictObject({
    subjects: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .describe('Filter subject(s) in the JetStream stream, each read in parallel (e.g. orders.0, orders.1, orders.2)'),
    table: identifier.optional().describe('Destination table in each zone; defaults to the stream name'),
    schema: payloadSchemaField,
  })
  .describe('One DIP stream: subjects of the JetStream stream and the table they land in');

export const jetstreamSourceSchema = z
  .strictObject({
    type: z.literal('jetstream'),
    url: z
      .string()
      .min(1)
      .describe('NATS server URL, e.g. nats://127.0.0.1:4222; credentials in it as ${env:…}/${file:…} references'),
    stream: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'expected a JetStream stream name')
      .describe('The JetStream stream'),
    start: startSchema.default('earliest'),
    batch: batchSchema,
    streams: z
      .record(identifier, jetstreamStreamSchema)
      .refine((s) => Object.keys(s).length > 0, 'declare at least one stream')
      .describe('DIP streams, by name'),
  })
  .describe('NATS JetStream subjects consumed as streams, positions committed with the data');

export type JetStreamSourceConfig = z.output<typeof jetstreamSourceSchema>;

export const jetstreamSpec = defineConnectorSpec({
  type: 'jetstream',
  description: 'NATS JetStream subjects consumed as streams, positions committed with the data',
  schema: jetstreamSourceSchema,
  example: {
    type: 'jetstream',
    url: 'nats://127.0.0.1:4222',
    stream: 'ORDERS',
    streams: { orders: { subjects: ['orders.0', 'orders.1', 'orders.2'], schema: 'schemas/order.json' } },
  },
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
