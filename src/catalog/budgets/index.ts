/**
 * Where a deployment's rate budgets are shared: Redis when `coordination.redis_url` is set,
 * else the catalog when it is PostgreSQL; none (each process keeps its own budgets) on SQLite.
 * Connected on first use, so a run that sends no request never connects.
 */
import { resolveSecrets } from '../../config/secrets.js';
import type { CatalogConfig } from '../../config/schema.js';
import type { SharedBudgets } from './types.js';

export type { SharedBudgets, SharedBudgetSlot } from './types.js';

export function sharedBudgets(
  catalog: CatalogConfig,
  redisUrl: string | undefined,
  baseDir: string,
): SharedBudgets | undefined {
  let opened: Promise<SharedBudgets> | undefined;
  let kind: SharedBudgets['kind'];
  let open: () => Promise<SharedBudgets>;
  if (redisUrl) {
    kind = 'redis';
    open = async () => (await import('./redis.js')).RedisBudgets.connect(resolveSecrets(redisUrl, { baseDir }));
  } else if (catalog.kind === 'postgres') {
    kind = 'postgres';
    open = async () =>
      (await import('./postgres.js')).PostgresBudgets.connect(resolveSecrets(catalog.url, { baseDir }), catalog.schema);
  } else return undefined;
  const store = () => {
    opened ??= open().catch((err: unknown) => {
      opened = undefined;
      throw err;
    });
    return opened;
  };
  return {
    kind,
    take: async (key, budget, leaseMs) => (await store()).take(key, budget, leaseMs),
    close: async () => {
      const s = await opened?.catch(() => undefined);
      await s?.close();
    },
  } satisfies SharedBudgets;
}
