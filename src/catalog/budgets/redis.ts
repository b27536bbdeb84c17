/** Shared rate budgets in Redis: one sorted set per key, slot id → the time it stops counting. */
import { randomUUID } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import type { SharedBudgets, SharedBudgetSlot } from './types.js';

/** Drops lapsed slots, then takes one if fewer than ARGV[1] count; else the ms until the earliest lapses. */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[4]))
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(first[2]) - now)
`;

/** The slot counts one more window from now (server time); gone already (lapsed) is fine. */
const SETTLE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 0
`;

export class RedisBudgets implements SharedBudgets {
  readonly kind = 'redis';

  private constructor(private readonly redis: RedisClient) {}

  static async connect(url: string): Promise<RedisBudgets> {
    const { Redis } = await import('ioredis');
    const redis = new Redis(url, { maxRetriesPerRequest: 3, lazyConnect: true, connectTimeout: 5000 });
    redis.on('error', () => undefined); // surfaced by the command that fails
    await redis.connect();
    return new RedisBudgets(redis);
  }

  async take(
    key: string,
    budget: { requests: number; windowMs: number },
    leaseMs: number,
  ): Promise<{ slot: SharedBudgetSlot } | { waitMs: number }> {
    const zkey = `dip:budget:${key}`;
    const id = randomUUID();
    const wait = Number(await this.redis.eval(TAKE, 1, zkey, budget.requests, leaseMs, id, budget.windowMs));
    if (wait > 0) return { waitMs: wait };
    return {
      slot: {
        settle: async () => {
          await this.redis.eval(SETTLE, 1, zkey, id, budget.windowMs);
        },
      },
    };
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
