/**
 * `type: rest` sources in dip.yaml: one API (base URL, auth, HTTP behaviour, shared defaults)
 * and its resources (endpoints), each a stream. The spec (schema, example, declared tables) that
 * config/schema.ts builds the source union from; the connector is `./index.ts`.
 */
import { z } from 'zod';
import { duration, identifier } from '../../config/primitives.js';
import { cutByInterval, defineConnectorSpec } from '../spec.js';

const templated = z
  .string()
  .describe('Text; {name} placeholders are filled in ({incremental.start}, {parent.id}, {window.start}, {page})');

export const restAuthSchema = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('api_key'),
      name: z.string().min(1).describe('Header, query parameter or cookie name, e.g. X-API-Key'),
      value: z.string().min(1).describe('The key; use ${env:NAME} or ${file:path}'),
      in: z.enum(['header', 'query', 'cookie']).default('header'),
    }),
    z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }),
    z.strictObject({ type: z.literal('basic'), username: z.string(), password: z.string() }),
    z.strictObject({
      type: z.literal('oauth2_client_credentials'),
      token_url: z.string().min(1).describe('Absolute, or relative to base_url'),
      client_id: z.string().min(1),
      client_secret: z.string().min(1),
      scope: z.string().optional(),
      audience: z.string().optional(),
      /** Where the client credentials go: HTTP basic header (RFC 6749 default) or the form body. */
      client_auth: z.enum(['basic', 'body']).default('body'),
      refresh_before: duration.default('60s').describe('Renew the token this long before it expires'),
      extra_params: z.record(z.string(), z.string()).optional(),
    }),
    z.strictObject({
      type: z.literal('oauth2_refresh_token'),
      token_url: z.string().min(1),
      client_id: z.string().min(1),
      client_secret: z.string().optional(),
      refresh_token: z
        .string()
        .min(1)
        .describe(
          'Initial refresh token; rotated tokens are kept in the catalog state, encrypted (AES-256-GCM) with state_key',
        ),
      client_auth: z.enum(['basic', 'body']).default('body'),
      refresh_before: duration.default('60s'),
      extra_params: z.record(z.string(), z.string()).optional(),
      state_key: z
        .string()
        .min(1)
        .optional()
        .describe(
          'Key that encrypts the rotated refresh token in the catalog, by reference (e.g. ${env:DIP_STATE_KEY}); default: a random key kept in .dip/state-key (0600)',
        ),
    }),
    z.strictObject({
      type: z.literal('headers'),
      headers: z
        .record(z.string(), z.string())
        .describe('Header templates, e.g. {Authorization: "Token token={secret}"}'),
      secrets: z
        .record(z.string(), z.string())
        .default({})
        .describe('Values for the {name} placeholders of the header templates'),
    }),
  ])
  .describe('How requests authenticate');

const budgetSchema = z.strictObject({
  requests: z.number().int().min(1),
  per: duration.describe('Window length, e.g. 1s or 1m'),
});

const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).max(100).default(6).describe('Attempts per request, the first included'),
  initial_delay: duration.default('500ms'),
  max_delay: duration.default('60s'),
  multiplier: z.number().min(1).default(2),
  jitter: z.boolean().default(true),
});

const responseActionSchema = z.enum(['retry', 'ignore', 'fail']);

export const httpSettingsSchema = z
  .strictObject({
    timeout: duration.default('30s').describe('Per-attempt timeout'),
    retry: retrySchema.default({ attempts: 6, initial_delay: '500ms', max_delay: '60s', multiplier: 2, jitter: true }),
    concurrency: z
      .strictObject({
        max: z.number().int().min(1).max(256).default(8).describe('Ceiling of requests in flight for this API'),
        initial: z.number().int().min(1).optional(),
      })
      .default({ max: 8 }),
    rate_limit: budgetSchema.optional().describe('Client-side budget for the whole host'),
    response_actions: z
      .record(
        z.string().regex(/^([1-5]\d\d|[1-5]xx)$/, 'expected a status such as 404 or a class such as 5xx'),
        responseActionSchema,
      )
      .default({})
      .describe('Per-status actions, e.g. {"404": ignore, "5xx": retry}; 429, 5xx and network errors retry by default'),
  })
  .describe('HTTP behaviour: timeouts, retries, concurrency and rate limits');

const jsonPath = z.string().min(1).describe('JSONPath into the response body, e.g. $.data or $.meta.next_cursor');

export const paginatorSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('single') }),
    z.strictObject({
      type: z.literal('offset'),
      limit: z.number().int().min(1),
      offset_param: z.string().default('offset'),
      limit_param: z.string().default('limit'),
      start: z.number().int().min(0).default(0),
      total_path: jsonPath.optional().describe('Where the total record count is; enables parallel page fetching'),
    }),
    z.strictObject({
      type: z.literal('page_number'),
      page_param: z.string().default('page'),
      start: z.number().int().min(0).default(1),
      page_size: z.number().int().min(1).optional(),
      size_param: z.string().optional(),
      total_pages_path: jsonPath.optional(),
      total_path: jsonPath.optional().describe('Total record count (with page_size) instead of total_pages_path'),
    }),
    z.strictObject({
      type: z.literal('cursor'),
      cursor_path: jsonPath.describe('Where the next cursor is, e.g. $.meta.after_cursor'),
      param: z.string().describe('Query parameter that carries the cursor'),
      has_more_path: jsonPath.optional().describe('A boolean that says whether more pages exist'),
    }),
    z.strictObject({
      type: z.literal('next_url'),
      next_path: jsonPath.describe('Where the next page URL is, e.g. $.links.next'),
    }),
    z.strictObject({ type: z.literal('link_header'), rel: z.string().default('next') }),
    z.strictObject({
      type: z.literal('has_more'),
      has_more_path: jsonPath.default('$.has_more'),
      param: z.string().default('starting_after'),
      id_field: z.string().default('id').describe('Field of the last record whose value requests the next page'),
    }),
  ])
  .describe('How to walk pages');

export const incrementalSchema = z
  .strictObject({
    cursor_field: z.string().min(1).describe('Record field that grows with new/changed records, e.g. updated_at'),
    param: z.string().optional().describe('Query parameter that receives the start value'),
    start: z.union([z.string(), z.number()]).optional().describe('Start value for the first run'),
    end_param: z.string().optional().describe('Query parameter that receives the run start time (upper bound)'),
    lookback: z
      .union([duration, z.number()])
      .optional()
      .describe(
        'Re-read this much before the last value (late writes); a duration for times, a number for numeric cursors',
      ),
    direction: z.enum(['max', 'min']).default('max'),
  })
  .describe('Incremental loading by a cursor field of the records');

export const windowSchema = z
  .strictObject({
    start_param: z.string(),
    end_param: z.string(),
    from: z.string().describe('First window start (ISO date/time)'),
    to: z.string().default('now').describe('Last window end (ISO date/time or now)'),
    step: duration.describe('Window length'),
    format: z.enum(['iso', 'date', 'unix', 'unix_ms']).default('iso'),
  })
  .describe('Time windows: the range is requested in chunks; state records the last finished window');

const formatSchema = z.enum(['json', 'ndjson', 'csv']);

const resourceFields = {
  path: templated.optional().describe('Path under base_url (or absolute URL); defaults to /<resource name>'),
  method: z.enum(['GET', 'POST']).optional(),
  params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  body: z.record(z.string(), z.unknown()).optional().describe('JSON body for POST; strings are templates'),
  records: jsonPath
    .optional()
    .describe(
      'JSONPath to the records; default: the body if it is a list, else the first list in it. A non-empty response where it matches nothing fails the stream',
    ),
  allow_empty: z
    .boolean()
    .optional()
    .describe(
      'Whether a 2xx response with an empty body is a page without records (default false: an empty body fails the stream; 204 No Content is always empty)',
    ),
  format: formatSchema.optional(),
  paginator: paginatorSchema.optional(),
  primary_key: z.array(z.string().min(1)).optional(),
  write_disposition: z.enum(['append', 'replace', 'merge']).optional(),
  deleted_column: z.string().optional(),
  schema_contract: z.enum(['evolve', 'freeze']).optional(),
  incremental: incrementalSchema.optional(),
  window: windowSchema.optional(),
  rate_limit: budgetSchema.optional().describe('Client-side budget for this resource (on top of the host budget)'),
  max_pages: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('Stop after this many pages per partition (fails the stream when more remain)'),
  max_time: duration.optional().describe('Fail the stream when pagination runs longer than this'),
  batch_records: z.number().int().min(1).optional().describe('Records per commit (default 20000)'),
  response_actions: z.record(z.string(), responseActionSchema).optional(),
};

export const resourceDefaultsSchema = z
  .strictObject(resourceFields)
  .partial()
  .describe('Defaults every resource inherits');

export const restResourceSchema = z
  .strictObject({
    ...resourceFields,
    table: identifier.optional().describe('Destination table; defaults to the resource name'),
    parent: z
      .strictObject({
        resource: identifier.describe('The parent resource; its records fill {parent.<field>} in path/params'),
        fields: z
          .record(z.string(), z.string())
          .default({})
          .describe('Parent fields copied into child records: {child_column: parent_field}'),
      })
      .optional(),
  })
  .describe('One endpoint, read into one stream');

export const restSourceSchema = z
  .strictObject({
    type: z.literal('rest'),
    base_url: z.string().url(),
    headers: z.record(z.string(), z.string()).default({}),
    params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    auth: restAuthSchema.optional(),
    http: httpSettingsSchema.default({
      timeout: '30s',
      retry: { attempts: 6, initial_delay: '500ms', max_delay: '60s', multiplier: 2, jitter: true },
      concurrency: { max: 8 },
      response_actions: {},
    }),
    raw_headers: z
      .array(z.string())
      .default(['content-type', 'date', 'etag', 'x-request-id', 'x-ratelimit-remaining'])
      .describe('Response headers kept in raw envelopes'),
    defaults: resourceDefaultsSchema.default({}),
    resources: z.record(identifier, restResourceSchema).describe('Endpoints, by name; each is a stream'),
  })
  .describe('Reads a REST API declared by configuration: auth, pagination, rate limits, incremental');

export const restSpec = defineConnectorSpec({
  type: 'rest',
  description: 'REST APIs declared by configuration: auth, pagination, rate limits, incremental, parent/child',
  schema: restSourceSchema,
  example: {
    type: 'rest',
    base_url: 'https://api.example.com/v1',
    auth: { type: 'bearer', token: '${env:API_TOKEN}' },
    resources: {
      posts: {
        path: '/posts',
        records: '$.data[*]',
        primary_key: ['id'],
        paginator: { type: 'cursor', cursor_path: '$.next', param: 'cursor' },
      },
    },
  },
  declared: (config) => ({
    tables: Object.entries(config.resources).map(([name, r]) => ({
      table: r.table ?? name,
      stream: name,
      path: ['resources', name, ...(r.table ? ['table'] : [])],
    })),
    complete: true,
  }),
  readsDisjointSlices(config) {
    const resources = Object.values(config.resources);
    return (
      resources.length > 0 &&
      resources.every((r) => r.incremental === undefined && r.window === undefined && cutByInterval(r))
    );
  },
});

export type RestAuthConfig = z.infer<typeof restAuthSchema>;
export type HttpSettings = z.infer<typeof httpSettingsSchema>;
export type PaginatorConfig = z.infer<typeof paginatorSchema>;
export type IncrementalConfig = z.infer<typeof incrementalSchema>;
export type WindowConfig = z.infer<typeof windowSchema>;
export type RestResourceConfig = z.infer<typeof restResourceSchema>;
export type RestSourceConfig = z.infer<typeof restSourceSchema>;
