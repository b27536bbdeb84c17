/**
 * Opens a configured source, importing only its connector's module: a project of files never
 * loads the PostgreSQL, MySQL or HTTP client libraries (start-up time of every `dip` command
 * that runs pipelines). The same as `createSource` in registry.ts, which imports every connector.
 */
import type { SourceConfig } from '../config/schema.js';
import type { SourceInstance } from './types.js';

export async function openSource(config: SourceConfig, baseDir: string, sourceName: string): Promise<SourceInstance> {
  const context = { baseDir, sourceName };
  switch (config.type) {
    case 'files':
      return (await import('./files/index.js')).filesConnector.create(config, context);
    case 'rest':
      return (await import('./rest/index.js')).restConnector.create(config, context);
    case 'postgres':
      return (await import('./postgres/index.js')).postgresConnector.create(config, context);
    case 'mysql':
      return (await import('./mysql/index.js')).mysqlConnector.create(config, context);
  }
}
