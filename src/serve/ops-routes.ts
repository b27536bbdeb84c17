/**
 * Routes over src/ops/, the operations `dip quality`, `dip quarantine list`, `dip state` and
 * `dip compact` run: the same figures as the CLI's --json, as snake_case JSON. Data routes: with a token
 * configured every one of them needs it (security.ts).
 */
import type { FastifyInstance } from 'fastify';
import { compactTables } from '../ops/compact.js';
import { qualityReports } from '../ops/quality.js';
import { listQuarantine } from '../ops/quarantine.js';
import { reconcile, reconcileReports } from '../ops/reconcile.js';
import { streamStates } from '../ops/state.js';
import { servedPipeline, type ApiContext } from './context.js';
import {
  compactBody,
  pipelineParams,
  qualityQuery,
  quarantineQuery,
  stateQuery,
  tableParams,
  type CompactBody,
  type QuarantineQueryString,
  type RouteSchema,
} from './schemas.js';
import { qualityReportView, streamStateView } from './views.js';

export function registerOpsRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { lake } = ctx;

  const quality: RouteSchema = {
    summary: 'Data quality reports of a silver table (silver.posts or posts), newest first',
    tags: ['tables'],
    params: tableParams,
    querystring: qualityQuery,
    success: { status: 200, description: '{ table, reports: [...] }' },
  };
  app.get<{ Params: { name: string }; Querystring: { runs?: number } }>(
    '/tables/:name/quality',
    { schema: quality },
    async (req) => {
      const reports = await qualityReports(lake, req.params.name, { runs: req.query.runs ?? 1 });
      return { table: reports[0]?.table ?? req.params.name, reports: reports.map(qualityReportView) };
    },
  );

  const quarantine: RouteSchema = {
    summary:
      'Quarantined rows per table and check (silver checks; bronze: unparseable records); with ?table=, the rows themselves with check and reason',
    tags: ['tables'],
    querystring: quarantineQuery,
    success: { status: 200, description: '{ summary: [{ table, check, rows }], rows: [...] }' },
  };
  app.get<{ Querystring: QuarantineQueryString }>('/quarantine', { schema: quarantine }, async (req) =>
    listQuarantine(lake, { table: req.query.table, check: req.query.check, limit: req.query.limit ?? 20 }),
  );

  const state: RouteSchema = {
    summary: "A pipeline's saved stream states (incremental cursors, CDC positions, API partitions)",
    tags: ['pipelines'],
    params: pipelineParams,
    querystring: stateQuery,
    success: { status: 200, description: '{ pipeline, streams: [{ source, stream, value, commit_id }] }' },
  };
  app.get<{ Params: { name: string }; Querystring: { stream?: string[] } }>(
    '/pipelines/:name/state',
    { schema: state },
    async (req) => {
      const name = req.params.name;
      servedPipeline(lake, name); // its 404 names no project file path
      const states = await streamStates(lake, name, req.query.stream);
      return { pipeline: name, streams: states.map(streamStateView) };
    },
  );

  const compact: RouteSchema = {
    summary:
      'Compact a table in one commit: a silver table merged on read gets its upsert and delete files folded into a new base; other Parquet tables have their small files rewritten as one',
    tags: ['tables'],
    params: tableParams,
    body: compactBody,
    success: {
      status: 200,
      description:
        '{ table, input_files, rows, commit_id } (commit_id null on a dry run or when nothing was compacted)',
    },
  };
  app.post<{ Params: { name: string }; Body: CompactBody | undefined }>(
    '/tables/:name/compact',
    { schema: compact },
    async (req) => {
      const [r] = await compactTables(lake, [req.params.name], {
        smallFileBytes: req.body?.small_file_bytes ?? 64 * 1024 * 1024,
        dryRun: req.body?.dry_run ?? false,
      });
      return {
        table: req.params.name,
        input_files: r?.inputFiles ?? 0,
        rows: r?.rows ?? 0,
        commit_id: r?.commit?.id ?? null,
      };
    },
  );

  const reconcileQuery = {
    type: 'object',
    additionalProperties: false,
    properties: { stream: { type: 'string', description: 'One gateway stream (default: all with reconcile)' } },
  };
  const reports: RouteSchema = {
    summary: 'Reconcile reports of callback streams (expected, received, missing, late, filled), newest first',
    tags: ['pipelines'],
    params: pipelineParams,
    querystring: reconcileQuery,
    success: { status: 200, description: '{ pipeline, reports: [...] }' },
  };
  app.get<{ Params: { name: string }; Querystring: { stream?: string } }>(
    '/pipelines/:name/reconcile',
    { schema: reports },
    async (req) => {
      servedPipeline(lake, req.params.name);
      return { pipeline: req.params.name, reports: await reconcileReports(lake, req.params.name, req.query.stream) };
    },
  );
  const run: RouteSchema = {
    summary:
      'Reconcile callback streams now: compare with the API listing, fill what is missing (landed by the next run), record and return the reports',
    tags: ['pipelines'],
    params: pipelineParams,
    body: {
      type: 'object',
      additionalProperties: false,
      properties: {
        stream: { type: 'string' },
        window: { type: 'string', description: 'Duration back from `to`, e.g. 1d' },
        from: { type: 'string', description: 'ISO 8601 window start' },
        to: { type: 'string', description: 'ISO 8601 window end (default now)' },
      },
    },
    success: { status: 200, description: '{ pipeline, reports: [...] }' },
  };
  app.post<{
    Params: { name: string };
    Body: { stream?: string; window?: string; from?: string; to?: string } | undefined;
  }>('/pipelines/:name/reconcile', { schema: run }, async (req) => {
    servedPipeline(lake, req.params.name);
    const b = req.body ?? {};
    const done = await reconcile(lake, req.params.name, b.stream, { window: b.window, from: b.from, to: b.to });
    return { pipeline: req.params.name, reports: done };
  });
}
