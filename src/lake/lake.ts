import { resolve } from 'node:path';
import type { Catalog } from '../catalog/types.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { openCatalog } from '../catalog/index.js';
import { type SharedBudgets, sharedBudgets } from '../catalog/budgets/index.js';
import type { LoadedProject } from '../config/load.js';
import { Engine } from './engine.js';
import { openStorage, type Storage } from './storage/index.js';
import { assertOutsideLake, DEFAULT_TEMP_DIR, engineTempDir } from './storage/scratch.js';

/** A project's lake: storage for files, the catalog for what is committed, DuckDB for compute. */
export class Lake {
  private constructor(
    readonly project: LoadedProject,
    readonly storage: Storage,
    readonly catalog: Catalog,
    readonly engine: Engine,
    /** Where engines' spill directories are (`engine.temp_directory`), outside the lake. */
    readonly tempRoot: string,
    /** Rate budgets shared with every other process of the deployment (none on SQLite without Redis). */
    readonly budgets: SharedBudgets | undefined,
  ) {}

  static async open(project: LoadedProject): Promise<Lake> {
    const { config, dir } = project;
    const storage = await openStorage(config.storage, dir, project.file);
    const tempRoot = resolve(dir, config.engine.temp_directory ?? DEFAULT_TEMP_DIR);
    if (config.storage.kind === 'local')
      assertOutsideLake(tempRoot, resolve(dir, config.storage.path), 'engine.temp_directory', project.file);
    const catalog = await openCatalog(config.catalog, dir);
    try {
      const engine = Engine.start(
        {
          threads: config.engine.threads,
          memoryLimit: config.engine.memory_limit,
          tempDirectory: engineTempDir(tempRoot),
          access: storage.access,
        },
        (err) =>
          new ConfigError(
            `${project.file}: engine settings were refused by DuckDB (engine: ${JSON.stringify(config.engine)}): ${errorMessage(err)}`,
            { cause: err },
          ),
      );
      const budgets = sharedBudgets(config.catalog, config.coordination?.redis_url, dir);
      return new Lake(project, storage, catalog, engine, tempRoot, budgets);
    } catch (err) {
      await catalog.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    try {
      await this.engine.close();
    } finally {
      await this.budgets?.close().catch(() => undefined);
      await this.catalog.close();
    }
  }
}
