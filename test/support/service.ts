/**
 * Shared plumbing for throwaway test services (PostgreSQL today; MariaDB, Redis, NATS later).
 * Every harness has the same shape:
 *
 *   - `<service>Probe()`   — are the binaries here? (synchronous, cheap, never throws)
 *   - `requireOrSkip(probe)` — node:test options: skip with a reason, or (DIP_REQUIRE_SERVICES=1)
 *                            run anyway so the start fails loudly
 *   - `start<Service>()`   — fresh temp dir + free port + spawn + wait-until-ready, returns
 *                            `{ url, port, dataDir, stop() }`
 *
 * Servers run as an unprivileged OS user when we are root (PostgreSQL and MariaDB refuse root),
 * from a temp dir that user owns, and are killed on process exit if a test forgets `stop()`.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync, accessSync, rmSync, constants as fsConstants } from 'node:fs';
import { chown, chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Whether a service a test needs may be skipped when missing (default) or must fail the run. */
export function servicesRequired(): boolean {
  const v = (process.env.DIP_REQUIRE_SERVICES ?? '').trim().toLowerCase();
  return v === '1' || v === 'true' || v === 'yes';
}

export interface ServiceProbe {
  /** Human name, e.g. "PostgreSQL". */
  name: string;
  available: boolean;
  /** Why it is not available (what was searched, how to install). */
  reason?: string;
}

export class ServiceUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceUnavailableError';
  }
}

/** The message used both for skips and for required-but-missing failures. */
export function unavailableMessage(probe: ServiceProbe): string {
  return `${probe.name} is not available: ${probe.reason ?? 'unknown reason'}`;
}

/**
 * node:test options for a `describe`/`it` that needs a service:
 *   - available             → `{}` (run)
 *   - missing, not required → `{ skip: reason }`
 *   - missing, required     → `{}` (run): the suite's `start…()` call throws a
 *                             ServiceUnavailableError, so every test in it fails with that message.
 */
export function requireOrSkip(probe: ServiceProbe): { skip?: string } {
  if (probe.available || servicesRequired()) return {};
  return { skip: `${unavailableMessage(probe)} (set DIP_REQUIRE_SERVICES=1 to make this a failure)` };
}

/**
 * The same policy inside a test: returns true when the test may proceed; calls `t.skip()` and
 * returns false when it should be skipped; throws when the service is required but missing.
 */
export function proceedOrSkip(t: { skip(message?: string): void }, probe: ServiceProbe): boolean {
  if (probe.available) return true;
  assertAvailable(probe);
  t.skip(unavailableMessage(probe));
  return false;
}

/** Throws a ServiceUnavailableError when the probe failed and services are required. */
export function assertAvailable(probe: ServiceProbe): void {
  if (probe.available) return;
  if (servicesRequired()) {
    throw new ServiceUnavailableError(`DIP_REQUIRE_SERVICES=1 but ${unavailableMessage(probe)}`);
  }
  throw new ServiceUnavailableError(unavailableMessage(probe));
}

/** A free TCP port on `host`: bind port 0, read the port, close. (Racy by nature; start() retries.) */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`could not read the port bound on ${host}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface WaitOptions {
  /** What we wait for, for the timeout message ("PostgreSQL on 127.0.0.1:5433 to accept connections"). */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
  /** Extra text for the timeout error (e.g. the server log tail). */
  diagnostics?: () => string;
  /** Checked before every attempt: a string aborts the wait at once (e.g. "the server exited"). */
  abort?: () => string | undefined;
}

/**
 * Polls `check` until it returns a value other than undefined/false (returned), or throws
 * after `timeoutMs` with the last check error and the diagnostics.
 */
export async function waitUntil<T>(check: () => Promise<T | undefined | false>, options: WaitOptions): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const aborted = options.abort?.();
    if (aborted !== undefined)
      throw new Error(withDiagnostics(`gave up waiting for ${options.what}: ${aborted}`, options));
    try {
      const result = await check();
      if (result !== undefined && result !== false) return result;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(withDiagnostics(`timed out after ${timeoutMs} ms waiting for ${options.what}${last}`, options));
    }
    await sleep(intervalMs);
  }
}

function withDiagnostics(message: string, options: WaitOptions): string {
  const extra = options.diagnostics?.();
  return extra ? `${message}\n${extra}` : message;
}

/** The last `lines` lines of a text file, or a note why it could not be read. */
export function tailFile(path: string, lines = 40): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    const all = text.split('\n');
    return all.slice(-lines).join('\n');
  } catch (err) {
    return `(could not read ${path}: ${err instanceof Error ? err.message : String(err)})`;
  }
}

/** An OS account a service runs as. */
export interface OsUser {
  name: string;
  uid: number;
  gid: number;
}

/** Looks an account up in /etc/passwd (getent when available); undefined when it does not exist. */
export function lookupOsUser(name: string): OsUser | undefined {
  let lines: string[] = [];
  try {
    lines = readFileSync('/etc/passwd', 'utf8').split('\n');
  } catch {
    return undefined;
  }
  for (const line of lines) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** The first executable named `name` on PATH (or at an absolute path); undefined when none. */
export function findExecutable(name: string, extraDirs: readonly string[] = []): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  const dirs = [
    ...extraDirs,
    ...(process.env.PATH ?? '').split(':').filter(Boolean),
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The command line that runs `command args` as `user`: unchanged when we are not root (we run
 * as ourselves) or are that user already; `setpriv` (execs in place, so the child pid is the
 * server itself) or `runuser` when root.
 */
export function asUser(
  user: OsUser | undefined,
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  if (user === undefined || !isRoot() || user.uid === 0) return { command, args: [...args] };
  const setpriv = findExecutable('setpriv');
  if (setpriv) {
    return {
      command: setpriv,
      args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', command, ...args],
    };
  }
  const runuser = findExecutable('runuser');
  if (runuser) return { command: runuser, args: ['-u', user.name, '--', command, ...args] };
  throw new ServiceUnavailableError(
    `running ${command} as ${user.name} needs setpriv or runuser (util-linux), found neither`,
  );
}

/** How we can run a server as a non-root user; a reason string when we cannot. */
export function privilegeDropProblem(userName: string): string | undefined {
  if (!isRoot()) return undefined;
  if (!lookupOsUser(userName)) return `running as root and there is no "${userName}" OS user to run the server as`;
  if (!findExecutable('setpriv') && !findExecutable('runuser'))
    return 'running as root and neither setpriv nor runuser is installed';
  return undefined;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with its exit code and output on failure. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; user?: OsUser } = {},
): Promise<RunResult> {
  const cmd = asUser(options.user, command, args);
  return new Promise((resolve, reject) => {
    execFile(
      cmd.command,
      cmd.args,
      {
        cwd: options.cwd,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as { code?: unknown }).code;
          const output = `${stdout}${stderr}`.trim();
          reject(
            new Error(
              `${[command, ...args].join(' ')} failed (exit ${String(code ?? err.message)})${output ? `:\n${output}` : ''}`,
              {
                cause: err,
              },
            ),
          );
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

/**
 * A fresh temp dir for a service's data, owned by `owner` when given and traversable by it.
 * mkdtemp makes it 0700; when we are root and hand it to another user, its parent must be
 * traversable by that user too, so candidates are tried in order (os.tmpdir(), then /tmp).
 */
export async function makeServiceTempDir(prefix: string, owner?: OsUser): Promise<string> {
  const candidates = [...new Set([tmpdir(), '/tmp'])];
  const problems: string[] = [];
  for (const parent of candidates) {
    if (!existsSync(parent)) continue;
    const dir = await mkdtemp(join(parent, prefix));
    if (owner === undefined || !isRoot() || owner.uid === 0) return dir;
    await chown(dir, owner.uid, owner.gid);
    await chmod(dir, 0o700);
    try {
      // Can the owner actually reach and write the directory? (Parents may be 0700 root.)
      await run('test', ['-w', dir, '-a', '-x', dir], { user: owner, timeoutMs: 10_000 });
      return dir;
    } catch {
      problems.push(`${parent} (not traversable by ${owner.name})`);
      await rm(dir, { recursive: true, force: true });
    }
  }
  throw new Error(
    `no temp dir usable by the ${owner?.name ?? 'service'} user; tried ${problems.join(', ')}. Set TMPDIR to a world-traversable directory.`,
  );
}

const liveChildren = new Map<ChildProcess, NodeJS.Signals>();
const exitCleanupDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [proc, signal] of liveChildren) {
      try {
        proc.kill(signal);
      } catch {
        // already gone
      }
    }
    for (const dir of exitCleanupDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/** Removes `dir` when this process exits (best effort), unless `release()` is called first. */
export function removeOnExit(dir: string): { release(): void } {
  installExitHook();
  exitCleanupDirs.add(dir);
  return { release: () => void exitCleanupDirs.delete(dir) };
}

/**
 * Spawns a long-running server. It is killed with `killSignal` when this process exits, so a
 * test that crashes before `stop()` does not leak servers.
 */
export function spawnServer(
  command: string,
  args: readonly string[],
  options: SpawnOptions & { user?: OsUser; killSignal?: NodeJS.Signals },
): ChildProcess {
  const cmd = asUser(options.user, command, args);
  const { user: _user, killSignal = 'SIGKILL', ...spawnOptions } = options;
  const child = spawn(cmd.command, cmd.args, spawnOptions);
  liveChildren.set(child, killSignal);
  child.once('exit', () => liveChildren.delete(child));
  installExitHook();
  return child;
}

/** Resolves when the child has exited (at once if it already has); false on timeout. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}
