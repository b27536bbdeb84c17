/**
 * `dip serve`: the scheduler, the executor, the REST API and the metrics in one process, with the
 * project's `serve:` settings as defaults; SIGINT/SIGTERM closes it gracefully (exit 0); a change to
 * the project file (or SIGHUP) reloads it, validated before it is swapped in.
 */
import type { Command } from 'commander';
import type { LoadedProject } from '../../config/load.js';
import { resolveSecrets, secretRegistry } from '../../config/secrets.js';
import { DipError } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { Lake } from '../../lake/lake.js';
import type { Dispatcher, QueueLog } from '../../orchestrate/queue.js';
import type { ServeLog } from '../../serve/server.js';
import { loadFromOptions, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';

interface ServeCliOptions {
  host?: string;
  port?: string;
  token?: string;
  allowUnauthenticated?: boolean;
  concurrency?: string;
  scheduler: boolean;
  watch: boolean;
  grace: string;
  startupWait: string;
  gateway?: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'the scheduler, the task executor, a REST API (/openapi.json), Prometheus /metrics, /health and /ready in one process, until SIGINT/SIGTERM',
    )
    .option(
      '--host <host>',
      'address to listen on (default: serve.host, 127.0.0.1); beyond loopback a token is required (or --allow-unauthenticated)',
    )
    .option('--port <port>', 'port (default: serve.port, 8420; 0 picks a free one)')
    .option(
      '--token <token>',
      'bearer token every route but /health and /ready needs (default: serve.token); ${env:NAME} and ${file:path} are resolved',
    )
    .option(
      '--allow-unauthenticated',
      'listen beyond loopback without a token (default: serve.allow_unauthenticated, false); only behind a proxy that authenticates',
    )
    .option('--concurrency <n>', 'tasks this process runs at once (default: serve.concurrency)')
    .option('--no-scheduler', 'no scheduler loop here (another process schedules): only the API and the executor')
    .option(
      '--gateway',
      'also serve the endpoints of the gateway sources (as `dip gateway` does; they authenticate themselves)',
    )
    .option(
      '--no-watch',
      'do not reload the project file when it changes (SIGHUP still reloads it); a file that does not validate is never swapped in',
    )
    .option(
      '--grace <duration>',
      'on SIGINT/SIGTERM, how long running tasks may finish before they are handed back',
      '30s',
    )
    .option(
      '--startup-wait <duration>',
      'how long to keep trying an unreachable catalog or task queue at startup (a wrong password or database fails at once; 0s: no waiting)',
      '60s',
    )
    .action(async (opts: ServeCliOptions, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      // Imported here, not at the top: `dip --help` does not load the queue, the orchestrator or pino.
      const [{ createLogger }, { openWhenReachable }] = await Promise.all([
        import('../../observe/log.js'),
        import('../../orchestrate/startup.js'),
      ]);
      const project = await loadFromOptions(global);
      const config = project.config.serve;
      const port = opts.port === undefined ? config.port : wholeNumber(opts.port, '--port');
      if (port > 65535) throw new DipError('input', `--port ${port}: expected 0 to 65535`);
      const concurrency =
        opts.concurrency === undefined ? config.concurrency : wholeNumber(opts.concurrency, '--concurrency', 1);
      const graceMs = durationMs(opts.grace, '--grace');
      const startupWaitMs = durationMs(opts.startupWait, '--startup-wait');
      const tokenRef = opts.token ?? config.token;
      const token = tokenRef === undefined ? undefined : resolveSecrets(tokenRef, { baseDir: project.dir });
      if (token) secretRegistry.add(token); // a literal token too: masked in every log, error and task log
      const print = (text: string) => process.stdout.write(text);

      const logger = createLogger();
      const log: ServeLog = (level, message, fields = {}) => logger[level](fields, message);
      const signals = untilSignal(log);
      const stopped = new AbortController();
      void signals.received.then(() => stopped.abort());
      const wait = {
        waitMs: startupWaitMs,
        signal: stopped.signal,
        log: (message: string, fields: Record<string, unknown>) => log('warn', message, fields),
      };

      try {
        const queueLog = (
          message: string,
          fields?: Record<string, unknown>,
          level: 'info' | 'warn' | 'error' = 'info',
        ) => log(level, message, fields);
        let opened: { lake: Lake; dispatcher: Dispatcher | undefined };
        try {
          opened = await openWhenReachable(
            'the catalog or the task queue',
            () => openLakeAndDispatcher(project, queueLog),
            wait,
            closeBoth,
          );
        } catch (err) {
          if (!(err instanceof DipError && err.kind === 'interrupted')) throw err;
          log('info', 'stopped before the catalog and the queue were reachable');
          return;
        }
        const { lake, dispatcher } = opened;
        try {
          // Fastify loads only for `dip serve`, not for every command.
          const { serve } = await import('../../serve/server.js');
          const gateway = opts.gateway
            ? await (await import('../../gateway/server.js')).openGateway(project)
            : undefined;
          const server = await serve(lake, {
            gateway,
            host: opts.host ?? config.host,
            port,
            token,
            publicRoutes: config.public,
            allowedHosts: config.allowed_hosts,
            maxBackfillIntervals: config.max_backfill_intervals,
            allowUnauthenticated: opts.allowUnauthenticated ?? config.allow_unauthenticated ?? false,
            tickMs: durationMs(config.tick, 'serve.tick'),
            concurrency,
            executor: config.executor,
            scheduler: opts.scheduler,
            graceMs,
            log,
            watchProject: opts.watch,
            ...(dispatcher ? { dispatch: (refs) => dispatcher.dispatch(refs) } : {}),
          });
          if (global.json) print(`${JSON.stringify({ address: server.address, listen: server.listen })}\n`);
          else {
            const executor =
              config.executor === 'workers'
                ? 'tasks go to dip worker processes'
                : `executor runs ${concurrency} task(s) at once`;
            print(
              `dip serve: listening on ${server.listen.join(', ')} (${opts.scheduler ? `scheduler every ${config.tick}` : 'no scheduler'}, ${executor}, ${token ? 'every route but /health and /ready needs the token' : 'no token'}); API: ${server.address}/openapi.json\n`,
            );
            print(`web console: ${server.address}/ui/${token ? ' (sign in with the token)' : ''}\n`);
          }
          // SIGHUP: load dip.yaml again (validated first; an invalid file keeps the running configuration).
          const onHangup = () => void server.reload('SIGHUP');
          process.on('SIGHUP', onHangup);
          try {
            await signals.received;
          } finally {
            process.off('SIGHUP', onHangup);
          }
          await server.close();
          await gateway?.close();
        } finally {
          await closeBoth(opened);
        }
      } finally {
        signals.dispose();
      }
    });
}

/** Resolves on the first SIGINT/SIGTERM; a second one gets the default behaviour (exit at once). */
function untilSignal(log: ServeLog): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const dispose = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => {
      dispose();
      log('info', 'signal received: no new requests or runs; running tasks finish (send it again to exit at once)', {
        signal,
      });
      resolve(signal);
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { received, dispose };
}

/** The lake, then (serve.executor: workers) the task queue; on failure nothing stays open. */
async function openLakeAndDispatcher(
  project: LoadedProject,
  log: QueueLog,
): Promise<{ lake: Lake; dispatcher: Dispatcher | undefined }> {
  const [{ Lake }, { createDispatcher }] = await Promise.all([
    import('../../lake/lake.js'),
    import('../../orchestrate/queue.js'),
  ]);
  const lake = await Lake.open(project);
  try {
    return { lake, dispatcher: await createDispatcher(lake, { log }) };
  } catch (err) {
    await lake.close().catch(() => undefined);
    throw err;
  }
}

async function closeBoth({ lake, dispatcher }: { lake: Lake; dispatcher: Dispatcher | undefined }): Promise<void> {
  await dispatcher?.close().catch(() => undefined);
  await lake.close().catch(() => undefined);
}
