/**
 * A throwaway MariaDB server for tests, from the Debian binaries (`apt-get install mariadb-server`).
 *
 *   const db = await startMariadb();   // fresh datadir, free port, passwordless root, row binlog
 *   ... db.url ...                      // mysql://root@127.0.0.1:PORT/dip
 *   await db.stop();                    // SIGKILL, temp dir removed
 *
 * The data dir is made by `mariadb-install-db` (or `mysql_install_db`) with
 * `--auth-root-authentication-method=normal`, so `root@127.0.0.1` logs in over TCP without a
 * password; the server then runs with `--no-defaults` (no /etc/mysql config is read), on
 * 127.0.0.1 only, with its socket, pid file, tmpdir and binary log inside the temp dir. The binary
 * log is on (ROW format, FULL row image, server id 1) for CDC tests. The character set is
 * utf8mb4 (with --no-defaults the server default would be latin1). Durability is traded for
 * speed (`innodb_flush_log_at_trx_commit=0`, `sync_binlog=0`, no doublewrite): the data is thrown
 * away anyway.
 *
 * Root: mariadbd refuses to run as root unless told `--user=root`. When we are root both
 * mariadb-install-db and mariadbd run as the `mysql` OS user (override with DIP_MARIADB_OS_USER)
 * via setpriv/runuser, in a temp dir that user owns. When that user does not exist (or neither
 * setpriv nor runuser is installed), or DIP_MARIADB_OS_USER=root, they run as root with
 * `--user=root`. When we are not root they run as us.
 *
 * Binaries are looked up in $DIP_MARIADB_BINDIR, then PATH, /usr/sbin, /sbin, /usr/bin, /bin.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import {
  type OsUser,
  type ServiceProbe,
  assertAvailable,
  findExecutable,
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

export interface MariadbServer {
  /** `mysql://root@127.0.0.1:PORT/dip` (no password, all privileges). */
  url: string;
  port: number;
  host: '127.0.0.1';
  user: 'root';
  /** Created right after start. */
  database: 'dip';
  /** The server's data directory (inside the temp dir). */
  dataDir: string;
  /** Kills the server (SIGKILL), then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartMariadbOptions {
  /**
   * Extra server settings, passed as `--name=value` to mariadbd (after, so overriding, the
   * defaults). Only at server start: settings that must match at install time (e.g.
   * innodb_page_size) are not supported.
   */
  settings?: Record<string, string | number>;
  /** How long to wait for the server to accept connections (default 60 s). */
  startTimeoutMs?: number;
}

interface Binaries {
  /** mariadbd or mysqld */
  server: string;
  /** mariadb-install-db or mysql_install_db */
  installDb: string;
}

const HOST = '127.0.0.1';
const DATABASE = 'dip';

function extraDirs(): string[] {
  const dir = process.env.DIP_MARIADB_BINDIR;
  return dir ? [dir] : [];
}

/** The server and install-db binaries, or undefined when either is missing. */
export function findMariadbBinaries(): Binaries | undefined {
  const dirs = extraDirs();
  const server = findExecutable('mariadbd', dirs) ?? findExecutable('mysqld', dirs);
  const installDb = findExecutable('mariadb-install-db', dirs) ?? findExecutable('mysql_install_db', dirs);
  return server && installDb ? { server, installDb } : undefined;
}

const osUserName = (): string => process.env.DIP_MARIADB_OS_USER || 'mysql';

/**
 * Who the server runs as: undefined = as ourselves (not root); otherwise the OS user to drop to,
 * with `asRoot` when that is root itself (mariadbd then needs `--user=root`).
 */
function serverUser(): { user: OsUser | undefined; asRoot: boolean } {
  if (!isRoot()) return { user: undefined, asRoot: false };
  const name = osUserName();
  const user = lookupOsUser(name);
  if (user && user.uid !== 0 && privilegeDropProblem(name) === undefined) return { user, asRoot: false };
  return { user: undefined, asRoot: true };
}

let cachedProbe: ServiceProbe | undefined;

/** Can we start a throwaway MariaDB here? Cached; never throws. */
export function mariadbProbe(): ServiceProbe {
  if (cachedProbe) return cachedProbe;
  cachedProbe = findMariadbBinaries()
    ? { name: 'MariaDB', available: true }
    : {
        name: 'MariaDB',
        available: false,
        reason:
          'no MariaDB server binaries (mariadbd or mysqld, and mariadb-install-db or mysql_install_db) found via ' +
          '$DIP_MARIADB_BINDIR, PATH, /usr/sbin or /usr/bin; ' +
          'install them with `apt-get install -y --no-install-recommends mariadb-server`',
      };
  return cachedProbe;
}

export function mariadbAvailable(): boolean {
  return mariadbProbe().available;
}

/** node:test options for a suite needing MariaDB (skip, or fail under DIP_REQUIRE_SERVICES=1). */
export function mariadbTestOptions(): { skip?: string } {
  return requireOrSkip(mariadbProbe());
}

/** Starts a fresh server on a free port of 127.0.0.1 with database `dip`; see the module comment. */
export async function startMariadb(options: StartMariadbOptions = {}): Promise<MariadbServer> {
  assertAvailable(mariadbProbe());
  const bin = findMariadbBinaries() as Binaries;
  const { user, asRoot } = serverUser();
  const userArgs = asRoot ? ['--user=root'] : [];

  const baseDir = await makeServiceTempDir('dip-mariadb-', user);
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'server.log');
  const exitCleanup = removeOnExit(baseDir);
  try {
    await run(
      bin.installDb,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        ...userArgs,
        // The rest goes to `mariadbd --bootstrap`.
        `--tmpdir=${baseDir}`,
        '--innodb-buffer-pool-size=64M',
        '--innodb-log-file-size=16M',
      ],
      { user, cwd: baseDir, timeoutMs: 120_000 },
    );
  } catch (err) {
    await rm(baseDir, { recursive: true, force: true });
    exitCleanup.release();
    throw new Error(`mariadb-install-db failed in ${dataDir}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }

  // The port is picked, released, then bound by mariadbd: another process may win the race,
  // so retry a few times when the server dies with "Address already in use".
  let lastError: unknown;
  for (let attempt = 1; attempt <= 5; attempt++) {
    const port = await freePort(HOST);
    try {
      const child = await launch({ bin, dataDir, baseDir, logFile, port, user, userArgs, options });
      return makeHandle({ dataDir, baseDir, port, child, exitCleanup });
    } catch (err) {
      lastError = err;
      const message = err instanceof Error ? err.message : String(err);
      if (!/Address already in use|Bind on TCP\/IP port|Do you already have another .* running/i.test(message)) break;
    }
  }
  await rm(baseDir, { recursive: true, force: true });
  exitCleanup.release();
  throw lastError;
}

async function launch(p: {
  bin: Binaries;
  dataDir: string;
  baseDir: string;
  logFile: string;
  port: number;
  user: OsUser | undefined;
  userArgs: string[];
  options: StartMariadbOptions;
}): Promise<ChildProcess> {
  const settings: Record<string, string | number> = {
    // --no-defaults skips Debian's /etc/mysql config (utf8mb4); the built-in default is latin1.
    'character-set-server': 'utf8mb4',
    'collation-server': 'utf8mb4_unicode_ci',
    'innodb-buffer-pool-size': '64M',
    'innodb-log-file-size': '16M',
    'innodb-flush-log-at-trx-commit': 0,
    'innodb-doublewrite': 0,
    'sync-binlog': 0,
    'log-bin': join(p.baseDir, 'binlog'),
    'server-id': 1,
    'binlog-format': 'ROW',
    'binlog-row-image': 'FULL',
    ...p.options.settings,
  };
  // --no-defaults must come first.
  const args = [
    '--no-defaults',
    ...p.userArgs,
    `--datadir=${p.dataDir}`,
    `--port=${p.port}`,
    `--bind-address=${HOST}`,
    `--socket=${join(p.baseDir, 'mysqld.sock')}`,
    `--pid-file=${pidFile(p.baseDir)}`,
    `--tmpdir=${p.baseDir}`,
    '--skip-name-resolve',
  ];
  for (const [name, value] of Object.entries(settings)) args.push(`--${name}=${value}`);

  // No --log-error: the error log goes to stderr, i.e. to the log file we open (root may write
  // anywhere) and hand to the child.
  const fd = openSync(p.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawnServer(p.bin.server, args, {
      user: p.user,
      cwd: p.baseDir,
      stdio: ['ignore', fd, fd],
      killSignal: 'SIGKILL',
    });
  } finally {
    closeSync(fd);
  }
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));

  try {
    await waitUntil(
      async () => {
        const conn = await mysql.createConnection({ host: HOST, port: p.port, user: 'root', connectTimeout: 2_000 });
        try {
          await conn.query('SELECT 1');
          return true;
        } finally {
          await conn.end().catch(() => undefined);
        }
      },
      {
        what: `MariaDB on ${HOST}:${p.port} to accept connections`,
        timeoutMs: p.options.startTimeoutMs ?? 60_000,
        intervalMs: 100,
        abort: () => {
          if (spawnError) return `could not spawn ${p.bin.server}: ${spawnError.message}`;
          if (child.exitCode !== null || child.signalCode !== null) {
            return `the server exited (${child.exitCode !== null ? `code ${child.exitCode}` : `signal ${child.signalCode}`})`;
          }
          return undefined;
        },
        diagnostics: () => `--- ${p.logFile} (last 40 lines) ---\n${tailFile(p.logFile, 40)}`,
      },
    );
    const conn = await mysql.createConnection({ host: HOST, port: p.port, user: 'root' });
    try {
      await conn.query(
        `CREATE DATABASE IF NOT EXISTS \`${DATABASE}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
      );
    } finally {
      await conn.end().catch(() => undefined);
    }
  } catch (err) {
    await kill(child, p.baseDir, p.dataDir);
    throw err;
  }
  return child;
}

const pidFile = (baseDir: string): string => join(baseDir, 'mysqld.pid');

/**
 * SIGKILLs the server. With setpriv the child is mariadbd itself; with runuser it is a parent
 * that would not pass the signal on, so the pid from the pid file is killed too, when that
 * process is still a server on our data dir.
 */
async function kill(child: ChildProcess, baseDir: string, dataDir: string): Promise<void> {
  let serverPid: number | undefined;
  try {
    const pid = Number(readFileSync(pidFile(baseDir), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== child.pid) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(`--datadir=${dataDir}`)) serverPid = pid;
    }
  } catch {
    // no pid file (yet), or the process is gone
  }
  if (serverPid !== undefined) {
    try {
      process.kill(serverPid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await waitForExit(child, 10_000);
}

function urlFor(port: number): string {
  return `mysql://root@${HOST}:${port}/${DATABASE}`;
}

function makeHandle(p: {
  dataDir: string;
  baseDir: string;
  port: number;
  child: ChildProcess;
  exitCleanup: { release(): void };
}): MariadbServer {
  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    await kill(p.child, p.baseDir, p.dataDir);
    await rm(p.baseDir, { recursive: true, force: true });
    p.exitCleanup.release();
  };
  return {
    url: urlFor(p.port),
    port: p.port,
    host: HOST,
    user: 'root',
    database: DATABASE,
    dataDir: p.dataDir,
    stop: () => (stopping ??= stop()),
  };
}

/** Runs `fn` with a connection to `url`; always disconnects. */
export async function withMariadb<T>(url: string, fn: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection(url);
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Runs statements on one UTC session, in order; returns the last result's rows. */
export function execMariadb(url: string, ...statements: string[]): Promise<RowDataPacket[]> {
  return withMariadb(url, async (conn) => {
    await conn.query("SET time_zone = '+00:00'");
    let rows: RowDataPacket[] = [];
    for (const s of statements) rows = (await conn.query<RowDataPacket[]>(s))[0];
    return rows;
  });
}
