import { join } from 'node:path';
import type { Catalog } from '../catalog/types.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { openCatalog } from '../catalog/index.js';
import type { LoadedProject } from '../config/load.js';
import { Engine } from './engine.js';
import { openStorage, type Storage } from './storage/index.js';

/** A project's lake: storage for files, the catalog for what is committed, DuckDB for compute. */
export class Lake {
  private constructor(
    readonly project: LoadedProject,
    readonly storage: Storage,
    readonly catalog: Catalog,
    readonly engine: Engine,
  ) {}

  static async open(project: LoadedProject): Promise<Lake> {
    const { config, dir } = project;
    const storage = await openStorage(config.storage, dir);
    const catalog = await openCatalog(config.catalog, dir);
    try {
      const staging = await storage.stagingDir();
      const engine = Engine.start(
        {
          threads: config.engine.threads,
          memoryLimit: config.engine.memory_limit,
          tempDirectory: join(staging, 'duckdb-spill'),
        },
        (err) =>
          new ConfigError(
            `${project.file}: engine settings were refused by DuckDB (engine: ${JSON.stringify(config.engine)}): ${errorMessage(err)}`,
            { cause: err },
          ),
      );
      return new Lake(project, storage, catalog, engine);
    } catch (err) {
      await catalog.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    try {
      await this.engine.close();
    } finally {
      await this.catalog.close();
    }
  }
}
