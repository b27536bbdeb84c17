/**
 * `type: kafka` sources: Kafka topics consumed as DIP streams. Each stream reads one topic, all
 * its partitions in parallel; each partition's next offset is committed in the catalog with the
 * data (and, after that, to the consumer group, for the usual lag tools). The spec: config
 * schema, example, declared tables.
 */
import { z } from 'zod';
import { identifier } from '../../config/primitives.js';
import { batchSchema, payloadSchemaField, startSchema } from '../broker/spec.js';
import { defineConnectorSpec } from '../spec.js';

export const kafkaStreamSchema = z
  .strictObject({
    topic: z.string().min(1).describe('The Kafka topic'),
    table: identifier.optional().describe('Destination table in each zone; defaults to the stream name'),
    schema: payloadSchemaField,
  })
  .describe('One DIP stream: a topic and the table it lands in');

export const kafkaSourceSchema = z
  .strictObject({
    type: z.literal('kafka'),
    brokers: z
      .array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port'))
      .min(1)
      .describe('Bootstrap brokers, host:port'),
    group: z
      .string()
      .min(1)
      .optional()
      .describe('Consumer group (default dip-<pipeline>-<source>); DIP resumes from the catalog, the group follows'),
    client_id: z.string().min(1).default('dip').describe('Kafka client id (default dip)'),
    start: startSchema.default('earliest'),
    batch: batchSchema,
    streams: z
      .record(identifier, kafkaStreamSchema)
      .refine((s) => Object.keys(s).length > 0, 'declare at least one stream')
      .describe('DIP streams, by name'),
  })
  .describe('Kafka topics consumed as streams, offsets committed with the data');

export type KafkaSourceConfig = z.output<typeof kafkaSourceSchema>;

export const kafkaSpec = defineConnectorSpec({
  type: 'kafka',
  description: 'Kafka topics consumed as streams, offsets committed with the data',
  schema: kafkaSourceSchema,
  example: {
    type: 'kafka',
    brokers: ['127.0.0.1:9092'],
    streams: { pins: { topic: 'pins', schema: 'schemas/pin.json' } },
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
