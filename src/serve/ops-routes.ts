/**
 * Read routes over src/ops/, the operations `dip quality`, `dip quarantine list` and `dip state`
 * run: the same figures as the CLI's --json, as snake_case JSON. Data routes: with a token
 * configured every one of them needs it (security.ts).
 */
import type { FastifyInstance } from 'fastify';
import { qualityReports } from '../ops/quality.js';
import { listQuarantine } from '../ops/quarantine.js';
import { streamStates } from '../ops/state.js';
import { servedPipeline, type ApiContext } from './context.js';
import {
  pipelineParams,
  qualityQuery,
  quarantineQuery,
  stateQuery,
  tableParams,
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
}
