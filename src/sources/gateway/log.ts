/**
 * Opens the event log of one endpoint of a gateway source, from its config: the gateway opens
 * it for writing, the lander for reading. Embedded: `<dir>/<endpoint>` (default dir
 * `.dip/eventlog/<pipeline>/<source>` in the project); JetStream: subject
 * `dip.<pipeline>.<source>.<endpoint>`, stream `DIP_<pipeline>_<source>_<endpoint>` (the prefix
 * configurable), one per endpoint so that sequences are offsets.
 */
import { resolve } from 'node:path';
import { resolveSecrets } from '../../config/secrets.js';
import { parseDuration } from '../../core/time.js';
import { EmbeddedEventLog } from '../../eventlog/embedded.js';
import type { EventLog } from '../../eventlog/types.js';
import { type GatewaySourceConfig, parseBytes } from './spec.js';

export interface EndpointLogTarget {
  baseDir: string;
  pipeline: string;
  source: string;
  endpoint: string;
  mode: 'writer' | 'reader';
}

/** The directory of an embedded endpoint log. */
export function embeddedLogDir(config: GatewaySourceConfig, t: Omit<EndpointLogTarget, 'mode'>): string {
  const dir =
    config.log.type === 'embedded' && config.log.dir ? config.log.dir : `.dip/eventlog/${t.pipeline}/${t.source}`;
  return resolve(t.baseDir, dir, t.endpoint);
}

export async function openEndpointLog(config: GatewaySourceConfig, t: EndpointLogTarget): Promise<EventLog> {
  const log = config.log;
  if (log.type === 'embedded') {
    return EmbeddedEventLog.open({
      dir: embeddedLogDir(config, t),
      mode: t.mode,
      segmentBytes: parseBytes(log.segment_bytes),
      retention: {
        maxBytes: log.retention.max_bytes === undefined ? undefined : parseBytes(log.retention.max_bytes),
        maxAgeMs: log.retention.max_age === undefined ? undefined : parseDuration(log.retention.max_age),
      },
    });
  }
  const { JetStreamEventLog } = await import('../../eventlog/jetstream.js');
  return JetStreamEventLog.open({
    url: resolveSecrets(log.url, { baseDir: t.baseDir }), // may hold ${env:…} credentials
    stream: `${log.stream ?? `DIP_${t.pipeline}_${t.source}`}_${t.endpoint}`,
    subject: `dip.${t.pipeline}.${t.source}.${t.endpoint}`,
    duplicateWindowMs: parseDuration(log.duplicate_window) ?? 120_000,
  });
}
