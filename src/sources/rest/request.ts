import { REDACTED } from '../../config/secrets.js';
import { DipError } from '../../core/errors.js';
import type { HttpRequest } from './http/types.js';
import type { PageRequest } from './paginators.js';
import type { Partition } from './partition.js';
import { fill, fillDeep } from './template.js';

/** Everything a resource's requests are built from, with source defaults already applied. */
export interface RequestTemplate {
  resource: string;
  baseUrl: string;
  path: string;
  method: 'GET' | 'POST';
  params: Record<string, string | number | boolean>;
  headers: Record<string, string>;
  body?: Record<string, unknown> | undefined;
}

/** The URL of a resource path: absolute paths and URLs as given, others under the base URL. */
export function resolveUrl(baseUrl: string, path: string): string {
  if (/^https?:\/\//i.test(path)) return path;
  return `${baseUrl.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** Builds the HTTP request for one page of one partition. */
export function buildRequest(t: RequestTemplate, partition: Partition, page: PageRequest): HttpRequest {
  const where = `resource ${t.resource}`;
  let url: URL;
  try {
    url = page.url
      ? new URL(page.url, t.baseUrl)
      : new URL(resolveUrl(t.baseUrl, fill(t.path, partition.vars, `${where} path`, true)));
  } catch (err) {
    throw new DipError('input', `${where}: cannot build a URL from ${page.url ?? t.path}: ${(err as Error).message}`);
  }
  if (!page.url) {
    // A next-page URL from the API already carries every parameter it needs.
    for (const [k, v] of Object.entries(t.params))
      url.searchParams.set(k, fill(String(v), partition.vars, `${where} params.${k}`));
    for (const [k, v] of Object.entries(partition.params)) url.searchParams.set(k, v);
  } else {
    // A next-page or resumed URL is stored and parsed redacted: put back the configured secret parameters it masks.
    for (const [k, v] of Object.entries(t.params))
      if (url.searchParams.get(k) === REDACTED)
        url.searchParams.set(k, fill(String(v), partition.vars, `${where} params.${k}`));
  }
  for (const [k, v] of Object.entries(page.params)) url.searchParams.set(k, v);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(t.headers))
    headers[k.toLowerCase()] = fill(v, partition.vars, `${where} headers.${k}`);
  let body: string | undefined;
  if (t.method === 'POST') {
    body = JSON.stringify(fillDeep(t.body ?? {}, partition.vars, `${where} body`));
    headers['content-type'] ??= 'application/json';
  }
  return { method: t.method, url: url.toString(), headers, body, resource: t.resource };
}
