/**
 * `dip serve`: one process with the scheduler loop, the task executor (the runtime), a REST API
 * with its OpenAPI document, Prometheus metrics, /health and /ready.
 *
 * Every request passes the guards of security.ts: its Host must name this server, with a token
 * configured every route but /health, /ready (and serve.public) needs it, and a POST must be
 * JSON. Without a token the server only listens on loopback unless serve.allow_unauthenticated
 * says otherwise. Closing stops the scheduler, stops taking requests (in-flight ones finish),
 * then gives running tasks the grace period before handing them back to the queue.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { secretRegistry } from '../config/secrets.js';
import { DipError, errorMessage, type ErrorKind } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { startRuntime, type Runtime } from '../orchestrate/runtime.js';
import type { TaskRef } from '../catalog/orchestration-types.js';
import { CONSOLE_PATHS } from './console-routes.js';
import { DipMetrics, observeAttempts } from './metrics.js';
import { collectRoutes, openApiDocument } from './openapi.js';
import { ProjectReloader, type ReloadResult } from './reload.js';
import { registerRoutes } from './routes.js';
import { type Gateway, registerGatewayRoutes } from '../gateway/server.js';
import { NO_SCHEDULER, SchedulerLoop, type SchedulerStatus, type ServeLog } from './scheduler.js';
import {
  checkedToken,
  DEFAULT_MAX_BACKFILL_INTERVALS,
  hostPolicy,
  isLoopback,
  openPaths,
  requestGuard,
  type GuardErrorKind,
  type PublicRouteName,
} from './security.js';

export type { ServeLog } from './scheduler.js';
export type { ReloadResult } from './reload.js';
export { isLoopback } from './security.js';

export const API_VERSION = '0.1.0';
/** Running tasks get this long to finish on close before they are handed back. */
export const DEFAULT_GRACE_MS = 30_000;
const BODY_LIMIT = 1024 * 1024;

/** What createServer and serve share: who may ask what. */
export interface AccessOptions {
  /** Bearer token every route but /health, /ready and `publicRoutes` needs; none: all open (loopback only, see serve). */
  token?: string | undefined;
  /** Routes open without the token (serve.public); default none. */
  publicRoutes?: readonly PublicRouteName[] | undefined;
  /** Names accepted in the Host header besides the listen address and loopback (serve.allowed_hosts); "*": any. */
  allowedHosts?: readonly string[] | undefined;
  /** Intervals one backfill request may queue (serve.max_backfill_intervals, default 1000). */
  maxBackfillIntervals?: number | undefined;
  /** The gateway's endpoints, served beside the API (`dip serve --gateway`); they authenticate themselves. */
  gateway?: Gateway | undefined;
}

export interface ServerOptions extends AccessOptions {
  /** The address the server listens on, for the Host check (default 127.0.0.1). */
  listenHost?: string;
  clock?: () => Date;
  /** The scheduler loop /ready waits for; default: none (readiness needs the catalog only). */
  scheduler?: SchedulerStatus;
  /** Shared with the scheduler loop, which polls finished runs; default: a new one. */
  metrics?: DipMetrics;
  log?: ServeLog;
}

export type ApiErrorKind = ErrorKind | GuardErrorKind;

export interface ApiError {
  error: { kind: ApiErrorKind; message: string };
}

const STATUS: Partial<Record<ErrorKind, number>> = { not_found: 404, config: 400, input: 400, conflict: 409 };

const silent: ServeLog = () => undefined;

/** Builds the API on a started runtime (does not listen). */
export async function createServer(
  lake: Lake,
  runtime: Runtime,
  options: ServerOptions = {},
): Promise<FastifyInstance> {
  const log = options.log ?? silent;
  const clock = options.clock ?? lake.catalog.clock;
  const token = options.token === undefined ? undefined : checkedToken(options.token);
  const metrics = options.metrics ?? (await DipMetrics.create(lake, { clock }));
  const maxBackfillIntervals = options.maxBackfillIntervals ?? DEFAULT_MAX_BACKFILL_INTERVALS;
  if (!Number.isInteger(maxBackfillIntervals) || maxBackfillIntervals < 1)
    throw new DipError(
      'config',
      `serve.max_backfill_intervals must be a whole number of at least 1 (got ${maxBackfillIntervals})`,
    );
  const open = openPaths(options.publicRoutes ?? []);
  for (const path of CONSOLE_PATHS) open.add(path); // the console's assets; its API calls send the token
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Unknown body properties are an error (a misspelt dry_run must not run a backfill), not dropped.
    ajv: { customOptions: { removeAdditional: false } },
  });
  const routes = collectRoutes(app);
  const detach = observeAttempts(runtime, metrics);
  app.addHook('onClose', async () => detach());

  app.addHook(
    'onRequest',
    requestGuard({
      hosts: hostPolicy(options.listenHost ?? '127.0.0.1', options.allowedHosts ?? []),
      token,
      open,
      selfAuthenticated: new Set(options.gateway?.endpoints.map((e) => e.path) ?? []),
    }),
  );
  if (options.gateway) await registerGatewayRoutes(app, options.gateway);
  // POSTs must be JSON (see security.ts); an empty JSON body is an empty object, as no body is.
  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') done(null, {});
    else json(req, text, done);
  });
  // A POST without a body is an empty object: optional fields keep their defaults.
  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && (req.body === undefined || req.body === null)) req.body = {};
  });
  app.setErrorHandler((err: FastifyError | DipError | Error, req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500) log('error', `${req.method} ${req.url}: ${body.error.message}`);
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: {
        kind: 'not_found',
        message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}; see /openapi.json`,
      },
    } satisfies ApiError),
  );

  let document: ReturnType<typeof openApiDocument> | undefined;
  registerRoutes(app, {
    lake,
    runtime,
    clock,
    metrics,
    scheduler: options.scheduler ?? NO_SCHEDULER,
    maxBackfillIntervals,
    openapi: () =>
      (document ??= openApiDocument(routes, {
        title: `DIP API · ${lake.project.config.project}`,
        version: API_VERSION,
        bearer: token !== undefined,
        open,
      })),
  });
  await app.ready();
  return app;
}

export interface ServeOptions extends AccessOptions {
  host: string;
  port: number;
  /** Listen beyond loopback without a token (serve.allow_unauthenticated): only behind something that authenticates. */
  allowUnauthenticated?: boolean | undefined;
  tickMs: number;
  /** Tasks this process runs at once (executor in-process). */
  concurrency: number;
  /** workers: no executor here; `dispatch` (the queue) or `dip worker` processes run the tasks. */
  executor: 'in-process' | 'workers';
  /** Run the scheduler loop (default true); false when another process schedules. */
  scheduler?: boolean;
  /** On close, how long running tasks may take before they are handed back (default 30 s). */
  graceMs?: number;
  dispatch?: (refs: TaskRef[]) => Promise<void> | void;
  clock?: () => Date;
  log?: ServeLog;
  leaseMs?: number;
  /** Executor idle poll (ms). */
  pollMs?: number;
  /** prom-client's process metrics (default true). */
  defaultMetrics?: boolean;
  /** Reload the project file when it changes (default false; `dip serve` watches unless --no-watch). */
  watchProject?: boolean;
}

export interface RunningServer {
  /** A URL that reaches the server from this machine, with the port it got (port 0: the one picked), e.g. http://127.0.0.1:8420. */
  address: string;
  /** The socket addresses it listens on, e.g. ["0.0.0.0:8420"] or ["[::1]:8420"]. */
  listen: string[];
  /** Stops scheduling and taking requests, lets running tasks finish (or hands them back after the grace period). */
  close(options?: { graceMs?: number }): Promise<void>;
  /** Loads the project file again, validates it and swaps it in (SIGHUP); an invalid file keeps the running configuration. */
  reload(reason?: string): Promise<ReloadResult>;
}

/** Starts the runtime, the scheduler loop and the API; the lake stays the caller's to close. */
export async function serve(lake: Lake, options: ServeOptions): Promise<RunningServer> {
  const log = options.log ?? silent;
  const token = options.token === undefined ? undefined : checkedToken(options.token);
  if (token === undefined && !isLoopback(options.host)) {
    if (!options.allowUnauthenticated) {
      throw new DipError(
        'config',
        `serve: refusing to listen on ${options.host} without a token: every endpoint (runs, logs, tables, triggers) would be open to the network. Set serve.token (e.g. \${env:DIP_API_TOKEN}) or --token, listen on 127.0.0.1, or (behind a proxy that authenticates) set serve.allow_unauthenticated: true`,
      );
    }
    log(
      'warn',
      `dip serve: listening on ${options.host} without a token (serve.allow_unauthenticated): anyone who reaches this address can read runs, logs and tables and trigger runs`,
    );
  }
  if (!(options.tickMs > 0))
    throw new DipError('config', `serve.tick must be longer than 0 (got ${options.tickMs} ms)`);
  const clock = options.clock ?? lake.catalog.clock;
  // Before the runtime: attempts it ends are counted.
  const metrics = await DipMetrics.create(lake, { clock, defaultMetrics: options.defaultMetrics ?? true });
  const runtime = startRuntime(lake, {
    concurrency: options.executor === 'workers' ? 0 : options.concurrency,
    clock,
    log: (message, fields, level = 'info') => log(level, message, fields),
    ...(options.dispatch ? { dispatch: options.dispatch } : {}),
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
    ...(options.pollMs ? { pollMs: options.pollMs } : {}),
  });
  const scheduler =
    options.scheduler === false
      ? undefined
      : new SchedulerLoop(
          async () => {
            await runtime.orchestrator.tick();
            await metrics
              .poll()
              .catch((err: unknown) => log('warn', `metrics: cannot read finished runs: ${errorMessage(err)}`));
          },
          options.tickMs,
          log,
          clock,
        );
  let app: FastifyInstance | undefined;
  const reloader = new ProjectReloader(lake, runtime, log);
  try {
    await reloader.start({ watch: options.watchProject ?? false });
    app = await createServer(lake, runtime, {
      token,
      clock,
      metrics,
      log,
      scheduler: scheduler ?? NO_SCHEDULER,
      listenHost: options.host,
      publicRoutes: options.publicRoutes,
      allowedHosts: options.allowedHosts,
      maxBackfillIntervals: options.maxBackfillIntervals,
      gateway: options.gateway,
    });
    scheduler?.start();
    const address = await app.listen({ host: options.host, port: options.port });
    // Fastify's URL says 127.0.0.1 for 0.0.0.0; the sockets say what is really listening.
    const listen = app
      .addresses()
      .map((a) =>
        typeof a === 'string' ? a : a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
      );
    log('info', `dip serve listening on ${listen.join(', ')} (${address})`, {
      scheduler: Boolean(scheduler),
      executor: options.executor,
      concurrency: options.concurrency,
      token: token !== undefined,
    });
    let closing: Promise<void> | undefined;
    const server = app;
    return {
      address,
      listen,
      close: (closeOptions = {}) => {
        options.gateway?.drain(); // new events get 503 from now on
        reloader.stop();
        return (closing ??= shutdown(
          server,
          runtime,
          scheduler,
          closeOptions.graceMs ?? options.graceMs ?? DEFAULT_GRACE_MS,
          log,
        ));
      },
      reload: (reason = 'requested') => reloader.reload(reason),
    };
  } catch (err) {
    reloader.stop();
    await scheduler?.stop();
    await app?.close();
    await runtime.stop(0);
    throw err instanceof Error && (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
      ? new DipError('config', `serve: ${options.host}:${options.port} is in use; pick another --port`, { cause: err })
      : err;
  }
}

async function shutdown(
  app: FastifyInstance,
  runtime: Runtime,
  scheduler: SchedulerLoop | undefined,
  graceMs: number,
  log: ServeLog,
): Promise<void> {
  log('info', 'dip serve: shutting down', { graceMs });
  await scheduler?.stop();
  await app.close();
  await runtime.stop(graceMs);
  log('info', 'dip serve: stopped');
}

function toApiError(err: FastifyError | DipError | Error): { status: number; body: ApiError } {
  if (err instanceof DipError)
    return {
      status: STATUS[err.kind] ?? 500,
      body: { error: { kind: err.kind, message: secretRegistry.redact(err.message) } },
    };
  const fastify = err as FastifyError;
  if (fastify.validation) {
    const where = fastify.validationContext ?? 'request';
    const details = fastify.validation.map((v) => {
      const at = `${where}${v.instancePath.replaceAll('/', '.')}`;
      const extra = v.params['additionalProperty'];
      if (v.keyword === 'additionalProperties' && typeof extra === 'string')
        return `${at}: unknown property "${extra}"`;
      return `${at} ${v.message ?? v.keyword}`;
    });
    return { status: 400, body: { error: { kind: 'input', message: details.join('; ') } } };
  }
  const status = typeof fastify.statusCode === 'number' ? fastify.statusCode : 500;
  if (status >= 400 && status < 500)
    return { status, body: { error: { kind: status === 404 ? 'not_found' : 'input', message: err.message } } };
  return { status: 500, body: { error: { kind: 'internal', message: secretRegistry.redact(err.message) } } };
}
