/**
 * Custom tasks declared in a pipeline's `tasks:` — a shell command or an exported TS/JS
 * function — run for one attempt of one task of one run. The executor (in-process or a worker)
 * owns retries and timeouts; here an abort of `ctx.signal` stops the attempt.
 */
import { importModule } from '../core/import-module.js';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DipError, errorMessage } from '../core/errors.js';
import { isoInstant } from '../core/interval-templates.js';
import type { Interval } from './schedule.js';

export interface TaskContext {
  runId: string;
  task: string;
  pipeline: string;
  interval: Interval | null;
  /** 1 for the first attempt. */
  attempt: number;
  /** Absolute project directory: the shell's working directory, where modules resolve. */
  projectDir: string;
  signal: AbortSignal;
  log: (line: string) => void;
  /** Shell tasks: the declared `env:` variables, resolved. */
  env?: Record<string, string>;
}

/** What a module task's function receives. */
export interface TaskFunctionArgs {
  runId: string;
  task: string;
  pipeline: string;
  interval: Interval | null;
  attempt: number;
  signal: AbortSignal;
  log: (line: string) => void;
}

export type TaskFunction = (args: TaskFunctionArgs) => unknown;

/** After SIGTERM, the process group has this long before SIGKILL. */
export const KILL_GRACE_MS = 5_000;
/** A line longer than this is passed on in pieces. */
const MAX_LINE = 64 * 1024;

/** Variables of ours a shell task sees (besides LC_*): enough to find programs and speak the locale, no credentials. */
export const SAFE_ENV_NAMES = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TERM',
] as const;

/** The part of our environment passed to shell tasks: SAFE_ENV_NAMES and LC_*, nothing else (no tokens, no passwords). */
export function safeBaseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && ((SAFE_ENV_NAMES as readonly string[]).includes(name) || name.startsWith('LC_')))
      out[name] = value;
  }
  return out;
}

/** The DIP_* variables a shell task sees on top of the safe base and its declared `env:`. */
export function shellTaskEnv(ctx: TaskContext): Record<string, string> {
  return {
    DIP_RUN_ID: ctx.runId,
    DIP_TASK: ctx.task,
    DIP_PIPELINE: ctx.pipeline,
    DIP_ATTEMPT: String(ctx.attempt),
    DIP_INTERVAL_START: ctx.interval ? isoInstant(ctx.interval.start) : '',
    DIP_INTERVAL_END: ctx.interval ? isoInstant(ctx.interval.end) : '',
  };
}

/** Calls `onLine` for every line of a stream (the last one even without a newline). */
function eachLine(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    // Lines are cut out by position: no copy of the rest of the chunk per line.
    let start = 0;
    let nl: number;
    while ((nl = chunk.indexOf('\n', start)) >= 0) {
      const line = pending + chunk.slice(start, nl);
      pending = '';
      onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
      start = nl + 1;
    }
    pending += chunk.slice(start);
    while (pending.length > MAX_LINE) {
      onLine(pending.slice(0, MAX_LINE));
      pending = pending.slice(MAX_LINE);
    }
  });
  stream.on('end', () => {
    if (pending) onLine(pending.replace(/\r$/, ''));
    pending = '';
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

function cancelled(ctx: TaskContext, what: string): DipError {
  const reason: unknown = ctx.signal.reason;
  const why = reason === undefined ? '' : `: ${errorMessage(reason)}`;
  return new DipError('interrupted', `${what} was cancelled${why}`, { cause: reason });
}

/**
 * Runs `/bin/sh -c command` in the project directory, in its own process group. Output lines
 * go to `ctx.log`. Exit 0 succeeds; 127/126 (command not found / not executable) are config
 * errors; other exits and deaths by a signal are transient; an abort of `ctx.signal` sends the
 * group SIGTERM, then SIGKILL after KILL_GRACE_MS, and fails with `interrupted`.
 */
export async function runShellTask(command: string, ctx: TaskContext): Promise<void> {
  const what = `shell task ${ctx.task}`;
  if (ctx.signal.aborted) throw cancelled(ctx, what);
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: ctx.projectDir,
    // Only what is declared: `dip serve`'s token, database passwords… stay out of the task.
    env: { ...safeBaseEnv(), ...(ctx.env ?? {}), ...shellTaskEnv(ctx) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let lastStderr = '';
  eachLine(child.stdout, (line) => ctx.log(line));
  eachLine(child.stderr, (line) => {
    if (line.trim()) lastStderr = line.trim();
    ctx.log(line);
  });

  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const onAbort = (): void => {
    const pid = child.pid;
    if (pid === undefined || killed) return;
    killed = true;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
    killTimer.unref();
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });

  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', (err) => {
          reject(
            new DipError('config', `${what}: cannot start /bin/sh in ${ctx.projectDir}: ${errorMessage(err)}`, {
              cause: err,
            }),
          );
        });
        // 'close': the process exited and its output is read to the end.
        child.once('close', (c, s) => resolve({ code: c, signal: s }));
      },
    );
    if (code === 0 && signal === null) return;
    if (killed) throw cancelled(ctx, what);
    const detail = lastStderr ? `: ${lastStderr.slice(0, 500)}` : '';
    if (code === 127 || code === 126) {
      const problem = code === 127 ? 'command not found' : 'command not executable';
      throw new DipError('config', `${what} exited with code ${code} (${problem})${detail}`, {
        details: { exitCode: code },
      });
    }
    if (code !== null)
      throw new DipError('transient', `${what} exited with code ${code}${detail}`, { details: { exitCode: code } });
    throw new DipError('transient', `${what} was killed by ${signal ?? 'a signal'}${detail}`, { details: { signal } });
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    // A group that is gone already needs no SIGKILL; one that lingers (ignored SIGTERM) keeps it.
    if (killTimer && child.pid !== undefined && !groupAlive(child.pid)) clearTimeout(killTimer);
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describeExports(mod: Record<string, unknown>): string {
  const names = Object.keys(mod).sort();
  return names.length ? names.join(', ') : 'none';
}

/**
 * Imports a JS/TS module (relative to the project directory) and calls `exportName` with the
 * run's context. A missing file, a module that does not load, a missing export or one that is
 * not a function are config errors; whatever the function throws propagates unchanged.
 * TypeScript modules need the tsx loader, as dip.config.ts does.
 */
export async function runModuleTask(modulePath: string, exportName: string, ctx: TaskContext): Promise<void> {
  const file = path.resolve(ctx.projectDir, modulePath);
  const what = `task ${ctx.task}`;
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new DipError(
      'config',
      `${what}: module ${file} not found (module: ${modulePath}, relative to ${ctx.projectDir})`,
      { details: { file } },
    );
  }
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(file);
  } catch (err) {
    const hint =
      (err as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION'
        ? 'this Node.js cannot import TypeScript directly and tsx is not installed; `npm install tsx` or use a .mjs module'
        : errorMessage(err);
    throw new DipError('config', `${what}: cannot load module ${file}: ${hint}`, { cause: err, details: { file } });
  }
  const fn = exportOf(mod, exportName);
  if (fn === undefined) {
    throw new DipError(
      'config',
      `${what}: module ${file} has no export "${exportName}" (exports: ${describeExports(mod)})`,
      { details: { file, export: exportName } },
    );
  }
  if (typeof fn !== 'function') {
    throw new DipError(
      'config',
      `${what}: export "${exportName}" of ${file} is a ${fn === null ? 'null' : typeof fn}, not a function (exports: ${describeExports(mod)})`,
      {
        details: { file, export: exportName },
      },
    );
  }
  if (ctx.signal.aborted) throw cancelled(ctx, what);
  const args: TaskFunctionArgs = {
    runId: ctx.runId,
    task: ctx.task,
    pipeline: ctx.pipeline,
    interval: ctx.interval,
    attempt: ctx.attempt,
    signal: ctx.signal,
    log: ctx.log,
  };
  await (fn as TaskFunction)(args);
}

/**
 * The export, looking through CommonJS interop too: a module loaded as CommonJS (a .ts file
 * outside an ESM package, under tsx) shows its exports under `default`.
 */
function exportOf(mod: Record<string, unknown>, name: string): unknown {
  if (name in mod && !(name === 'default' && isInteropNamespace(mod['default']))) return mod[name];
  const inner = mod['default'];
  if (inner !== null && typeof inner === 'object' && name in inner) return (inner as Record<string, unknown>)[name];
  return undefined;
}

function isInteropNamespace(value: unknown): boolean {
  return value !== null && typeof value === 'object' && (value as Record<string, unknown>)['__esModule'] === true;
}
