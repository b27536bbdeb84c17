/** `kind: jetstream` destinations: a JetStream subject (Nats-Msg-Id dedup). */
import { z } from 'zod';
import { defineDestinationSpec } from '../types.js';

export const jetstreamDestinationSchema = z
  .strictObject({
    kind: z.literal('jetstream'),
    url: z.string().min(1).describe('NATS server URL; credentials as ${env:…}/${file:…} references'),
    subject: z.string().min(1).describe('The subject messages go to (a JetStream stream must capture it)'),
  })
  .describe('A JetStream subject');

export const jetstreamDestinationSpec = defineDestinationSpec({
  kind: 'jetstream',
  description: 'A JetStream subject (each message published with Nats-Msg-Id = its id: the stream drops repeats)',
  schema: jetstreamDestinationSchema,
  example: { kind: 'jetstream', url: 'nats://127.0.0.1:4222', subject: 'dip.changes' },
});
