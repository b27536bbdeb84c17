/** The JetStream implementation of the event log contract (types.ts). */
import { DipError } from '../core/errors.js';
import type { EventLog } from './types.js';

export interface JetStreamLogOptions {
  url: string;
  stream: string;
  subject: string;
  duplicateWindowMs: number;
}

export const JetStreamEventLog = {
  async open(o: JetStreamLogOptions): Promise<EventLog> {
    throw new DipError('config', `JetStream event logs are not available yet (stream ${o.stream})`);
  },
};
