/**
 * Custom tasks: shell commands (environment, output lines, exit codes as error kinds, abort
 * killing the whole process group) and exported JS/TS functions (.mjs and .ts, context
 * passed, errors unchanged, helpful config errors for missing files and exports).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DipError, type ErrorKind } from '../src/core/errors.js';
import {
  runModuleTask,
  runShellTask,
  type TaskContext,
  type TaskFunctionArgs,
} from '../src/orchestrate/custom-tasks.js';
import { makeTempDir } from './support/project.js';

let dir: string;
before(async () => {
  dir = await makeTempDir('dip-tasks-');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function context(overrides: Partial<TaskContext> = {}): TaskContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    runId: 'run_abc',
    task: 'export_report',
    pipeline: 'sales',
    interval: { start: new Date('2026-03-01T00:00:00Z'), end: new Date('2026-03-02T00:00:00.250Z') },
    attempt: 2,
    projectDir: dir,
    signal: new AbortController().signal,
    log: (line) => lines.push(line),
    lines,
    ...overrides,
  };
}

async function rejectsWith(promise: Promise<unknown>, kind: ErrorKind, message: RegExp): Promise<DipError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof DipError, `expected a DipError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  assert.match(caught.message, message);
  return caught;
}

/** Gone: no such process, or a zombie nobody has reaped yet (containers without an init). */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('shell tasks', () => {
  it('sets the DIP_* environment exactly, runs in the project directory and logs stdout and stderr lines', async () => {
    const ctx = context();
    process.env['DIP_TEST_INHERITED'] = 'kept';
    try {
      await runShellTask(
        'for v in DIP_RUN_ID DIP_TASK DIP_PIPELINE DIP_ATTEMPT DIP_INTERVAL_START DIP_INTERVAL_END DIP_TEST_INHERITED; do eval "echo $v=\\$$v"; done; pwd; echo "to stderr" >&2; printf "no newline"',
        ctx,
      );
    } finally {
      delete process.env['DIP_TEST_INHERITED'];
    }
    assert.deepEqual(
      ctx.lines.filter((l) => l !== 'to stderr'),
      [
        'DIP_RUN_ID=run_abc',
        'DIP_TASK=export_report',
        'DIP_PIPELINE=sales',
        'DIP_ATTEMPT=2',
        'DIP_INTERVAL_START=2026-03-01T00:00:00Z',
        'DIP_INTERVAL_END=2026-03-02T00:00:00.250Z',
        'DIP_TEST_INHERITED=', // issue 14 item 12: undeclared variables of ours are not passed to tasks
        dir,
        'no newline',
      ],
    );
    assert.ok(ctx.lines.includes('to stderr'));
  });

  it('without an interval the interval variables are set and empty', async () => {
    const ctx = context({ interval: null });
    await runShellTask('echo "[${DIP_INTERVAL_START-unset}][${DIP_INTERVAL_END-unset}]"', ctx);
    assert.deepEqual(ctx.lines, ['[][]']);
  });

  it('exit codes: non-zero is transient with the last stderr line, 127 is a config error, a signal is transient', async () => {
    const failed = await rejectsWith(
      runShellTask('echo first >&2; echo "disk full" >&2; echo out; exit 3', context()),
      'transient',
      /^shell task export_report exited with code 3: disk full$/,
    );
    assert.equal(failed.details['exitCode'], 3);
    await rejectsWith(runShellTask('exit 1', context()), 'transient', /^shell task export_report exited with code 1$/);
    await rejectsWith(
      runShellTask('definitely-not-a-command-dip --flag', context()),
      'config',
      /^shell task export_report exited with code 127 \(command not found\): .*definitely-not-a-command-dip.*not found/,
    );
    await rejectsWith(
      runShellTask('kill -9 $$', context()),
      'transient',
      /^shell task export_report was killed by SIGKILL$/,
    );
  });

  it('abort kills the process group (SIGTERM) within a second and is an interrupted error', async () => {
    const controller = new AbortController();
    const ctx = context({ signal: controller.signal });
    const pids: number[] = [];
    const log = (line: string) => {
      ctx.lines.push(line);
      const m = /^pid=(\d+)$/.exec(line);
      if (m) pids.push(Number(m[1]));
    };
    // A background sleep (a grandchild) and a foreground one: both must go.
    const running = runShellTask('sleep 30 & echo "pid=$!"; echo "pid=$$"; sleep 30', { ...ctx, log });
    const deadline = Date.now() + 5_000;
    while (pids.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pids.length, 2, `the shell printed its pids: ${ctx.lines.join(' | ')}`);
    const started = Date.now();
    controller.abort(new Error('run cancelled by the user'));
    await rejectsWith(running, 'interrupted', /^shell task export_report was cancelled: run cancelled by the user$/);
    while (!pids.every(processGone) && Date.now() - started < 1_000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(Date.now() - started < 1_000, `aborted within a second (${Date.now() - started} ms)`);
    for (const pid of pids) assert.ok(processGone(pid), `process ${pid} is gone`);
  });

  it('a process that ignores SIGTERM gets SIGKILL after the grace period; an aborted signal never starts the command', {
    timeout: 15_000,
  }, async () => {
    const controller = new AbortController();
    const ctx = context({ signal: controller.signal });
    const running = runShellTask('trap "" TERM; echo ready; while :; do sleep 0.1; done', ctx);
    const deadline = Date.now() + 5_000;
    while (!ctx.lines.includes('ready') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    controller.abort();
    await rejectsWith(running, 'interrupted', /^shell task export_report was cancelled/);
    const took = Date.now() - started;
    assert.ok(took >= 4_500 && took < 8_000, `SIGKILL after about 5 s (${took} ms)`);

    const marker = join(dir, 'should-not-exist');
    await rejectsWith(
      runShellTask(`touch ${marker}`, context({ signal: AbortSignal.abort() })),
      'interrupted',
      /cancelled/,
    );
    assert.throws(() => readFileSync(marker), /ENOENT/);
  });

  it('a missing project directory is a config error', async () => {
    await rejectsWith(
      runShellTask('true', context({ projectDir: join(dir, 'nope') })),
      'config',
      /^shell task export_report: cannot start \/bin\/sh in .*nope/,
    );
  });
});

describe('module tasks', () => {
  before(async () => {
    await mkdir(join(dir, 'tasks'), { recursive: true });
    await writeFile(
      join(dir, 'tasks', 'report.mjs'),
      `export default async function (args) {
  args.log('default ' + args.task + ' ' + args.attempt);
  globalThis.__dipTaskArgs = args;
}
export async function fails() { const e = new Error('upstream said no'); e.code = 'E_UPSTREAM'; throw e; }
export const notAFunction = 42;
`,
    );
    await writeFile(
      join(dir, 'tasks', 'typed.ts'),
      `interface Args { runId: string; interval: { start: Date; end: Date } | null; log: (line: string) => void; signal: AbortSignal }
export async function refresh(args: Args): Promise<void> {
  const days: number = args.interval ? (args.interval.end.getTime() - args.interval.start.getTime()) / 86_400_000 : 0;
  args.log(\`refresh \${args.runId} \${args.interval?.start.toISOString() ?? 'none'} \${Math.round(days)} aborted=\${args.signal.aborted}\`);
}
export const helper = (): number => 1;
`,
    );
  });

  it('.mjs default export gets the run context', async () => {
    const ctx = context();
    await runModuleTask('tasks/report.mjs', 'default', ctx);
    assert.deepEqual(ctx.lines, ['default export_report 2']);
    const args = (globalThis as { __dipTaskArgs?: TaskFunctionArgs }).__dipTaskArgs;
    assert.ok(args);
    assert.deepEqual(Object.keys(args).sort(), ['attempt', 'interval', 'log', 'pipeline', 'runId', 'signal', 'task']);
    assert.deepEqual([args.runId, args.task, args.pipeline, args.attempt], ['run_abc', 'export_report', 'sales', 2]);
    assert.equal(args.interval, ctx.interval);
    assert.equal(args.signal, ctx.signal);
  });

  it('.ts named export (through tsx, as dip.config.ts), by absolute path too', async () => {
    const ctx = context();
    await runModuleTask('tasks/typed.ts', 'refresh', ctx);
    await runModuleTask(join(dir, 'tasks', 'typed.ts'), 'refresh', { ...ctx, interval: null });
    assert.deepEqual(ctx.lines, [
      'refresh run_abc 2026-03-01T00:00:00.000Z 1 aborted=false',
      'refresh run_abc none 0 aborted=false',
    ]);
  });

  it('errors thrown by the function propagate unchanged', async () => {
    await assert.rejects(runModuleTask('tasks/report.mjs', 'fails', context()), (err: unknown) => {
      assert.ok(err instanceof Error && !(err instanceof DipError));
      assert.equal(err.message, 'upstream said no');
      assert.equal((err as NodeJS.ErrnoException).code, 'E_UPSTREAM');
      return true;
    });
  });

  it('missing file, missing export and non-function export are config errors naming the file and exports', async () => {
    const file = join(dir, 'tasks', 'report.mjs');
    await rejectsWith(
      runModuleTask('tasks/report.mjs', 'run', context()),
      'config',
      new RegExp(
        `^task export_report: module ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has no export "run" \\(exports: default, fails, notAFunction\\)$`,
      ),
    );
    await rejectsWith(
      runModuleTask('tasks/report.mjs', 'notAFunction', context()),
      'config',
      /export "notAFunction" of .*report\.mjs is a number, not a function \(exports: default, fails, notAFunction\)/,
    );
    await rejectsWith(
      runModuleTask('tasks/typed.ts', 'default', context()),
      'config',
      /typed\.ts has no export "default" \(exports: helper, refresh\)$/,
    );
    await rejectsWith(
      runModuleTask('tasks/missing.mjs', 'default', context()),
      'config',
      /^task export_report: module .*tasks\/missing\.mjs not found \(module: tasks\/missing\.mjs, relative to /,
    );
    await writeFile(join(dir, 'tasks', 'broken.mjs'), 'export const = 1;\n');
    await rejectsWith(
      runModuleTask('tasks/broken.mjs', 'default', context()),
      'config',
      /^task export_report: cannot load module .*broken\.mjs: /,
    );
  });
});
