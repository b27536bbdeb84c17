import { resolve } from 'node:path';
import type { StorageConfig } from '../../config/schema.js';
import { LocalStorage } from './local.js';
import { assertOutsideLake, DEFAULT_STAGING_DIR } from './scratch.js';
import type { Storage } from './types.js';

export type { Storage, StoredObject } from './types.js';

/**
 * Opens the storage a project configures; relative paths resolve against `baseDir`.
 * `configFile` names dip.yaml in the error for a staging directory inside the lake.
 */
export async function openStorage(config: StorageConfig, baseDir: string, configFile = 'dip.yaml'): Promise<Storage> {
  switch (config.kind) {
    case 'local': {
      const root = resolve(baseDir, config.path);
      const staging = resolve(baseDir, config.staging ?? DEFAULT_STAGING_DIR);
      assertOutsideLake(staging, root, 'storage.staging', configFile);
      return LocalStorage.create(root, staging);
    }
    case 's3': {
      // Loaded only for an S3 lake: the AWS SDK is large, and most commands on a local lake never need it.
      const { S3Storage } = await import('./s3.js');
      return new S3Storage({
        config,
        staging: resolve(baseDir, config.staging ?? DEFAULT_STAGING_DIR),
        cacheDir: resolve(baseDir, config.cache.path),
        baseDir,
      });
    }
  }
}
