/**
 * A throwaway Redis (`redis-server` from /usr/bin) on a free loopback port, no persistence,
 * its directory a temp dir; same shape as the PostgreSQL harness (probe, requireOrSkip, start).
 */
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import {
  assertAvailable,
  findExecutable,
  freePort,
  makeServiceTempDir,
  removeOnExit,
  requireOrSkip,
  type ServiceProbe,
  spawnServer,
  waitForExit,
  waitUntil,
} from './service.js';

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export function redisProbe(): ServiceProbe {
  return findExecutable('redis-server')
    ? { name: 'Redis', available: true }
    : {
        name: 'Redis',
        available: false,
        reason: 'redis-server not found on PATH, /usr/sbin or /usr/bin (apt-get install redis-server)',
      };
}

export function redisTestOptions(): { skip?: string } {
  return requireOrSkip(redisProbe());
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.on('error', () => resolve(false));
  });
}

export async function startRedis(): Promise<RedisServer> {
  const probe = redisProbe();
  assertAvailable(probe);
  const dir = await makeServiceTempDir('dip-redis-');
  const cleanup = removeOnExit(dir);
  const port = await freePort();
  let output = '';
  const child = spawnServer(
    findExecutable('redis-server') as string,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await waitUntil(async () => ping(port), {
    what: `Redis on 127.0.0.1:${port}`,
    timeoutMs: 20_000,
    diagnostics: () => output.slice(-2000),
    abort: () => (child.exitCode !== null ? `redis-server exited ${child.exitCode}` : undefined),
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child.kill('SIGKILL');
      await waitForExit(child, 5000);
      await rm(dir, { recursive: true, force: true });
      cleanup.release();
    },
  };
}
