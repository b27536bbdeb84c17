/**
 * Imports a project's JS or TS module (dip.config.ts, module tasks). TypeScript needs a loader
 * on Node 20: when plain import refuses a .ts file, DIP registers tsx (when it is installed) once
 * and tries again. Loaded modules are cached by path, so a task run thousands of times resolves
 * its module once.
 */
import { pathToFileURL } from 'node:url';

const cache = new Map<string, Promise<Record<string, unknown>>>();
let tsxRegistered: Promise<boolean> | undefined;

export function importModule(file: string): Promise<Record<string, unknown>> {
  let loaded = cache.get(file);
  if (!loaded) {
    loaded = load(file);
    cache.set(file, loaded);
    loaded.catch(() => cache.delete(file));
  }
  return loaded;
}

async function load(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_FILE_EXTENSION' || !(await registerTsx())) throw err;
    return (await import(url)) as Record<string, unknown>;
  }
}

function registerTsx(): Promise<boolean> {
  tsxRegistered ??= import('tsx/esm/api').then(
    (api: { register: () => unknown }) => {
      api.register();
      return true;
    },
    () => false,
  );
  return tsxRegistered;
}
