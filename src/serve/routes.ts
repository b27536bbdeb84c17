/**
 * The routes of `dip serve`: health and readiness, the OpenAPI document, Prometheus metrics,
 * tables, (run-routes.ts) pipelines and runs, and (ops-routes.ts) quality, quarantine and stream
 * state. Domain answers come from src/ops/, which the CLI uses too.
 */
import type { FastifyInstance } from 'fastify';
import { DipError, errorMessage } from '../core/errors.js';
import { findTable, listTables, tableNames } from '../ops/tables.js';
import { registerConsoleRoutes } from './console-routes.js';
import type { ApiContext } from './context.js';
import { registerOpsRoutes } from './ops-routes.js';
import { registerRunRoutes } from './run-routes.js';
import { tableParams, type RouteSchema } from './schemas.js';
import { tableView } from './views.js';

/** How long /ready waits for the catalog before calling it unavailable. */
const READY_TIMEOUT_MS = 2_000;

export function registerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  registerServiceRoutes(app, ctx);
  registerRunRoutes(app, ctx);
  registerTableRoutes(app, ctx);
  registerOpsRoutes(app, ctx);
  registerConsoleRoutes(app, ctx);
}

function registerServiceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const health: RouteSchema = {
    summary: 'Liveness: the process answers',
    tags: ['service'],
    success: { status: 200, description: '{ status: "ok" }' },
  };
  app.get('/health', { schema: health }, async () => ({ status: 'ok' }));

  const ready: RouteSchema = {
    summary: 'Readiness: the catalog answers and the scheduler has ticked at least once',
    tags: ['service'],
    success: {
      status: 200,
      description: 'Ready',
      alternative: { status: 503, description: 'Not ready (yet): see catalog and scheduler' },
    },
  };
  app.get('/ready', { schema: ready }, async (_req, reply) => {
    const catalog = await catalogAnswers(ctx);
    const s = ctx.scheduler;
    const scheduled = !s.enabled || s.ticks > 0;
    const body = {
      status: catalog.ok && scheduled ? 'ready' : 'not_ready',
      catalog: catalog.ok ? 'ok' : `unavailable: ${catalog.error}`,
      scheduler: {
        enabled: s.enabled,
        ticks: s.ticks,
        last_tick_at: s.lastTickAt?.toISOString() ?? null,
        last_error: s.lastError,
      },
    };
    return reply.status(catalog.ok && scheduled ? 200 : 503).send(body);
  });

  const openapi: RouteSchema = {
    summary: 'This API as an OpenAPI 3.1 document',
    tags: ['service'],
    success: { status: 200, description: 'The OpenAPI document' },
  };
  app.get('/openapi.json', { schema: openapi }, async () => ctx.openapi());

  const metrics: RouteSchema = {
    summary: 'Prometheus metrics (text exposition format)',
    tags: ['service'],
    success: { status: 200, description: 'Metrics', contentType: 'text/plain' },
  };
  app.get('/metrics', { schema: metrics }, async (_req, reply) => {
    const text = await ctx.metrics.render();
    return reply.type(ctx.metrics.contentType).send(text);
  });
}

async function catalogAnswers(ctx: ApiContext): Promise<{ ok: true } | { ok: false; error: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    });
    // A primary-key lookup: cheap on any catalog size, and a real round trip.
    await Promise.race([ctx.lake.catalog.getRun('run_ready_probe'), timeout]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: errorMessage(err) };
  } finally {
    clearTimeout(timer);
  }
}

function registerTableRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const catalog = ctx.lake.catalog;
  const headOf = async (commit: number | null) => (commit === null ? undefined : catalog.getCommit(commit));

  const list: RouteSchema = {
    summary:
      'Tables of every zone with rows as readers see them (CDC current-state tables: the true row count; pending_changes: changes not merged into the base yet), files, bytes, last commit time and freshness',
    tags: ['tables'],
    success: { status: 200, description: '{ tables: [...] }' },
  };
  app.get('/tables', { schema: list }, async () => {
    const now = ctx.clock();
    const tables = await listTables(ctx.lake);
    return { tables: await Promise.all(tables.map(async (t) => tableView(t, await headOf(t.headCommit), now))) };
  });

  const one: RouteSchema = {
    summary: 'One table (zone.table) with its current columns',
    tags: ['tables'],
    params: tableParams,
    success: { status: 200, description: 'The table' },
  };
  app.get<{ Params: { name: string } }>('/tables/:name', { schema: one }, async (req) => {
    const name = req.params.name;
    const table = await findTable(ctx.lake, name);
    if (!table) {
      const known = await tableNames(ctx.lake);
      throw new DipError(
        'not_found',
        `no table ${name} (tables: ${known.join(', ') || 'none'}); name it as zone.table, e.g. bronze.orders`,
      );
    }
    const [head, schema] = await Promise.all([headOf(table.headCommit), catalog.schemaAt(name)]);
    return { ...tableView(table, head, ctx.clock()), columns: schema?.schema.columns ?? [] };
  });
}
