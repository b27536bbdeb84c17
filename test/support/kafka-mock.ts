/**
 * A throwaway Kafka cluster for tests: librdkafka's mock cluster (real Kafka wire protocol on
 * loopback: produce, fetch, consumer groups, offset commits, CreateTopics), started by a
 * `/usr/bin/python3` process holding a `confluent_kafka.Producer({'test.mock.num.brokers': 3})`.
 * The process prints the brokers' host:port and lives until its stdin closes (or it is killed).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { assertAvailable, type ServiceProbe, waitForExit } from './service.js';

const PYTHON = '/usr/bin/python3';

const SCRIPT = `
import sys
from confluent_kafka import Producer
p = Producer({'test.mock.num.brokers': int(sys.argv[1]), 'log_level': 0})
md = p.list_topics(timeout=10)
print(','.join('%s:%d' % (b.host, b.port) for b in md.brokers.values()), flush=True)
sys.stdin.read()
`;

let probed: ServiceProbe | undefined;

export function kafkaMockProbe(): ServiceProbe {
  if (probed) return probed;
  const name = 'Kafka mock cluster (python3-confluent-kafka)';
  if (!existsSync(PYTHON)) probed = { name, available: false, reason: `${PYTHON} not found` };
  else {
    try {
      execFileSync(PYTHON, ['-c', 'import confluent_kafka'], { stdio: 'ignore' });
      probed = { name, available: true };
    } catch {
      probed = {
        name,
        available: false,
        reason: 'confluent_kafka not importable (apt-get install python3-confluent-kafka)',
      };
    }
  }
  return probed;
}

export interface KafkaMock {
  /** host:port of each broker. */
  brokers: string[];
  stop(): Promise<void>;
}

export async function startKafkaMock(brokers = 3): Promise<KafkaMock> {
  assertAvailable(kafkaMockProbe());
  const child: ChildProcess = spawn(PYTHON, ['-c', SCRIPT, String(brokers)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const list = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`the Kafka mock cluster did not start: ${err}`)), 30_000);
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve(line.trim().split(','));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the Kafka mock cluster exited (${code}): ${err}`));
    });
  });
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  return {
    brokers: list,
    async stop() {
      process.off('exit', onExit);
      child.stdin?.end();
      if (!(await waitForExit(child, 5000))) child.kill('SIGKILL');
    },
  };
}
