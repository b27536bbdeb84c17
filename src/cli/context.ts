import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { LoadedProject } from '../config/load.js';
import type { Lake } from '../lake/lake.js';

export interface GlobalOptions {
  project?: string;
  json?: boolean;
}

// config/load (zod, yaml) and the lake are imported when a command runs, not when it is
// registered: `dip --help` and `dip --version` never load them.
export async function loadFromOptions(options: GlobalOptions): Promise<LoadedProject> {
  const { findProjectFile, loadProject } = await import('../config/load.js');
  const file = options.project ? resolve(options.project) : findProjectFile(process.cwd());
  if (!file) {
    throw new ConfigError(
      `no dip.yaml found in ${process.cwd()} or its parents; create one with \`dip init\` or pass --project <path>`,
    );
  }
  return loadProject(file);
}

/** Opens the project's lake for the duration of `fn`. */
export async function withLake<T>(options: GlobalOptions, fn: (lake: Lake) => Promise<T>): Promise<T> {
  const project = await loadFromOptions(options);
  const { Lake } = await import('../lake/lake.js');
  const lake = await Lake.open(project);
  try {
    return await fn(lake);
  } finally {
    await lake.close();
  }
}
