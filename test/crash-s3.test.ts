/**
 * The SIGKILL crash suite (test/support/crash.ts) on an S3 lake: s3rver on loopback, the
 * lake under a key prefix; gc must leave exactly the committed files in the bucket.
 */
import { loadProject } from '../src/config/load.js';
import { Lake } from '../src/lake/lake.js';
import { crashSuite } from './support/crash.js';
import { type S3Server, startS3 } from './support/s3.js';

let s3: S3Server | undefined;

crashSuite({
  name: 's3',
  setup: async () => {
    s3 = await startS3();
  },
  teardown: async () => s3?.stop(),
  storage: () => {
    if (!s3) throw new Error('the S3 server is not started');
    return s3.storage('crash');
  },
  lakeFiles: async (dir) => {
    const lake = await Lake.open(await loadProject(dir));
    try {
      const out: string[] = [];
      for await (const o of lake.storage.list('')) out.push(o.path);
      return out;
    } finally {
      await lake.close();
    }
  },
});
