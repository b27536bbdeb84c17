/**
 * Publishes to a Kafka topic with an idempotent KafkaJS producer (acks=all): within one producer session
 * the broker drops retried duplicates; each message carries its id in the `dip-event-id` header
 * and its key (the row's primary key when known) as the Kafka key.
 */
import { DipError, errorMessage } from '../../core/errors.js';
import { defineDestination } from '../types.js';
import { kafkaDestinationSpec } from './spec.js';

export default defineDestination({
  spec: kafkaDestinationSpec,
  async open(config) {
    const { Kafka, logLevel } = await import('kafkajs');
    const kafka = new Kafka({ clientId: config.client_id, brokers: config.brokers, logLevel: logLevel.NOTHING });
    const fail = (e: unknown): never => {
      throw new DipError('transient', `destination kafka ${config.topic}: ${errorMessage(e)}`);
    };
    let producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    try {
      await producer.connect();
    } catch (e) {
      // A cluster whose metadata names a controller that is not among its brokers (librdkafka's
      // mock) cannot hand out a producer id: publish without broker-side dedup (acks=all, one
      // request in flight); consumers still dedup by the dip-event-id header.
      if ((e as { name?: string }).name !== 'KafkaJSBrokerNotFound') fail(e);
      await producer.disconnect().catch(() => undefined);
      producer = kafka.producer({ idempotent: false, maxInFlightRequests: 1 });
      await producer.connect().catch(fail);
    }
    return {
      async publish(messages) {
        for (let i = 0; i < messages.length; i += 1000) {
          await producer
            .send({
              topic: config.topic,
              acks: -1,
              messages: messages.slice(i, i + 1000).map((m) => ({
                key: m.key === null ? null : Buffer.from(m.key),
                value: Buffer.from(m.value),
                headers: { 'dip-event-id': m.id },
              })),
            })
            .catch(fail);
        }
      },
      close: () => producer.disconnect(),
    };
  },
});
