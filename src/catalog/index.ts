import { resolve } from 'node:path';
import type { CatalogConfig } from '../config/schema.js';
import { resolveSecrets } from '../config/secrets.js';
import { connectionErrorKind } from '../core/connection-errors.js';
import { DipError, errorMessage } from '../core/errors.js';
import type { Catalog } from './types.js';

export type * from './types.js';

/** Opens the configured catalog; drivers load lazily so SQLite users never load `pg`. */
export async function openCatalog(config: CatalogConfig, baseDir: string): Promise<Catalog> {
  switch (config.kind) {
    case 'sqlite': {
      const { SqliteCatalog } = await import('./sqlite.js');
      return SqliteCatalog.create(resolve(baseDir, config.path), { projectDir: resolve(baseDir) });
    }
    case 'postgres': {
      const { PostgresCatalog } = await import('./postgres.js');
      const url = resolveSecrets(config.url, { baseDir });
      try {
        return await PostgresCatalog.create({ url, schema: config.schema, projectDir: resolve(baseDir) });
      } catch (err) {
        if (err instanceof DipError) throw err;
        throw new DipError(
          connectionErrorKind(err),
          `cannot open the PostgreSQL catalog at ${withoutPassword(url)} (schema ${config.schema}): ${errorMessage(err)}`,
          { cause: err },
        );
      }
    }
  }
}

/** A connection URL fit for messages: the password replaced by ***. */
export function withoutPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable connection URL)';
  }
}
