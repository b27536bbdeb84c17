/**
 * DIP's connectors with their implementations loaded up front, for callers that want a source
 * synchronously (tests, tools). The runner and replay use `openSource` (open.ts), which imports
 * only the configured type's implementation; the list of connectors is connectors.ts.
 */
import type { SourceConfig } from '../config/schema.js';
import filesConnector from './files/index.js';
import gatewayConnector from './gateway/index.js';
import jetstreamConnector from './jetstream/index.js';
import kafkaConnector from './kafka/index.js';
import mysqlConnector from './mysql/index.js';
import postgresConnector from './postgres/index.js';
import restConnector from './rest/index.js';
import type { Connector, SourceInstance } from './types.js';

/** Every connector DIP ships, by `type`. */
export const connectors = {
  files: filesConnector,
  rest: restConnector,
  postgres: postgresConnector,
  mysql: mysqlConnector,
  gateway: gatewayConnector,
  kafka: kafkaConnector,
  jetstream: jetstreamConnector,
} as const;

export function createSource(config: SourceConfig, baseDir: string, sourceName: string): SourceInstance {
  const connector: Connector | undefined = (connectors as Record<string, Connector>)[config.type];
  if (!connector) throw new Error(`no connector of type "${config.type}" loaded; use openSource`);
  return connector.create(config, { baseDir, sourceName });
}
