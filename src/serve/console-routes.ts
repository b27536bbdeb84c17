/**
 * The web console: its static assets under /ui (open: they hold no data; the page asks for the
 * token and sends it as a bearer header like any client), and the routes it needs beyond the
 * others, all over src/ops: lineage, schema versions, sample rows at a commit, freshness
 * deadlines and the replay of a table's quarantined rows.
 */
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { DipError } from '../core/errors.js';
import { describeTable } from '../ops/describe.js';
import { projectLineage } from '../ops/lineage.js';
import { replayQuarantined } from '../ops/quarantine.js';
import { sampleRows, tableSlas } from '../ops/sample.js';
import type { ApiContext } from './context.js';
import { tableParams, type JsonSchema, type RouteSchema } from './schemas.js';

/** Console paths that need no token (the assets; every API call they make does). */
export const CONSOLE_PATHS = ['/ui', '/ui/', '/ui/*'] as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** dist/ui next to dist/serve (built by `npm run build`); from src/ (tsx), the built copy. */
function assetDirs(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', 'ui'), join(here, '..', '..', 'dist', 'ui')];
}

async function asset(path: string): Promise<Buffer | undefined> {
  const rel = normalize(path).replace(/^([/\\])+/, '');
  if (rel.startsWith('..') || rel.includes(`${sep}..`)) return undefined;
  for (const dir of assetDirs()) {
    try {
      return await readFile(join(dir, rel));
    } catch {
      // next candidate
    }
  }
  return undefined;
}

const replayBody: JsonSchema = {
  type: 'object',
  properties: {
    check: { type: 'string', minLength: 1, description: 'Only rows that failed this check' },
    where: { type: 'string', minLength: 1, description: 'SQL filter over the quarantined rows' },
  },
  additionalProperties: false,
};

const rowsQuery: JsonSchema = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 20 },
    commit: { type: 'integer', minimum: 1, description: 'Read the table as of this commit (time travel)' },
  },
  additionalProperties: false,
};

export function registerConsoleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { lake } = ctx;

  const page: RouteSchema & { hide: true } = {
    hide: true,
    summary: 'The web console (static assets; the page asks for the token)',
    tags: ['console'],
    success: { status: 200, description: 'HTML, JavaScript, CSS', contentType: 'text/html' },
  };
  const index = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const html = await asset('index.html');
    if (!html) throw new DipError('not_found', 'the console is not built (npm run build writes dist/ui/index.html)');
    return reply
      .type(TYPES['.html'] ?? 'text/html')
      .header('cache-control', 'no-store')
      .header(
        'content-security-policy',
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
      )
      .send(html);
  };
  app.get('/ui', { schema: page }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', { schema: page }, index);
  app.get<{ Params: { '*': string } }>('/ui/*', { schema: page }, async (req, reply) => {
    const path = req.params['*'];
    const body = path === '' ? undefined : await asset(path);
    if (!body) return index(req, reply);
    return reply.type(TYPES[extname(path)] ?? 'application/octet-stream').send(body);
  });

  const lineage: RouteSchema = {
    summary: 'Table lineage: sources → raw → bronze → silver (→ gold), with rows committed',
    tags: ['tables'],
    success: { status: 200, description: '{ nodes: [{ id, kind, pipeline, rows }], edges: [{ from, to }] }' },
  };
  app.get('/lineage', { schema: lineage }, async () => projectLineage(lake));

  const slas: RouteSchema = {
    summary: 'Freshness deadlines per table (pipelines.<name>.sla), in seconds',
    tags: ['tables'],
    success: { status: 200, description: '{ sla: { "zone.table": seconds } }' },
  };
  app.get('/tables/sla', { schema: slas }, async () => ({ sla: tableSlas(lake) }));

  const versions: RouteSchema = {
    summary: "A table's schema versions and recent commits (what dip describe shows)",
    tags: ['tables'],
    params: tableParams,
    success: { status: 200, description: '{ table, versions: [...], commits: [...] }' },
  };
  app.get<{ Params: { name: string } }>('/tables/:name/versions', { schema: versions }, async (req) => {
    const d = await describeTable(lake, req.params.name, { commits: 20 });
    return {
      table: d.table.name,
      versions: d.versions.map((v) => ({
        version: v.version,
        commit_id: v.commitId,
        columns: v.schema.columns,
      })),
      commits: d.commits.map((c) => ({
        id: c.id,
        run_id: c.runId,
        operation: c.operation,
        committed_at: c.committedAt.toISOString(),
      })),
    };
  });

  const rows: RouteSchema = {
    summary: 'Sample rows of a silver or gold table (PII masked as written), optionally as of a commit',
    tags: ['tables'],
    params: tableParams,
    querystring: rowsQuery,
    success: { status: 200, description: '{ columns, rows, commit }' },
  };
  app.get<{ Params: { name: string }; Querystring: { limit?: number; commit?: number } }>(
    '/tables/:name/rows',
    { schema: rows },
    async (req) => {
      const r = await sampleRows(lake, req.params.name, { limit: req.query.limit ?? 20, commit: req.query.commit });
      return JSON.parse(
        JSON.stringify(r, (_k, v: unknown) =>
          typeof v === 'bigint' ? v.toString() : v instanceof Date ? v.toISOString() : v,
        ),
      ) as unknown;
    },
  );

  const replay: RouteSchema = {
    summary: "Run a silver table's quarantined rows through its checks again (what dip quarantine replay does)",
    tags: ['tables'],
    params: tableParams,
    body: replayBody,
    success: {
      status: 200,
      description: '{ table, input_rows, rows, new_rows, quarantined, still_quarantined, commit_id }',
    },
  };
  app.post<{ Params: { name: string }; Body: { check?: string; where?: string } }>(
    '/tables/:name/quarantine/replay',
    { schema: replay },
    async (req) => {
      const r = await replayQuarantined(lake, req.params.name, {
        check: req.body.check,
        where: req.body.where,
        set: {},
      });
      return {
        table: r.table,
        input_rows: r.inputRows,
        rows: r.rows,
        new_rows: r.newRows,
        quarantined: r.quarantined,
        still_quarantined: r.stillQuarantined,
        commit_id: r.commit,
      };
    },
  );
}
