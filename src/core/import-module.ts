/**
 * Imports a project's JS or TS module (dip.config.ts, module tasks). TypeScript needs a loader
 * on Node 20: when plain import refuses a .ts file, DIP imports it through tsx's `tsImport` (when
 * tsx is installed). Loaded modules are cached by path, so a task run thousands of times resolves
 * its module once.
 */
import { pathToFileURL } from 'node:url';

const cache = new Map<string, Promise<Record<string, unknown>>>();
type TsImport = (specifier: string, parent: string) => Promise<Record<string, unknown>>;
let tsx: Promise<TsImport | undefined> | undefined;

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
    if ((err as NodeJS.ErrnoException).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    // A loader registered now would not help: Node remembers the failed import of this URL.
    tsx ??= import('tsx/esm/api').then(
      (api: { tsImport: TsImport }) => api.tsImport,
      () => undefined,
    );
    const tsImport = await tsx;
    if (!tsImport) throw err;
    return tsImport(url, import.meta.url);
  }
}
