/**
 * `dip serve`: one process with the scheduler loop, the task executor (the runtime), a REST API
 * with its OpenAPI document, Prometheus metrics, /health and /ready.
 *
 * Writes (POST) need `Authorization: Bearer <serve.token>` when a token is configured; reads
 * (GET) stay open. Without a token the server only listens on loopback: no open write endpoint
 * by accident. Closing stops the scheduler, stops taking requests (in-flight ones finish), then
 * gives running tasks the grace period before handing them back to the queue.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { secretRegistry } from '../config/secrets.js';
import { DipError, errorMessage, type ErrorKind } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { startRuntime, type Runtime } from '../orchestrate/runtime.js';
import type { TaskRef } from '../orchestrate/types.js';
import { DipMetrics, observeAttempts } from './metrics.js';
import { collectRoutes, openApiDocument } from './openapi.js';
import { registerRoutes } from './routes.js';
import { NO_SCHEDULER, SchedulerLoop, type SchedulerStatus, type ServeLog } from './scheduler.js';

export type { ServeLog } from './scheduler.js';

export const API_VERSION = '0.1.0';
/** Running tasks get this long to finish on close before they are handed back. */
export const DEFAULT_GRACE_MS = 30_000;
const BODY_LIMIT = 1024 * 1024;

export interface ServerOptions {
  /** Bearer token every POST needs; none: writes are open (loopback only, see serve). */
  token?: string | undefined;
  clock?: () => Date;
  /** The scheduler loop /ready waits for; default: none (readiness needs the catalog only). */
  scheduler?: SchedulerStatus;
  /** Shared with the scheduler loop, which polls finished runs; default: a new one. */
  metrics?: DipMetrics;
  log?: ServeLog;
}

export type ApiErrorKind = ErrorKind | 'unauthorized' | 'forbidden';

export interface ApiError {
  error: { kind: ApiErrorKind; message: string };
}

const STATUS: Partial<Record<ErrorKind, number>> = { not_found: 404, config: 400, input: 400, conflict: 409 };

const silent: ServeLog = () => undefined;

/** Builds the API on a started runtime (does not listen). */
export async function createServer(lake: Lake, runtime: Runtime, options: ServerOptions = {}): Promise<FastifyInstance> {
  const log = options.log ?? silent;
  const clock = options.clock ?? lake.catalog.clock;
  const token = options.token === undefined ? undefined : checkedToken(options.token);
  const metrics = options.metrics ?? (await DipMetrics.create(lake, { clock }));
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT,
    // Unknown body properties are an error (a misspelt dry_run must not run a backfill), not dropped.
    ajv: { customOptions: { removeAdditional: false } },
  });
  const routes = collectRoutes(app);
  const detach = observeAttempts(runtime, metrics);
  app.addHook('onClose', async () => detach());

  if (token !== undefined) app.addHook('onRequest', bearerAuth(token));
  // A POST without a body is an empty object: optional fields keep their defaults.
  app.addHook('preValidation', async (req) => {
    if (req.method === 'POST' && (req.body === undefined || req.body === null)) req.body = {};
  });
  app.setErrorHandler((err: FastifyError | DipError | Error, req, reply) => {
    const { status, body } = toApiError(err);
    if (status >= 500) log('error', `${req.method} ${req.url}: ${body.error.message}`);
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { kind: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}; see /openapi.json` } } satisfies ApiError));

  let document: ReturnType<typeof openApiDocument> | undefined;
  registerRoutes(app, {
    lake,
    runtime,
    clock,
    metrics,
    scheduler: options.scheduler ?? NO_SCHEDULER,
    openapi: () => (document ??= openApiDocument(routes, { title: `DIP API · ${lake.project.config.project}`, version: API_VERSION, bearer: token !== undefined })),
  });
  await app.ready();
  return app;
}

export interface ServeOptions {
  host: string;
  port: number;
  token?: string | undefined;
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
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8420 */
  address: string;
  /** Stops scheduling and taking requests, lets running tasks finish (or hands them back after the grace period). */
  close(options?: { graceMs?: number }): Promise<void>;
}

const LOOPBACK = /^(localhost|::1|\[::1\]|127(?:\.\d{1,3}){3})$/i;

export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host.trim());
}

/** Starts the runtime, the scheduler loop and the API; the lake stays the caller's to close. */
export async function serve(lake: Lake, options: ServeOptions): Promise<RunningServer> {
  const log = options.log ?? silent;
  const token = options.token === undefined ? undefined : checkedToken(options.token);
  if (token === undefined && !isLoopback(options.host)) {
    throw new DipError('config', `serve: refusing to listen on ${options.host} without a token: every write endpoint would be open to the network. Set serve.token (e.g. \${env:DIP_API_TOKEN}) or --token, or listen on 127.0.0.1`);
  }
  if (!(options.tickMs > 0)) throw new DipError('config', `serve.tick must be longer than 0 (got ${options.tickMs} ms)`);
  const clock = options.clock ?? lake.catalog.clock;
  // Before the runtime: attempts it ends are counted.
  const metrics = await DipMetrics.create(lake, { clock, defaultMetrics: options.defaultMetrics ?? true });
  const runtime = startRuntime(lake, {
    concurrency: options.executor === 'workers' ? 0 : options.concurrency,
    clock,
    log: (message, fields) => log('info', message, fields),
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
            await metrics.poll().catch((err: unknown) => log('warn', `metrics: cannot read finished runs: ${errorMessage(err)}`));
          },
          options.tickMs,
          log,
          clock,
        );
  let app: FastifyInstance | undefined;
  try {
    app = await createServer(lake, runtime, { token, clock, metrics, log, scheduler: scheduler ?? NO_SCHEDULER });
    scheduler?.start();
    const address = await app.listen({ host: options.host, port: options.port });
    log('info', `dip serve listening on ${address}`, { scheduler: Boolean(scheduler), executor: options.executor, concurrency: options.concurrency });
    let closing: Promise<void> | undefined;
    const server = app;
    return {
      address,
      close: (closeOptions = {}) => (closing ??= shutdown(server, runtime, scheduler, closeOptions.graceMs ?? options.graceMs ?? DEFAULT_GRACE_MS, log)),
    };
  } catch (err) {
    await scheduler?.stop();
    await app?.close();
    await runtime.stop(0);
    throw err instanceof Error && (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? new DipError('config', `serve: ${options.host}:${options.port} is in use; pick another --port`, { cause: err }) : err;
  }
}

async function shutdown(app: FastifyInstance, runtime: Runtime, scheduler: SchedulerLoop | undefined, graceMs: number, log: ServeLog): Promise<void> {
  log('info', 'dip serve: shutting down', { graceMs });
  await scheduler?.stop();
  await app.close();
  await runtime.stop(graceMs);
  log('info', 'dip serve: stopped');
}

function checkedToken(token: string): string {
  if (token.trim() === '') throw new DipError('config', 'serve.token is empty; set a secret (e.g. ${env:DIP_API_TOKEN}) or leave it out on loopback');
  return token;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** POST (and any other write) needs the bearer token: 401 without one, 403 with a wrong one. Reads stay open. */
function bearerAuth(token: string): (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const expected = digest(token);
  return async (req, reply) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return;
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
    if (!match) {
      return reply.status(401).header('www-authenticate', 'Bearer realm="dip"').send({ error: { kind: 'unauthorized', message: 'this endpoint needs Authorization: Bearer <serve.token>' } } satisfies ApiError);
    }
    // Equal-length digests: the comparison takes the same time whatever the guess.
    if (!timingSafeEqual(digest(match[1] ?? ''), expected)) {
      return reply.status(403).send({ error: { kind: 'forbidden', message: 'the bearer token is not the one configured (serve.token)' } } satisfies ApiError);
    }
    return undefined;
  };
}

function toApiError(err: FastifyError | DipError | Error): { status: number; body: ApiError } {
  if (err instanceof DipError) return { status: STATUS[err.kind] ?? 500, body: { error: { kind: err.kind, message: secretRegistry.redact(err.message) } } };
  const fastify = err as FastifyError;
  if (fastify.validation) {
    const where = fastify.validationContext ?? 'request';
    const details = fastify.validation.map((v) => {
      const at = `${where}${v.instancePath.replaceAll('/', '.')}`;
      const extra = v.params['additionalProperty'];
      if (v.keyword === 'additionalProperties' && typeof extra === 'string') return `${at}: unknown property "${extra}"`;
      return `${at} ${v.message ?? v.keyword}`;
    });
    return { status: 400, body: { error: { kind: 'input', message: details.join('; ') } } };
  }
  const status = typeof fastify.statusCode === 'number' ? fastify.statusCode : 500;
  if (status >= 400 && status < 500) return { status, body: { error: { kind: status === 404 ? 'not_found' : 'input', message: err.message } } };
  return { status: 500, body: { error: { kind: 'internal', message: secretRegistry.redact(err.message) } } };
}
