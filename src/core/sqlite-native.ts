import type BetterSqlite3 from 'better-sqlite3';
import { DipError } from './errors.js';

/** The better-sqlite3 `Database` class (both majors share this API for what DIP uses). */
export type SqliteDatabaseClass = typeof BetterSqlite3;

/**
 * Which installed package provides better-sqlite3 on a Node version.
 *
 * - Node 20: `better-sqlite3` (12.x, a node::ObjectWrap addon; 13.x crashes on Node 20).
 * - Node 22 and later: `better-sqlite3-napi`, an npm alias of better-sqlite3 13.x (Node-API,
 *   prebuilt binaries inside the npm package). 12.x built against Node 24.19+ headers aborts the
 *   process (`Assertion failed: (env) != nullptr` in `node::RemoveEnvironmentCleanupHook`, from
 *   `Statement::~Statement`) when the garbage collector frees a statement or database outside a
 *   JavaScript context, for example at process exit.
 */
export function sqlitePackageFor(
  nodeVersion: string = process.versions.node,
): 'better-sqlite3' | 'better-sqlite3-napi' {
  const major = Number.parseInt(nodeVersion.replace(/^v/, '').split('.')[0] ?? '', 10);
  return Number.isFinite(major) && major >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';
}

let loaded: Promise<SqliteDatabaseClass> | undefined;

/** The better-sqlite3 `Database` class for the running Node (see `sqlitePackageFor`). */
export function loadSqlite(): Promise<SqliteDatabaseClass> {
  loaded ??= importSqlite(sqlitePackageFor());
  return loaded;
}

async function importSqlite(name: string): Promise<SqliteDatabaseClass> {
  try {
    const mod = (await import(name)) as { default: SqliteDatabaseClass };
    return mod.default;
  } catch (err) {
    loaded = undefined;
    throw new DipError(
      'internal',
      `SQLite driver package "${name}" (for Node ${process.versions.node}) could not be loaded: ${
        err instanceof Error ? err.message.split('\n')[0] : String(err)
      }; run "npm ci" with this Node version first on PATH`,
      { cause: err },
    );
  }
}
