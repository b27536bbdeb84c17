/**
 * The event log implementations the contract suite runs against: the embedded log in a temp
 * directory, and JetStream on a throwaway `nats-server -js` (skipped when the binary is missing,
 * unless DIP_REQUIRE_SERVICES=1).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedEventLog } from '../../src/eventlog/embedded.js';
import type { EventLog } from '../../src/eventlog/types.js';

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
  return [embedded];
}
