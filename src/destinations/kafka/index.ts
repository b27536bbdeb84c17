/**
 * Publishes to a Kafka topic with an idempotent producer (acks=all): within one producer session
 * the broker drops retried duplicates; each message carries its id in the `dip-event-id` header
 * and its key (the row's primary key when known) as the Kafka key.
 */
import { DipError, errorMessage } from '../../core/errors.js';
import { defineDestination } from '../types.js';
import { kafkaDestinationSpec } from './spec.js';

export default defineDestination({
  spec: kafkaDestinationSpec,
  async open(config) {
    const kafka = await import('@platformatic/kafka');
    const producer = new kafka.Producer({
      clientId: config.client_id,
      bootstrapBrokers: config.brokers,
      idempotent: true,
      acks: -1,
    });
    return {
      async publish(messages) {
        for (let i = 0; i < messages.length; i += 1000) {
          await producer
            .send({
              messages: messages.slice(i, i + 1000).map((m) => ({
                topic: config.topic,
                key: m.key === null ? undefined : Buffer.from(m.key),
                value: Buffer.from(m.value),
                headers: new Map([[Buffer.from('dip-event-id'), Buffer.from(m.id)]]),
              })),
            })
            .catch((e: unknown) => {
              throw new DipError('transient', `destination kafka ${config.topic}: ${errorMessage(e)}`);
            });
        }
      },
      close: () => producer.close(),
    };
  },
});
