import type { Command } from 'commander';
import type { LoadedProject } from '../../config/load.js';
import { DipError } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { Lake } from '../../lake/lake.js';
import type { QueueLog, TaskQueue } from '../../orchestrate/queue.js';
import { loadFromOptions, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';

interface WorkerCliOptions {
  concurrency?: string;
  lease?: string;
  grace: string;
  startupWait: string;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description(
      'run tasks from the PostgreSQL task queue (catalog: postgres, serve.executor: workers) until SIGINT/SIGTERM; start any number, on any machine',
    )
    .option('--concurrency <n>', 'tasks at once (default: serve.concurrency)')
    .option(
      '--lease <duration>',
      "lease on a running task, renewed while it runs; a dead worker's task is retried once it expires (default: $DIP_TASK_LEASE or 30s)",
    )
    .option(
      '--grace <duration>',
      'on SIGINT/SIGTERM, how long running tasks may finish before they are handed back to other workers',
      '30s',
    )
    .option(
      '--startup-wait <duration>',
      'how long to keep trying an unreachable catalog or queue at startup (a wrong password or database fails at once; 0s: no waiting)',
      '60s',
    )
    .action(async (opts: WorkerCliOptions, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      // Imported here, not at the top: `dip --help` does not load the queue, the orchestrator or pino.
      const [{ createLogger }, { postgresCatalog }, { runWorker }, { leaseMsFrom }, { openWhenReachable }] =
        await Promise.all([
          import('../../observe/log.js'),
          import('../../orchestrate/queue.js'),
          import('../../orchestrate/worker.js'),
          import('../../orchestrate/runtime.js'),
          import('../../orchestrate/startup.js'),
        ]);
      const project = await loadFromOptions(global);
      postgresCatalog(project.config.catalog);
      const concurrency =
        opts.concurrency === undefined
          ? project.config.serve.concurrency
          : wholeNumber(opts.concurrency, '--concurrency', 1);
      const leaseMs = leaseMsFrom(opts.lease);
      const graceMs = durationMs(opts.grace, '--grace');
      const startupWaitMs = durationMs(opts.startupWait, '--startup-wait');

      const logger = createLogger();
      const log: QueueLog = (message, fields = {}, level = 'info') => logger[level](fields, message);
      if (project.config.serve.executor !== 'workers') {
        log(
          'serve.executor is not "workers": schedulers of this project run tasks in-process and send none to the queue; this worker only recovers and runs what is queued',
          {},
          'warn',
        );
      }

      const stop = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => {
        log('signal received: finishing running tasks, then stopping (send it again to exit at once)', {
          signal,
          grace_ms: graceMs,
        });
        stop.abort();
        // A second signal gets the default behaviour: exit at once (leases then expire and other workers retry).
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        let opened: { lake: Lake; queue: TaskQueue };
        try {
          opened = await openWhenReachable(
            'the catalog or the task queue',
            () => openLakeAndQueue(project, log),
            { waitMs: startupWaitMs, signal: stop.signal, log: (message, fields) => log(message, fields, 'warn') },
            closeBoth,
          );
        } catch (err) {
          if (!(err instanceof DipError && err.kind === 'interrupted')) throw err;
          log('stopped before the catalog and the queue were reachable');
          return;
        }
        const { lake, queue } = opened;
        try {
          await runWorker(lake, { concurrency, leaseMs, graceMs, signal: stop.signal, log, queue });
        } finally {
          await lake.close();
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

/**
 * The lake and the queue open side by side (the worker is up sooner); on failure neither stays
 * open, and an error no wait can fix (a wrong password) wins over a transient one.
 */
async function openLakeAndQueue(project: LoadedProject, log: QueueLog): Promise<{ lake: Lake; queue: TaskQueue }> {
  const [{ Lake }, { TaskQueue }] = await Promise.all([
    import('../../lake/lake.js'),
    import('../../orchestrate/queue.js'),
  ]);
  const [lake, queue] = await Promise.allSettled([Lake.open(project), TaskQueue.create({ project }, { log })]);
  if (lake.status === 'fulfilled' && queue.status === 'fulfilled') return { lake: lake.value, queue: queue.value };
  if (lake.status === 'fulfilled') await lake.value.close().catch(() => undefined);
  if (queue.status === 'fulfilled') await queue.value.close().catch(() => undefined);
  const errors = [lake, queue].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  throw errors.find((e) => !(e instanceof DipError && e.kind === 'transient')) ?? errors[0];
}

async function closeBoth({ lake, queue }: { lake: Lake; queue: TaskQueue }): Promise<void> {
  await Promise.allSettled([lake.close(), queue.close()]);
}
