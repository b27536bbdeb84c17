import { resolve } from 'node:path';
import type { CatalogConfig } from '../config/schema.js';
import { resolveSecrets } from '../config/secrets.js';
import type { Catalog } from './types.js';

export type * from './types.js';

/** Opens the configured catalog; drivers load lazily so SQLite users never load `pg`. */
export async function openCatalog(config: CatalogConfig, baseDir: string): Promise<Catalog> {
  switch (config.kind) {
    case 'sqlite': {
      const { SqliteCatalog } = await import('./sqlite.js');
      return SqliteCatalog.create(resolve(baseDir, config.path));
    }
    case 'postgres': {
      const { PostgresCatalog } = await import('./postgres.js');
      return PostgresCatalog.create({ url: resolveSecrets(config.url, { baseDir }), schema: config.schema });
    }
  }
}
