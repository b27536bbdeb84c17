import type { SourceConfig } from '../config/schema.js';
import { filesConnector } from './files/index.js';
import type { SourceInstance } from './types.js';

/** Every connector DIP ships, by `type`. */
export const connectors = { files: filesConnector } as const;

export function createSource(config: SourceConfig, baseDir: string): SourceInstance {
  switch (config.type) {
    case 'files':
      return connectors.files.create(config, { baseDir });
  }
}
