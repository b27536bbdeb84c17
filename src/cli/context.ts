import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { findProjectFile, loadProject, type LoadedProject } from '../config/load.js';
import { Lake } from '../lake/lake.js';

export interface GlobalOptions {
  project?: string;
  json?: boolean;
}

export async function loadFromOptions(options: GlobalOptions): Promise<LoadedProject> {
  const file = options.project ? resolve(options.project) : findProjectFile(process.cwd());
  if (!file) {
    throw new ConfigError(`no dip.yaml found in ${process.cwd()} or its parents; create one with \`dip init\` or pass --project <path>`);
  }
  return loadProject(file);
}

/** Opens the project's lake for the duration of `fn`. */
export async function withLake<T>(options: GlobalOptions, fn: (lake: Lake) => Promise<T>): Promise<T> {
  const lake = await Lake.open(await loadFromOptions(options));
  try {
    return await fn(lake);
  } finally {
    await lake.close();
  }
}
