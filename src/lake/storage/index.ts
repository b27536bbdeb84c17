import { resolve } from 'node:path';
import type { StorageConfig } from '../../config/schema.js';
import { LocalStorage } from './local.js';
import type { Storage } from './types.js';

export type { Storage, StoredObject } from './types.js';

/** Opens the storage a project configures; relative paths resolve against `baseDir`. */
export async function openStorage(config: StorageConfig, baseDir: string): Promise<Storage> {
  switch (config.kind) {
    case 'local':
      return LocalStorage.create(resolve(baseDir, config.path));
  }
}
