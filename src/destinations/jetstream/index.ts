/**
 * Publishes to a JetStream subject, each message with `Nats-Msg-Id` = its id, so the stream drops
 * a message it already holds (within its duplicate window, default 2 minutes).
 */
import { resolveSecrets } from '../../config/secrets.js';
import { DipError, errorMessage } from '../../core/errors.js';
import { defineDestination } from '../types.js';
import { jetstreamDestinationSpec } from './spec.js';

export default defineDestination({
  spec: jetstreamDestinationSpec,
  async open(config, context) {
    const [{ connect }, { jetstream }, { headers }] = await Promise.all([
      import('@nats-io/transport-node'),
      import('@nats-io/jetstream'),
      import('@nats-io/transport-node'),
    ]);
    const nc = await connect({ servers: resolveSecrets(config.url, { baseDir: context.baseDir }) }).catch(
      (e: unknown) => {
        throw new DipError(
          'transient',
          `destination jetstream ${config.subject}: cannot connect to ${config.url}: ${errorMessage(e)}`,
        );
      },
    );
    const js = jetstream(nc);
    const enc = new TextEncoder();
    return {
      async publish(messages) {
        for (let i = 0; i < messages.length; i += 1000) {
          await Promise.all(
            messages.slice(i, i + 1000).map((m) => {
              const h = headers();
              if (m.key !== null) h.set('dip-key', m.key);
              return js.publish(config.subject, enc.encode(m.value), { msgID: m.id, headers: h });
            }),
          );
        }
      },
      close: () => nc.close(),
    };
  },
});
