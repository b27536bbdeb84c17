/**
 * The OpenAPI 3.1 document of the REST API, built from the routes as Fastify registers them
 * (an onRoute hook collects every route with its schema), so a new route is documented by
 * being registered.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { JsonSchema, RouteSchema } from './schemas.js';

export interface RouteRecord {
  method: string;
  url: string;
  schema: Partial<RouteSchema> | undefined;
}

export type OpenApiDocument = Record<string, unknown> & {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
};

/** Starts collecting routes; call before any route is registered. */
export function collectRoutes(app: FastifyInstance): RouteRecord[] {
  const routes: RouteRecord[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    // Gateway endpoints (dip serve --gateway) are declared in dip.yaml and authenticate themselves.
    if ((route.config as { gateway?: boolean } | undefined)?.gateway) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      // HEAD routes are Fastify's automatic twins of GET routes.
      if (method === 'HEAD') continue;
      // Not API operations (the console's static assets, serve/console-routes.ts).
      if ((route.schema as { hide?: boolean } | undefined)?.hide) continue;
      routes.push({ method, url: route.url, schema: route.schema as Partial<RouteSchema> | undefined });
    }
  });
  return routes;
}

const ERROR_RESPONSE = { $ref: '#/components/responses/Error' };

/**
 * bearer: a token is configured, so every route but `open` needs it; without one, reads declare
 * no security and writes an optional bearer.
 */
export function openApiDocument(
  routes: readonly RouteRecord[],
  options: { title: string; version: string; bearer: boolean; open: ReadonlySet<string> },
): OpenApiDocument {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const schema = route.schema ?? {};
    const operation: Record<string, unknown> = {
      operationId: operationId(route.method, route.url),
      summary: schema.summary ?? `${route.method} ${route.url}`,
      ...(schema.description ? { description: schema.description } : {}),
      ...(schema.tags ? { tags: schema.tags } : {}),
    };
    const parameters = [...parametersOf(schema.params, 'path'), ...parametersOf(schema.querystring, 'query')];
    if (parameters.length) operation['parameters'] = parameters;
    if (schema.body) {
      const required = Array.isArray(schema.body['required']) && schema.body['required'].length > 0;
      operation['requestBody'] = { required, content: { 'application/json': { schema: schema.body } } };
    }
    const success = schema.success ?? { status: 200, description: 'OK' };
    const content = {
      [success.contentType ?? 'application/json']: {
        schema: success.contentType?.startsWith('text/') ? { type: 'string' } : { type: 'object' },
      },
    };
    const responses: Record<string, unknown> = {
      [String(success.status)]: { description: success.description, content },
    };
    if (success.alternative)
      responses[String(success.alternative.status)] = { description: success.alternative.description, content };
    if (schema.body || schema.params || schema.querystring) responses['400'] = ERROR_RESPONSE;
    if (schema.params) responses['404'] = ERROR_RESPONSE;
    const guarded = options.bearer && !options.open.has(route.url);
    if (route.method === 'POST' || guarded) {
      responses['401'] = ERROR_RESPONSE;
      responses['403'] = ERROR_RESPONSE;
      // With a token configured every route but the open ones needs it; without one writes accept it but do not need it.
      operation['security'] = guarded ? [{ bearer: [] }] : [{ bearer: [] }, {}];
    }
    if (route.method === 'POST') {
      responses['409'] = ERROR_RESPONSE;
      responses['415'] = ERROR_RESPONSE;
    }
    responses['421'] = ERROR_RESPONSE;
    responses['500'] = ERROR_RESPONSE;
    operation['responses'] = responses;
    (paths[path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: options.title,
      version: options.version,
      description:
        'DIP: the scheduler, runs, pipelines and tables of one project. GET routes are read-only; POST routes change state and take application/json. With a token configured, every route but /health and /ready (and those serve.public opens) needs it.',
    },
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'serve.token of the project (e.g. ${env:DIP_API_TOKEN})',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          properties: {
            error: {
              type: 'object',
              properties: {
                kind: {
                  type: 'string',
                  description:
                    'not_found, input, config, conflict, unauthorized, forbidden, misdirected, unsupported_media_type, internal, …',
                },
                message: { type: 'string' },
              },
              required: ['kind', 'message'],
            },
          },
          required: ['error'],
        },
      },
      responses: {
        Error: {
          description: 'An error',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    },
  };
}

function parametersOf(schema: JsonSchema | undefined, where: 'path' | 'query'): Record<string, unknown>[] {
  const properties = schema?.['properties'];
  if (!properties || typeof properties !== 'object') return [];
  const required = new Set(Array.isArray(schema['required']) ? (schema['required'] as unknown[]).map(String) : []);
  return Object.entries(properties as Record<string, JsonSchema>).map(([name, prop]) => {
    const { description, ...rest } = prop;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

function operationId(method: string, url: string): string {
  const words = url
    .split('/')
    .filter(Boolean)
    .map((part) => (part.startsWith(':') ? `by_${part.slice(1)}` : part.replace(/[^A-Za-z0-9]+/g, '_')));
  return [method.toLowerCase(), ...words].join('_');
}
