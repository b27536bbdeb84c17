/**
 * A throwaway S3-compatible server (s3rver, an npm dev dependency) on a free loopback port,
 * its data in a temp directory, for tests of the S3 lake. It runs in a child process, so a
 * test blocked in `spawnSync` (running the CLI) does not stall it. Its credentials are
 * s3rver's fixed pair, passed to dip by reference (`${env:DIP_TEST_S3_KEY}`), as a user would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const S3_BUCKET = 'dip-lake';
export const S3_ENV = { DIP_TEST_S3_KEY: 'S3RVER', DIP_TEST_S3_SECRET: 'S3RVER' };

export interface S3Server {
  endpoint: string;
  dir: string;
  /** The `storage` section of dip.yaml for a lake under `prefix`. */
  storage(prefix: string, extra?: Record<string, unknown>): Record<string, unknown>;
  stop(): Promise<void>;
}

const SERVER = `
import S3rver from 's3rver';
const [dir, ...buckets] = process.argv.slice(1);
const server = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true, configureBuckets: buckets.map((name) => ({ name })) });
const { port } = await server.run();
process.stdout.write(JSON.stringify({ port }) + '\\n');
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
`;

export async function startS3(buckets: string[] = [S3_BUCKET]): Promise<S3Server> {
  Object.assign(process.env, S3_ENV);
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  const dir = await mkdtemp(join(tmpdir(), 'dip-s3rver-'));
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', SERVER, dir, ...buckets], {
    cwd: join(import.meta.dirname, '..', '..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve((JSON.parse(out) as { port: number }).port);
    });
    child.on('exit', (code) => reject(new Error(`s3rver exited ${code}: ${err}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    dir,
    storage: (prefix, extra = {}) => ({
      kind: 's3',
      bucket: S3_BUCKET,
      prefix,
      endpoint,
      region: 'us-east-1',
      credentials: { access_key_id: '${env:DIP_TEST_S3_KEY}', secret_access_key: '${env:DIP_TEST_S3_SECRET}' },
      ...extra,
    }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
