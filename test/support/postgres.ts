/**
 * A throwaway PostgreSQL server for tests, from the Debian binaries (`apt-get install postgresql`).
 *
 *   const pg = await startPostgres();   // fresh cluster, free port, trust auth, logical WAL
 *   ... pg.url ...                       // postgres://postgres@127.0.0.1:PORT/postgres
 *   await pg.stop();                     // immediate shutdown, temp dir removed
 *
 * Root: initdb and postgres refuse to run as root, so when we are root both run as the
 * `postgres` OS user (override with DIP_PG_OS_USER) via setpriv/runuser, in a temp dir that
 * user owns. When we are not root they run as us.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, openSync, closeSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import {
  type OsUser,
  type ServiceProbe,
  assertAvailable,
  freePort,
  isRoot,
  lookupOsUser,
  makeServiceTempDir,
  privilegeDropProblem,
  removeOnExit,
  requireOrSkip,
  run,
  spawnServer,
  tailFile,
  waitForExit,
  waitUntil,
} from './service.js';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth, superuser). */
  url: string;
  port: number;
  /** The cluster's data directory (inside the temp dir). */
  dataDir: string;
  /** Immediate shutdown, then the temp dir is removed. Idempotent. */
  stop(): Promise<void>;
  /**
   * Crashes the server (immediate shutdown: every connection dropped, no checkpoint), keeps it
   * down for `downMs`, then starts it again on the same port and data directory (crash recovery).
   */
  restart(downMs?: number): Promise<void>;
}

const REQUIRED_BINARIES = ['initdb', 'postgres', 'pg_ctl'] as const;

function hasServerBinaries(dir: string): boolean {
  return REQUIRED_BINARIES.every((b) => existsSync(join(dir, b)));
}

function versionOf(dir: string): number {
  const m = /postgresql\/(\d+(?:\.\d+)?)\/bin/.exec(dir);
  return m ? Number(m[1]) : 0;
}

/**
 * The directory holding initdb/postgres/pg_ctl: $DIP_PG_BINDIR, else `pg_config --bindir` when the
 * server binaries are really there (libpq-dev's pg_config may point at a client-only install),
 * else the newest /usr/lib/postgresql/<version>/bin.
 */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env.DIP_PG_BINDIR;
  if (fromEnv) return hasServerBinaries(fromEnv) ? fromEnv : undefined;
  try {
    const dir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (dir && hasServerBinaries(dir)) return dir;
  } catch {
    // no pg_config on PATH
  }
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(root);
  } catch {
    return undefined;
  }
  const dirs = versions
    .map((v) => join(root, v, 'bin'))
    .filter(hasServerBinaries)
    .sort((a, b) => versionOf(b) - versionOf(a));
  return dirs[0];
}

const osUserName = (): string => process.env.DIP_PG_OS_USER || 'postgres';

let cachedProbe: ServiceProbe | undefined;

/** Can we start a throwaway PostgreSQL here? Cached; never throws. */
export function postgresProbe(): ServiceProbe {
  if (cachedProbe) return cachedProbe;
  const binDir = findPostgresBinDir();
  let reason: string | undefined;
  if (!binDir) {
    reason =
      'no PostgreSQL server binaries (initdb, postgres, pg_ctl) found via $DIP_PG_BINDIR, `pg_config --bindir` or /usr/lib/postgresql/*/bin; ' +
      'install them with `apt-get install -y --no-install-recommends postgresql`';
  } else {
    reason = privilegeDropProblem(osUserName());
  }
  cachedProbe =
    reason === undefined ? { name: 'PostgreSQL', available: true } : { name: 'PostgreSQL', available: false, reason };
  return cachedProbe;
}

export function postgresAvailable(): boolean {
  return postgresProbe().available;
}

/** node:test options for a suite needing PostgreSQL (skip, or fail under DIP_REQUIRE_SERVICES=1). */
export function postgresTestOptions(): { skip?: string } {
  return requireOrSkip(postgresProbe());
}

export interface StartPostgresOptions {
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
  /** How long to wait for the server to accept connections (default 60 s). */
  startTimeoutMs?: number;
}

/** Starts a fresh cluster on a free port of 127.0.0.1; see the module comment. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const probe = postgresProbe();
  assertAvailable(probe);
  const binDir = findPostgresBinDir() as string;
  const user: OsUser | undefined = isRoot() ? lookupOsUser(osUserName()) : undefined;

  const baseDir = await makeServiceTempDir('dip-pg-', user);
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'server.log');
  const exitCleanup = removeOnExit(baseDir);
  try {
    await run(
      join(binDir, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
      { user, cwd: baseDir, timeoutMs: 120_000 },
    );
  } catch (err) {
    await rm(baseDir, { recursive: true, force: true });
    throw new Error(`initdb failed in ${dataDir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  // The port is picked, released, then bound by postgres: another process may win the race,
  // so retry a few times when the server dies with "Address already in use".
  let lastError: unknown;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort('127.0.0.1');
    try {
      const child = await launch({ binDir, dataDir, baseDir, logFile, port, user, options });
      return makeHandle({
        binDir,
        dataDir,
        baseDir,
        port,
        user,
        child,
        exitCleanup,
        relaunch: () => launch({ binDir, dataDir, baseDir, logFile, port, user, options }),
      });
    } catch (err) {
      lastError = err;
      const message = err instanceof Error ? err.message : String(err);
      if (!/Address already in use|could not bind|could not create any TCP\/IP sockets/i.test(message)) break;
    }
  }
  await rm(baseDir, { recursive: true, force: true });
  throw lastError;
}

async function launch(p: {
  binDir: string;
  dataDir: string;
  baseDir: string;
  logFile: string;
  port: number;
  user: OsUser | undefined;
  options: StartPostgresOptions;
}): Promise<ChildProcess> {
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    fsync: 'off',
    full_page_writes: 'off',
    synchronous_commit: 'off',
    wal_level: 'logical',
    max_wal_senders: 10,
    max_replication_slots: 10,
    ...p.options.settings,
  };
  const args = ['-D', p.dataDir, '-p', String(p.port), '-k', p.baseDir];
  for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);

  // The log is opened by us (root may write anywhere) and handed to the child as stdout/stderr.
  const fd = openSync(p.logFile, 'a');
  let child: ChildProcess;
  try {
    // SIGQUIT = immediate shutdown of the postmaster, should this process exit without stop().
    child = spawnServer(join(p.binDir, 'postgres'), args, {
      user: p.user,
      cwd: p.baseDir,
      stdio: ['ignore', fd, fd],
      killSignal: 'SIGQUIT',
    });
  } finally {
    closeSync(fd);
  }
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  const url = urlFor(p.port);
  try {
    await waitUntil(
      async () => {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      {
        what: `PostgreSQL on 127.0.0.1:${p.port} to accept connections`,
        timeoutMs: p.options.startTimeoutMs ?? 60_000,
        intervalMs: 100,
        abort: () => {
          if (spawnError) return `could not spawn postgres: ${spawnError.message}`;
          if (child.exitCode !== null || child.signalCode !== null) {
            return `the server exited (${child.exitCode !== null ? `code ${child.exitCode}` : `signal ${child.signalCode}`})`;
          }
          return undefined;
        },
        diagnostics: () => `--- ${p.logFile} (last 40 lines) ---\n${tailFile(p.logFile, 40)}`,
      },
    );
  } catch (err) {
    child.kill('SIGQUIT');
    await waitForExit(child, 5_000);
    throw err;
  }
  return child;
}

function urlFor(port: number): string {
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}

function makeHandle(p: {
  binDir: string;
  dataDir: string;
  baseDir: string;
  port: number;
  user: OsUser | undefined;
  child: ChildProcess;
  exitCleanup: { release(): void };
  relaunch: () => Promise<ChildProcess>;
}): PostgresServer {
  let stopping: Promise<void> | undefined;
  const halt = async (): Promise<void> => {
    try {
      await run(join(p.binDir, 'pg_ctl'), ['stop', '-D', p.dataDir, '-m', 'immediate', '-w', '-t', '30'], {
        user: p.user,
        cwd: p.baseDir,
        timeoutMs: 40_000,
      });
    } catch {
      // Not running any more, or pg_ctl failed: fall through to signals.
    }
    if (!(await waitForExit(p.child, 10_000))) {
      p.child.kill('SIGKILL');
      await waitForExit(p.child, 5_000);
    }
  };
  const stop = async (): Promise<void> => {
    await halt();
    await rm(p.baseDir, { recursive: true, force: true });
    p.exitCleanup.release();
  };
  return {
    url: urlFor(p.port),
    port: p.port,
    dataDir: p.dataDir,
    stop: () => (stopping ??= stop()),
    restart: async (downMs = 0) => {
      if (stopping) throw new Error('the server was stopped');
      await halt();
      await new Promise((r) => setTimeout(r, downMs));
      p.child = await p.relaunch();
    },
  };
}

/** Runs `fn` with a connected client; always disconnects. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops a schema and everything in it (test cleanup). */
export async function dropSchema(url: string, schema: string): Promise<void> {
  await withClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`));
}
