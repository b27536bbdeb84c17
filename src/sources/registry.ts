import type { SourceConfig } from '../config/schema.js';
import { filesConnector } from './files/index.js';
import { restConnector } from './rest/index.js';
import { postgresConnector } from './postgres/index.js';
import { mysqlConnector } from './mysql/index.js';
import type { SourceInstance } from './types.js';

/** Every connector DIP ships, by `type`. */
export const connectors = {
  files: filesConnector,
  rest: restConnector,
  postgres: postgresConnector,
  mysql: mysqlConnector,
} as const;

export function createSource(config: SourceConfig, baseDir: string, sourceName: string): SourceInstance {
  switch (config.type) {
    case 'files':
      return connectors.files.create(config, { baseDir, sourceName });
    case 'rest':
      return connectors.rest.create(config, { baseDir, sourceName });
    case 'postgres':
      return connectors.postgres.create(config, { baseDir, sourceName });
    case 'mysql':
      return connectors.mysql.create(config, { baseDir, sourceName });
  }
}
