/**
 * `type: gateway` sources: events pushed to DIP (webhooks, app events). `dip gateway` (or `dip
 * serve`) receives them on the endpoints declared here, checks auth, body and schema, and
 * appends them durably to the source's event log before answering 2xx; this connector (the
 * lander, `./index.ts`) drains each endpoint's log into raw and bronze, the log offset committed
 * with the data. The spec: config schema, example, declared tables.
 */
import { z } from 'zod';
import { duration, identifier } from '../../config/primitives.js';
import { defineConnectorSpec } from '../spec.js';

const BYTES = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)$/i;
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** A size: a number of bytes or a text such as 512kb, 1mib, 64mb. */
export const byteSize = z
  .union([z.number().int().positive(), z.string().regex(BYTES, 'expected a size such as 1048576, 512kb, 1mib or 64mb')])
  .describe('A size in bytes: a number, or a text such as 512kb, 1mib or 64mb');

export function parseBytes(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = BYTES.exec(value.trim()) as RegExpExecArray;
  return Math.round(Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number));
}

const secretList = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .describe('A secret or a list of them (all accepted: rotation); use ${env:NAME} or ${file:path} references');

export const gatewayAuthSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('none') }).describe('No authentication (loopback tests only)'),
    z
      .strictObject({
        type: z.literal('api_key'),
        header: z.string().default('x-api-key').describe('Header carrying the key (default x-api-key)'),
        keys: z
          .array(z.string().min(1))
          .min(1)
          .describe(
            'SHA-256 digests of the accepted keys, as sha256:<64 hex> (or ${env:…}/${file:…} references to them); several for rotation',
          ),
      })
      .describe('An API key in a header, compared by its SHA-256 digest'),
    z
      .strictObject({ type: z.literal('bearer'), tokens: secretList })
      .describe('Authorization: Bearer <token>; tokens as sha256:<64 hex> digests or secret references'),
    z
      .strictObject({ type: z.literal('github'), secret: secretList })
      .describe('GitHub style: X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body, hex>'),
    z
      .strictObject({
        type: z.literal('stripe'),
        secret: secretList,
        tolerance: duration.default('5m').describe('How old a signed timestamp may be (replays), default 5m'),
      })
      .describe('Stripe style: Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body", hex>'),
    z
      .strictObject({
        type: z.literal('hmac'),
        secret: secretList,
        header: z.string().min(1).describe('Header carrying the signature'),
        algorithm: z.enum(['sha1', 'sha256', 'sha512']).default('sha256'),
        encoding: z.enum(['hex', 'base64']).default('hex'),
        prefix: z.string().default('').describe('Text before the signature in the header, e.g. "sha256="'),
      })
      .describe('A generic HMAC of the body in a header'),
  ])
  .describe('How callers authenticate');

export const reconcileSchema = z
  .strictObject({
    source: identifier.describe('A REST source of the same pipeline whose resource lists the same objects'),
    resource: identifier.describe('The resource of that source (its auth, pagination and records are reused)'),
    id: z.string().min(1).default('id').describe('Dotted path of the object id in the listed records (default id)'),
    updated: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Dotted path of the update time in the listed records (e.g. updated_at): the window and lateness use it',
      ),
    callback_id: z
      .string()
      .min(1)
      .default('data.id')
      .describe('Dotted path of the object id in the callback events (default data.id)'),
    callback_updated: z
      .string()
      .min(1)
      .optional()
      .describe('Dotted path of the update time in the callback events (e.g. data.updated_at)'),
    fill_path: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/)
      .default('data')
      .describe('Where a fetched object goes in the event a reconcile lands (default data, as callbacks carry it)'),
    window: duration.default('1d').describe('How far back (by update time) a reconcile compares, default 1d'),
    max_miss_rate: z
      .number()
      .min(0)
      .max(1)
      .default(0.01)
      .describe('Share of missing or late objects past which a reconcile alerts (default 0.01)'),
  })
  .describe(
    'Reconciliation: compare the callbacks received with the API listing of the same objects, land what is missing',
  );

export const gatewayEndpointSchema = z
  .strictObject({
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9_\-./]*$/, 'expected a URL path such as /hooks/github')
      .optional()
      .describe('The URL path it is served on; default /ingest/<pipeline>/<source>/<endpoint>'),
    table: identifier.optional().describe('Destination table in each zone; defaults to the endpoint name'),
    auth: gatewayAuthSchema,
    event_id: z
      .string()
      .min(1)
      .optional()
      .describe('Dotted path of the field holding an event id (e.g. id, data.object.id): a redelivered id lands once'),
    id_header: z
      .string()
      .default('idempotency-key')
      .describe(
        'Header whose value identifies a request (default Idempotency-Key; e.g. X-GitHub-Delivery): a redelivered request lands once',
      ),
    schema: z
      .union([z.string().min(1), z.record(z.string(), z.unknown())])
      .optional()
      .describe(
        'JSON Schema every event must satisfy: a file (relative to the project) or inline; invalid → 400 and quarantine',
      ),
    max_body: byteSize.default('1mib').describe('Largest request body (413 beyond), default 1mib'),
    reconcile: reconcileSchema.optional(),
  })
  .describe('One endpoint: a URL path, its auth and checks, and the stream (table) it feeds');

export const gatewayLogSchema = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('embedded'),
      dir: z
        .string()
        .optional()
        .describe(
          'Directory of the logs (one per endpoint below it); default .dip/eventlog/<pipeline>/<source> in the project',
        ),
      segment_bytes: byteSize.default('64mib').describe('Segment size (default 64mib)'),
      retention: z
        .strictObject({
          max_bytes: byteSize.optional().describe('Keep each endpoint log below this size'),
          max_age: duration.optional().describe('Drop segments older than this'),
        })
        .default({ max_age: '7d' })
        .describe('Retention of landed events (default 7d); events not yet landed are always kept'),
    }),
    z.strictObject({
      type: z.literal('jetstream'),
      url: z
        .string()
        .min(1)
        .describe('NATS server URL, e.g. nats://127.0.0.1:4222; credentials in it as ${env:…}/${file:…} references'),
      stream: z
        .string()
        .regex(/^[A-Za-z0-9_-]+$/)
        .optional()
        .describe(
          'Prefix of the JetStream streams, one per endpoint (<prefix>_<endpoint>); default DIP_<pipeline>_<source>',
        ),
      duplicate_window: duration.default('2m').describe('How long a message id is remembered for dedup'),
    }),
  ])
  .describe('Where accepted events wait until they land');

export const gatewaySourceSchema = z
  .strictObject({
    type: z.literal('gateway'),
    log: gatewayLogSchema.default({ type: 'embedded', segment_bytes: '64mib', retention: { max_age: '7d' } }),
    max_backlog: z
      .number()
      .int()
      .positive()
      .default(1_000_000)
      .describe('Events accepted but not landed past which the endpoint answers 429 (default 1000000)'),
    batch: z
      .strictObject({
        max_events: z.number().int().positive().default(50_000).describe('Events per landed batch at most'),
        max_age: duration.default('1s').describe('How long a batch waits for more events (default 1s)'),
      })
      .default({ max_events: 50_000, max_age: '1s' })
      .describe('Micro-batches the lander commits'),
    endpoints: z
      .record(identifier, gatewayEndpointSchema)
      .refine((e) => Object.keys(e).length > 0, 'declare at least one endpoint')
      .describe('Endpoints, by name; each is a stream'),
  })
  .describe('Events pushed to DIP (webhooks, app events) through the gateway, landed from a durable log');

/** Header the gateway sets on an event refused by the endpoint's schema (its value: the reason). */
export const REJECTED_HEADER = 'dip-rejected';

/** The log endpoint where a reconcile puts the events it fills (the lander drains it into the same stream). */
export const fillLogName = (endpoint: string): string => `${endpoint}-reconcile`;

/** Field set (to "reconcile") on every event a reconcile lands; `dip_reconcile_id` names its report. (`_dip_` columns are the lake's own.) */
export const FILLED_FIELD = 'dip_filled_by';

export type GatewaySourceConfig = z.output<typeof gatewaySourceSchema>;
export type GatewayEndpointConfig = z.output<typeof gatewayEndpointSchema>;
export type GatewayAuthConfig = z.output<typeof gatewayAuthSchema>;

/** The URL path an endpoint is served on. */
export const endpointPath = (
  pipeline: string,
  source: string,
  name: string,
  e: { path?: string | undefined },
): string => e.path ?? `/ingest/${pipeline}/${source}/${name}`;

export const gatewaySpec = defineConnectorSpec({
  type: 'gateway',
  description: 'Events pushed to DIP (webhooks, app events) through the gateway, landed from a durable log',
  schema: gatewaySourceSchema,
  example: {
    type: 'gateway',
    endpoints: {
      github: { path: '/hooks/github', auth: { type: 'github', secret: '${env:GITHUB_WEBHOOK_SECRET}' } },
      pins: {
        auth: { type: 'api_key', keys: ['${env:PINS_KEY_SHA256}'] },
        event_id: 'id',
        schema: 'schemas/pin.json',
      },
    },
  },
  declared: (config) => ({
    tables: Object.entries(config.endpoints).map(([name, e]) => ({
      table: e.table ?? name,
      stream: name,
      path: ['endpoints', name],
    })),
    complete: true,
  }),
  readsDisjointSlices: () => false,
});
