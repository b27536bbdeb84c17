/**
 * The event log implementations the contract suite runs against: the embedded log in a temp
 * directory, and JetStream on a throwaway `nats-server -js` (skipped when the binary is missing,
 * unless DIP_REQUIRE_SERVICES=1).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedEventLog } from '../../src/eventlog/embedded.js';
import { JetStreamEventLog } from '../../src/eventlog/jetstream.js';
import type { EventLog } from '../../src/eventlog/types.js';
import { type NatsServer, natsProbe, startNats } from './nats.js';
import { requireOrSkip } from './service.js';

export interface LogImplementation {
  name: string;
  skip?: string | undefined;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  /** Opens (or reopens) the log called `name` for writing and reading. */
  open(name: string): Promise<EventLog>;
}

export function logImplementations(): LogImplementation[] {
  let dir = '';
  const embedded: LogImplementation = {
    name: 'embedded',
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'dip-elog-contract-'));
    },
    async teardown() {
      await rm(dir, { recursive: true, force: true });
    },
    open: (name) => EmbeddedEventLog.open({ dir: join(dir, name), mode: 'writer' }),
  };
  let nats: NatsServer | undefined;
  const jetstream: LogImplementation = {
    name: 'jetstream',
    skip: requireOrSkip(natsProbe()).skip,
    async setup() {
      nats = await startNats();
    },
    async teardown() {
      await nats?.stop();
    },
    open: (name) =>
      JetStreamEventLog.open({
        url: (nats as NatsServer).url,
        stream: `DIP_TEST_${name}`,
        subject: `dip.test.${name}`,
        duplicateWindowMs: 120_000,
      }),
  };
  return [embedded, jetstream];
}
