/** `kind: kafka` destinations: a Kafka topic (idempotent producer, acks=all). */
import { z } from 'zod';
import { defineDestinationSpec } from '../types.js';

export const kafkaDestinationSchema = z
  .strictObject({
    kind: z.literal('kafka'),
    brokers: z
      .array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port'))
      .min(1)
      .describe('Bootstrap brokers'),
    topic: z.string().min(1).describe('The topic messages go to'),
    client_id: z.string().min(1).default('dip').describe('Kafka client id (default dip)'),
  })
  .describe('A Kafka topic');

export const kafkaDestinationSpec = defineDestinationSpec({
  kind: 'kafka',
  description: 'A Kafka topic (idempotent producer; each message carries its id in the dip-event-id header)',
  schema: kafkaDestinationSchema,
  example: { kind: 'kafka', brokers: ['127.0.0.1:9092'], topic: 'dip.changes' },
});
