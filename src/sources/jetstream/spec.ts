/**
 * `type: jetstream` sources: NATS JetStream subjects consumed as DIP streams. Each stream reads
 * one or more filter subjects of a JetStream stream (its partitions, read in parallel); the next
 * stream sequence of each is committed in the catalog with the data. The spec: config schema,
 * example, declared tables.
 */
import { z } from 'zod';
import { identifier } from '../../config/primitives.js';
import { batchSchema, payloadSchemaField, startSchema } from '../broker/spec.js';
import { defineConnectorSpec } from '../spec.js';

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
