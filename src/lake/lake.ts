import { resolve } from 'node:path';
import type { Catalog } from '../catalog/types.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import { openCatalog } from '../catalog/index.js';
import { type SharedBudgets, sharedBudgets } from '../catalog/budgets/index.js';
import type { LoadedProject } from '../config/load.js';
import { Engine } from './engine.js';
import { openStorage, type Storage } from './storage/index.js';
import { assertOutsideLake, DEFAULT_TEMP_DIR, engineTempDir } from './storage/scratch.js';
import { configureTracing, flushTraces, withSpan } from '../observe/trace.js';
import { resolveSecrets } from '../config/secrets.js';

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
    if (config.tracing)
      configureTracing({
        endpoint: config.tracing.endpoint,
        serviceName: config.tracing.service_name,
        headers: config.tracing.headers
          ? Object.fromEntries(
              Object.entries(config.tracing.headers).map(([k, v]) => [k, resolveSecrets(v, { baseDir: dir })]),
            )
          : undefined,
      });
    const catalog = tracedCommits(await openCatalog(config.catalog, dir));
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
      await flushTraces();
    }
  }
}

/** Every commit of this catalog traced as a `dip.commit` span (its id and operation as attributes). */
function tracedCommits(catalog: Catalog): Catalog {
  const commit = catalog.commit.bind(catalog);
  catalog.commit = (request) =>
    withSpan(
      'dip.commit',
      { 'dip.run_id': request.runId ?? undefined, 'dip.operation': request.operation },
      async (span) => {
        const done = await commit(request);
        span.setAttribute('dip.commit_id', done.id);
        return done;
      },
    );
  return catalog;
}
