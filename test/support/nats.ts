/**
 * A throwaway NATS server with JetStream (`nats-server -js`) on a free loopback port with a temp
 * store directory, for the event log contract suite, the gateway's JetStream tests and the broker source, sink and benchmark.
 */
import { rm } from 'node:fs/promises';
import { connect } from 'node:net';
import {
  findExecutable,
  freePort,
  makeServiceTempDir,
  removeOnExit,
  type ServiceProbe,
  spawnServer,
  assertAvailable,
  waitForExit,
  waitUntil,
} from './service.js';

export function natsProbe(): ServiceProbe {
  const bin = findExecutable('nats-server');
  return bin
    ? { name: 'NATS (nats-server)', available: true }
    : {
        name: 'NATS (nats-server)',
        available: false,
        reason: 'nats-server not found on PATH, /usr/sbin or /usr/bin (apt-get install nats-server)',
      };
}

export interface NatsServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startNats(): Promise<NatsServer> {
  const probe = natsProbe();
  assertAvailable(probe);
  const bin = findExecutable('nats-server') as string;
  const dir = await makeServiceTempDir('dip-nats-');
  const cleanup = removeOnExit(dir);
  const port = await freePort();
  const child = spawnServer(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' });
  await waitUntil(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }),
    {
      what: `nats-server on 127.0.0.1:${port}`,
      timeoutMs: 30_000,
      abort: () => (child.exitCode !== null ? 'nats-server exited' : undefined),
    },
  );
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      child.kill('SIGTERM');
      if (!(await waitForExit(child, 5000))) child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      cleanup.release();
    },
  };
}
