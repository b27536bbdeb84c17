/**
 * `dip trigger`, `dip backfill` and `dip runs …`: orchestrated runs from the command line. The
 * command waits for its runs, executing them in this process, or with `serve.executor: workers`
 * handing them to `dip worker` processes through the queue.
 */
import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import type { Lake } from '../../lake/lake.js';
import type { Runtime } from '../../orchestrate/runtime.js';
import type { Interval } from '../../orchestrate/schedule.js';
import type { OrchestratedRun, OrchestratedRunStatus } from '../../catalog/orchestration-types.js';
import { RUN_STATUSES } from '../../ops/runs.js';
import { withLake, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';
import { formatCount, formatDuration, printJson, renderTable } from '../output.js';

export function registerOrchestration(program: Command): void {
  program
    .command('trigger')
    .description('queue a run of a pipeline now (with retries, the DAG in parallel, pools) and wait for it')
    .argument('<pipeline>')
    .option('--interval-start <time>', 'the data interval the run covers: start (ISO date or time)')
    .option('--interval-end <time>', 'the data interval: end (exclusive)')
    .option('--no-wait', 'queue the run and return (a `dip serve` or `dip worker` executes it)')
    .action(
      async (pipeline: string, opts: { intervalStart?: string; intervalEnd?: string; wait: boolean }, cmd: Command) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const interval = parseInterval(opts.intervalStart, opts.intervalEnd);
        await startAndReport(global, opts.wait, (runtime) =>
          runtime.orchestrator.trigger(pipeline, { interval, trigger: 'manual' }),
        );
      },
    );

  program
    .command('backfill')
    .description(
      'one run per schedule interval in [--from, --to): fresh runs keep priority; intervals already done are skipped',
    )
    .argument('<pipeline>')
    .requiredOption('--from <time>', 'first interval starts at or after this (ISO date or time)')
    .requiredOption('--to <time>', 'last interval ends at or before this (exclusive)')
    .option('--parallel <n>', 'runs of this backfill at once', '1')
    .option('--every <duration>', 'cut intervals of this length instead of the pipeline schedule')
    .option('--batch <n>', 'one run per n consecutive intervals', '1')
    .option('--rerun', 'also run intervals that already have a succeeded run')
    .option('--dry-run', 'list the intervals and do nothing')
    .option('--no-wait', 'queue the runs and return')
    .action(
      async (
        pipeline: string,
        opts: {
          from: string;
          to: string;
          parallel: string;
          batch: string;
          every?: string;
          rerun?: boolean;
          dryRun?: boolean;
          wait: boolean;
        },
        cmd: Command,
      ) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const from = parseTime(opts.from, '--from');
        const to = parseTime(opts.to, '--to');
        const parallel = wholeNumber(opts.parallel, '--parallel', 1);
        await withRuntime(global, Boolean(opts.wait && !opts.dryRun), async (runtime) => {
          const plan = await runtime.orchestrator.backfill(pipeline, {
            from,
            to,
            parallel,
            dryRun: Boolean(opts.dryRun),
            rerun: Boolean(opts.rerun),
            batch: wholeNumber(opts.batch, '--batch', 1),
            ...(opts.every ? { every: opts.every } : {}),
          });
          if (opts.dryRun) {
            if (global.json) return printJson(plan);
            process.stdout.write(
              `backfill of ${pipeline}: ${plan.intervals.length} interval(s) to run, ${plan.skipped.length} already covered\n`,
            );
            process.stdout.write(
              `${renderTable(
                ['start', 'end'],
                plan.intervals.map((i) => [i.start.toISOString(), i.end.toISOString()]),
              )}\n`,
            );
            return;
          }
          if (plan.runIds.length === 0) {
            if (global.json) return printJson({ ...plan, runs: [] });
            process.stdout.write(
              `backfill of ${pipeline}: nothing to run (${plan.skipped.length} interval(s) already covered; --rerun runs them again)\n`,
            );
            return;
          }
          const runs = opts.wait
            ? await waitWithProgress(runtime, plan.runIds, global)
            : await Promise.all(
                plan.runIds.map(async (id) => (await runtime.orchestrator.store.getRun(id)) as OrchestratedRun),
              );
          await report(runtime.orchestrator.lake, runs, global, plan.backfillId);
        });
      },
    );

  const runs = program.command('runs').description('orchestrated runs: list, show, cancel, re-run, logs');
  runs
    .command('list')
    .description('recent orchestrated runs, newest first')
    .option('--pipeline <name>')
    .option('--status <status>', `one of ${RUN_STATUSES.join(', ')}`)
    .option('--backfill <id>', 'runs of one backfill')
    .option('--limit <n>', 'how many', '20')
    .action(async (opts: { pipeline?: string; status?: string; backfill?: string; limit: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      if (opts.status && !RUN_STATUSES.includes(opts.status as OrchestratedRunStatus))
        throw new DipError('input', `--status "${opts.status}": expected one of ${RUN_STATUSES.join(', ')}`);
      const limit = wholeNumber(opts.limit, '--limit', 1);
      const { listRuns } = await import('../../ops/runs.js');
      const list = await withLake(global, (lake) =>
        listRuns(lake, {
          limit,
          pipeline: opts.pipeline,
          status: opts.status as OrchestratedRunStatus | undefined,
          backfillId: opts.backfill,
        }),
      );
      if (global.json) return printJson(list);
      process.stdout.write(`${runTable(list)}\n`);
    });
  runs
    .command('show')
    .description('a run with its tasks and every attempt')
    .argument('<run>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { runDetail } = await import('../../ops/runs.js');
      const detail = await withLake(global, async (lake) => {
        const found = await runDetail(lake, id, { attempts: true });
        if (!found?.run) throw new DipError('not_found', `no orchestrated run ${id}; list them with \`dip runs list\``);
        return { run: found.run, tasks: found.tasks, attempts: found.attempts };
      });
      if (global.json) return printJson(detail);
      process.stdout.write(`${runTable([detail.run])}\n\n`);
      process.stdout.write(
        `${renderTable(
          ['task', 'status', 'attempts', 'rows', 'duration', 'error'],
          detail.tasks.map((t) => [
            t.task,
            t.status,
            `${t.attempt}/${t.maxAttempts}`,
            formatCount(t.rows),
            t.startedAt && t.endedAt ? formatDuration(t.endedAt.getTime() - t.startedAt.getTime()) : '',
            t.error ?? '',
          ]),
        )}\n`,
      );
      if (detail.attempts.some((a) => a.status !== 'succeeded')) {
        process.stdout.write(
          `\nattempts:\n${renderTable(
            ['task', 'attempt', 'status', 'worker', 'started', 'kind', 'error'],
            detail.attempts.map((a) => [
              a.task,
              a.attempt,
              a.status,
              a.worker,
              a.startedAt.toISOString(),
              a.errorKind ?? '',
              a.error ?? '',
            ]),
          )}\n`,
        );
      }
    });
  runs
    .command('cancel')
    .description('cancel a queued or running run: waiting tasks stop at once, running tasks at their next heartbeat')
    .argument('<run>')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { Orchestrator } = await import('../../orchestrate/orchestrator.js');
      const run = await withLake(global, (lake) => Orchestrator.create(lake).cancel(id));
      if (global.json) return printJson(run);
      process.stdout.write(
        `run ${run.id}: ${run.status === 'cancelled' ? 'cancelled' : 'cancelling (running tasks stop at their next heartbeat)'}\n`,
      );
    });
  runs
    .command('rerun')
    .description('run a finished run again: resume from its failed tasks (succeeded tasks are kept), or --all')
    .argument('<run>')
    .option('--all', 'run every task again, not only those that did not succeed')
    .option('--no-wait', 'queue it and return')
    .action(async (id: string, opts: { all?: boolean; wait: boolean }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      await startAndReport(global, opts.wait, (runtime) => runtime.orchestrator.rerun(id, { all: Boolean(opts.all) }));
    });
  runs
    .command('logs')
    .description("a task attempt's log")
    .argument('<run>')
    .argument('<task>')
    .option('--attempt <n>', 'which attempt (default: the latest)')
    .action(async (id: string, task: string, opts: { attempt?: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const attempts = await withLake(global, (lake) => lake.catalog.orchestration.listAttempts(id, task));
      const wanted = opts.attempt ? wholeNumber(opts.attempt, '--attempt', 1) : attempts.at(-1)?.attempt;
      const attempt = attempts.find((a) => a.attempt === wanted);
      if (!attempt)
        throw new DipError(
          'not_found',
          `no attempt ${wanted ?? ''} of task ${task} in run ${id} (attempts: ${attempts.map((a) => a.attempt).join(', ') || 'none'})`,
        );
      if (global.json) return printJson(attempt);
      process.stdout.write(attempt.log);
    });
}

/** Starts one run (trigger, rerun), waits for it unless --no-wait, and reports it. */
async function startAndReport(
  global: GlobalOptions,
  wait: boolean,
  start: (runtime: Runtime) => Promise<OrchestratedRun>,
): Promise<void> {
  await withRuntime(global, wait, async (runtime) => {
    const run = await start(runtime);
    await report(runtime.orchestrator.lake, wait ? await waitWithProgress(runtime, [run.id], global) : [run], global);
  });
}

/** Opens the lake and a runtime: an in-process executor, or the queue to the workers. */
async function withRuntime(
  global: GlobalOptions,
  execute: boolean,
  fn: (runtime: Runtime) => Promise<void>,
): Promise<void> {
  // Imported here, not at the top: `dip run` (parseInterval) and `dip runs list` never need them.
  const [{ createDispatcher }, { createLogger }, { startRuntime }] = await Promise.all([
    import('../../orchestrate/queue.js'),
    import('../../observe/log.js'),
    import('../../orchestrate/runtime.js'),
  ]);
  await withLake(global, async (lake) => {
    const dispatcher = execute ? await createDispatcher(lake) : undefined;
    const log = createLogger();
    const runtime = startRuntime(lake, {
      concurrency: execute && !dispatcher ? lake.project.config.serve.concurrency : 0,
      log: (message, fields, level = 'info') => log[level](fields ?? {}, message),
      ...(dispatcher ? { dispatch: (refs) => dispatcher.dispatch(refs) } : {}),
    });
    const abort = new AbortController();
    const onSignal = () =>
      abort.abort(
        new DipError(
          'interrupted',
          'interrupted: running tasks were handed back; their runs stay queued (dip runs list)',
        ),
      );
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    signals.set(runtime, abort.signal);
    try {
      await fn(runtime);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await runtime.stop(0);
      await dispatcher?.close();
    }
  });
}

const signals = new WeakMap<Runtime, AbortSignal>();

async function waitWithProgress(runtime: Runtime, ids: string[], global: GlobalOptions): Promise<OrchestratedRun[]> {
  const [{ default: cliProgress }, { createLogger }, { waitForRuns }] = await Promise.all([
    import('cli-progress'),
    import('../../observe/log.js'),
    import('../../orchestrate/runtime.js'),
  ]);
  const tty = Boolean(process.stderr.isTTY) && !global.json;
  const bar =
    tty && ids.length > 1
      ? new cliProgress.SingleBar(
          { format: ' runs |{bar}| {value}/{total} · {eta_formatted} left', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(ids.length, 0);
  const log = tty ? undefined : createLogger();
  let lastLogged = -1;
  // The waiting process also recovers tasks of dead workers and starts queued runs as others end.
  const maintain = setInterval(() => void runtime.orchestrator.maintain().catch(() => undefined), 1000);
  try {
    return await waitForRuns(runtime.orchestrator.store, ids, {
      ...(signals.get(runtime) ? { signal: signals.get(runtime) as AbortSignal } : {}),
      onProgress: (done, total) => {
        bar?.update(done);
        if (
          log &&
          ids.length > 1 &&
          done !== lastLogged &&
          (done === total || done - lastLogged >= Math.max(1, Math.ceil(total / 20)))
        ) {
          lastLogged = done;
          log.info({ done, total }, 'runs');
        }
      },
    });
  } finally {
    clearInterval(maintain);
    bar?.stop();
  }
}

async function report(
  lake: Lake,
  runs: OrchestratedRun[],
  global: GlobalOptions,
  backfillId?: string | null,
): Promise<void> {
  const failed = runs.filter((r) => r.status === 'failed' || r.status === 'crashed');
  if (global.json) {
    const detailed = await Promise.all(
      runs.map(async (r) => ({ ...r, tasks: await lake.catalog.orchestration.listTasks(r.id) })),
    );
    printJson(
      backfillId !== undefined ? { backfillId, runs: detailed } : detailed.length === 1 ? detailed[0] : detailed,
    );
  } else {
    if (backfillId) process.stdout.write(`backfill ${backfillId}\n`);
    process.stdout.write(`${runTable(runs)}\n`);
    if (runs.length === 1 && runs[0]) {
      const tasks = await lake.catalog.orchestration.listTasks(runs[0].id);
      process.stdout.write(
        `\n${renderTable(
          ['task', 'status', 'attempts', 'rows', 'error'],
          tasks.map((t) => [t.task, t.status, `${t.attempt}/${t.maxAttempts}`, formatCount(t.rows), t.error ?? '']),
        )}\n`,
      );
    }
    for (const f of failed.slice(0, 5))
      process.stderr.write(`\nrun ${f.id} failed:\n  ${(f.error ?? '').replaceAll('\n', '\n  ')}\n`);
  }
  if (failed.length) process.exitCode = 1;
  else if (runs.some((r) => r.status === 'cancelled')) process.exitCode = 130;
}

function runTable(runs: OrchestratedRun[]): string {
  return renderTable(
    ['run', 'pipeline', 'status', 'trigger', 'interval', 'attempt', 'duration'],
    runs.map((r) => [
      r.id,
      r.pipeline,
      r.status,
      r.trigger,
      r.interval ? `${r.interval.start.toISOString()} → ${r.interval.end.toISOString()}` : '',
      r.attempt,
      r.startedAt && r.endedAt ? formatDuration(r.endedAt.getTime() - r.startedAt.getTime()) : '',
    ]),
  );
}

export function parseTime(text: string, flag: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(d.getTime()))
    throw new DipError(
      'input',
      `${flag} "${text}": expected an ISO date or time, e.g. 2026-03-01 or 2026-03-01T02:00:00Z`,
    );
  return d;
}

export function parseInterval(start: string | undefined, end: string | undefined): Interval | null {
  if (start === undefined && end === undefined) return null;
  if (start === undefined || end === undefined)
    throw new DipError('input', '--interval-start and --interval-end go together');
  const interval = { start: parseTime(start, '--interval-start'), end: parseTime(end, '--interval-end') };
  if (!(interval.start < interval.end))
    throw new DipError('input', `--interval-start (${start}) must be before --interval-end (${end})`);
  return interval;
}
