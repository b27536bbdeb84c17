/**
 * The gateway: the endpoints of every `type: gateway` source of a project, served by Fastify
 * (`dip gateway`; `registerGatewayRoutes` mounts them in any Fastify instance). Per request, in
 * order: 503 while shutting down; auth (401); 429 + Retry-After when the endpoint's log holds
 * more unlanded events than `max_backlog`; the body limit (413, Fastify refuses before reading
 * on); the body as a JSON object, a JSON array of objects or NDJSON (400 when unreadable); the
 * endpoint's JSON Schema (ajv): when any event fails it, those events go to the log marked with
 * their reason (the lander quarantines them) and the answer is 400, nothing else of the request
 * being kept; otherwise every event is appended with its id (an `event_id` field, else the
 * `Idempotency-Key`-style header, `#<index>` added within a batch) and the answer is 200 once
 * the log has them on disk. A redelivered id is answered 200 again and stored once.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { LoadedProject } from '../config/load.js';
import { ConfigError, errorMessage } from '../core/errors.js';
import type { AppendEvent, EventLog } from '../eventlog/types.js';
import { openEndpointLog } from '../sources/gateway/log.js';
import {
  endpointPath,
  type GatewayEndpointConfig,
  type GatewaySourceConfig,
  parseBytes,
  REJECTED_HEADER,
} from '../sources/gateway/spec.js';
import { buildVerifier, type Verifier } from './auth.js';

export interface GatewayEndpoint {
  pipeline: string;
  source: string;
  name: string;
  path: string;
  maxBody: number;
  maxBacklog: number;
  verify: Verifier;
  validate: ValidateFunction | undefined;
  eventId: string[] | undefined;
  idHeader: string;
  log: EventLog;
}

export interface Gateway {
  endpoints: GatewayEndpoint[];
  /** Requests answered per status, for tests and metrics. */
  counts: Record<string, number>;
  /** New requests get 503 from now on. */
  drain(): void;
  readonly draining: boolean;
  close(): Promise<void>;
}

/** Opens the log of every gateway endpoint of the project (for writing) and compiles its checks. */
export async function openGateway(project: LoadedProject): Promise<Gateway> {
  const endpoints: GatewayEndpoint[] = [];
  const ajv = new Ajv({ allErrors: false, strict: false });
  const seen = new Map<string, string>();
  try {
    for (const [pipeline, p] of Object.entries(project.config.pipelines)) {
      for (const [source, s] of Object.entries(p.sources)) {
        if (s.type !== 'gateway') continue;
        const config = s as GatewaySourceConfig;
        for (const [name, e] of Object.entries(config.endpoints)) {
          const where = `pipelines.${pipeline}.sources.${source}.endpoints.${name}`;
          const path = endpointPath(pipeline, source, name, e);
          const other = seen.get(path);
          if (other) throw new ConfigError(`${where}: path ${path} is already served by ${other}`);
          seen.set(path, where);
          const verify = buildVerifier(e.auth, where, project.dir);
          const validate = e.schema === undefined ? undefined : compileSchema(ajv, e, where, project.dir);
          const log = await openEndpointLog(config, {
            baseDir: project.dir,
            pipeline,
            source,
            endpoint: name,
            mode: 'writer',
          });
          endpoints.push({
            pipeline,
            source,
            name,
            path,
            maxBody: parseBytes(e.max_body),
            maxBacklog: config.max_backlog,
            verify,
            validate,
            eventId: e.event_id?.split('.'),
            idHeader: e.id_header.toLowerCase(),
            log,
          });
        }
      }
    }
  } catch (err) {
    await Promise.all(endpoints.map((e) => e.log.close()));
    throw err;
  }
  let draining = false;
  return {
    endpoints,
    counts: {},
    drain: () => {
      draining = true;
    },
    get draining() {
      return draining;
    },
    close: async () => {
      draining = true;
      await Promise.all(endpoints.map((e) => e.log.close()));
    },
  };
}

function compileSchema(ajv: Ajv, e: GatewayEndpointConfig, where: string, baseDir: string): ValidateFunction {
  let schema: unknown = e.schema;
  if (typeof e.schema === 'string') {
    const file = resolve(baseDir, e.schema);
    try {
      schema = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`${where}.schema: cannot read JSON Schema ${file}: ${errorMessage(err)}`);
    }
  }
  try {
    return ajv.compile(schema as object);
  } catch (err) {
    throw new ConfigError(`${where}.schema: not a valid JSON Schema: ${errorMessage(err)}`);
  }
}

/** Mounts the gateway's endpoints, in their own scope (their raw-body parser stays inside). */
export async function registerGatewayRoutes(app: FastifyInstance, gw: Gateway): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    scope.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      const message =
        status === 413
          ? 'request body is larger than the endpoint accepts'
          : status === 500
            ? 'internal error'
            : err.message;
      void send(gw, reply, status, { error: message });
    });
    for (const ep of gw.endpoints) {
      scope.post(ep.path, { bodyLimit: ep.maxBody, config: { gateway: true } }, (req, reply) =>
        handle(gw, ep, req, reply),
      );
    }
  });
}

function send(gw: Gateway, reply: FastifyReply, status: number, body: Record<string, unknown>): FastifyReply {
  gw.counts[status] = (gw.counts[status] ?? 0) + 1;
  return reply.code(status).send(body);
}

async function handle(
  gw: Gateway,
  ep: GatewayEndpoint,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  if (gw.draining) return send(gw, reply.header('connection', 'close'), 503, { error: 'shutting down; retry later' });
  const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const auth = ep.verify(req.headers, body, Date.now());
  if (!auth.ok) return send(gw, reply, 401, { error: auth.reason });
  if ((await ep.log.backlog()) >= ep.maxBacklog)
    return send(gw, reply.header('retry-after', '1'), 429, { error: 'too many events waiting to land; retry later' });
  const events_ = parseEvents(body, String(req.headers['content-type'] ?? ''));
  if (typeof events_ === 'string') return send(gw, reply, 400, { error: events_ });
  const { events: parsed, texts } = events_;
  const key = req.headers[ep.idHeader];
  const requestId = Array.isArray(key) ? key[0] : key;
  const ids = parsed.map((event, i) => eventId(ep, event, requestId, i, parsed.length));
  if (ep.validate) {
    const rejected: { index: number; reason: string }[] = [];
    const refused: AppendEvent[] = [];
    for (const [i, event] of parsed.entries()) {
      if (ep.validate(event)) continue;
      const reason = (ep.validate.errors ?? [])
        .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
        .join('; ');
      rejected.push({ index: i, reason });
      refused.push({ data: Buffer.from(texts[i] as string), id: ids[i], headers: { [REJECTED_HEADER]: reason } });
    }
    if (rejected.length) {
      await ep.log.append(refused);
      return send(gw, reply, 400, {
        error: `${rejected.length} of ${parsed.length} events do not match the endpoint's schema; none was accepted, the invalid ones are quarantined`,
        rejected,
      });
    }
  }
  const results = await ep.log.append(texts.map((text, i) => ({ data: Buffer.from(text), id: ids[i] })));
  const duplicates = results.filter((r) => r.duplicate).length;
  return send(gw, reply, 200, { accepted: results.length - duplicates, duplicates });
}

function eventId(
  ep: GatewayEndpoint,
  event: Record<string, unknown>,
  requestId: string | undefined,
  index: number,
  count: number,
): string | undefined {
  if (ep.eventId) {
    let v: unknown = event;
    for (const k of ep.eventId) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  if (requestId) return count === 1 ? requestId : `${requestId}#${index}`;
  return undefined;
}

/** The events of a body: a JSON object, an array of objects, or NDJSON; a string says why not. */
export interface ParsedEvents {
  events: Record<string, unknown>[];
  /** Each event as one line of JSON (the text received when it was one line already). */
  texts: string[];
}

export function parseEvents(body: Buffer, contentType: string): ParsedEvents | string {
  const text = body.toString('utf8');
  if (!text.trim()) return 'empty body; expected a JSON object, an array of objects or NDJSON';
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  const ndjson = /ndjson|jsonl|json-seq/i.test(contentType);
  if (!ndjson) {
    try {
      const v: unknown = JSON.parse(text);
      if (isObject(v)) return { events: [v], texts: [text.includes('\n') ? JSON.stringify(v) : text] };
      if (Array.isArray(v)) {
        const bad = v.findIndex((x) => !isObject(x));
        if (bad !== -1) return `element ${bad} of the array is not a JSON object`;
        return { events: v as Record<string, unknown>[], texts: v.map((x) => JSON.stringify(x)) };
      }
      return 'expected a JSON object, an array of objects or NDJSON';
    } catch {
      if (!text.includes('\n')) return 'body is not valid JSON';
    }
  }
  const out: Record<string, unknown>[] = [];
  const texts: string[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (!line.trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      return `line ${i + 1} is not valid JSON`;
    }
    if (!isObject(v)) return `line ${i + 1} is not a JSON object`;
    out.push(v);
    texts.push(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
  return out.length ? { events: out, texts } : 'empty body; expected a JSON object, an array of objects or NDJSON';
}

export interface GatewayServer {
  url: string;
  gateway: Gateway;
  app: FastifyInstance;
  /** 503 for new requests, waits for in-flight ones, closes the logs. */
  close(): Promise<void>;
}

/** Opens the gateway and listens (`dip gateway`). */
export async function startGateway(project: LoadedProject, o: { host: string; port: number }): Promise<GatewayServer> {
  const gateway = await openGateway(project);
  const app = Fastify({ logger: false, forceCloseConnections: false, return503OnClosing: true });
  try {
    await registerGatewayRoutes(app, gateway);
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await gateway.close();
    throw err;
  }
  const address = app.server.address();
  const url =
    address && typeof address === 'object'
      ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      : String(address);
  return {
    url,
    gateway,
    app,
    close: async () => {
      gateway.drain();
      await app.close();
      await gateway.close();
    },
  };
}
