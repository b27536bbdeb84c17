/**
 * Walks the pages of one partition: requests, parses, selects records, follows the
 * paginator (in parallel when pages are addressable) and guards against loops.
 */
import { createHash } from 'node:crypto';
import { DipError } from '../../core/errors.js';
import type { HttpResponse } from './http/types.js';
import type { Selection } from './select.js';
import type { PageRequest, PageView, Paginator } from './paginators.js';
import type { Partition } from './partition.js';
import { buildRequest, type RequestTemplate } from './request.js';
import { redactHeader, redactPayload } from './http/redact.js';

export type ResponseFormat = 'json' | 'ndjson' | 'csv';

export interface Page {
  partition: Partition;
  request: PageRequest;
  /** The URL requested, secrets redacted. */
  url: string;
  status: number;
  headers: Record<string, string>;
  /** Body as text, one line (JSON bodies), or undefined when the response was ignored. */
  text: string | undefined;
  /** Parsed body (JSON/NDJSON), for envelopes and paginators. */
  body: unknown;
  records: Record<string, unknown>[];
  /** DuckDB JSON path of the records in the body (for replay), when it is a plain path. */
  recordsPath: string | undefined;
  /** The request after this page, or null when the partition is done. */
  next: PageRequest | null;
  receivedAt: string;
  attempts: number;
}

export interface PageSender {
  send(request: ReturnType<typeof buildRequest>, signal: AbortSignal): Promise<HttpResponse | null>;
}

export interface PageReaderOptions {
  template: RequestTemplate;
  paginator: Paginator;
  format: ResponseFormat;
  select: (body: unknown) => Selection;
  sender: PageSender;
  redact: (text: string) => string;
  keepHeaders: readonly string[];
  /** Pages fetched ahead when pages are addressable. */
  parallel: number;
  maxPages: number | undefined;
  maxTimeMs: number | undefined;
  /** A 2xx response with an empty body is a page without records (else an error). */
  allowEmpty: boolean;
  where: string;
}

export async function* readPartition(
  o: PageReaderOptions,
  partition: Partition,
  signal: AbortSignal,
): AsyncGenerator<Page> {
  const started = Date.now();
  const seenRequests = new Set<string>();
  let lastBodyHash: string | undefined;
  const request: PageRequest = partition.resume ?? o.paginator.first();
  const guard = (r: PageRequest, page: Page) => {
    if (o.maxPages !== undefined && r.page > o.maxPages) {
      throw new DipError(
        'input',
        `${o.where}: more than max_pages=${o.maxPages} pages (next: ${page.url}); raise max_pages or narrow the request`,
      );
    }
    if (o.maxTimeMs !== undefined && Date.now() - started > o.maxTimeMs) {
      throw new DipError(
        'input',
        `${o.where}: pagination ran longer than max_time (${o.maxTimeMs} ms) at page ${r.page} (${page.url})`,
      );
    }
  };
  const signatureOf = (r: PageRequest) => JSON.stringify([r.url ?? '', r.params]);
  seenRequests.add(signatureOf(request));
  const local = new AbortController();
  const linked = AbortSignal.any([signal, local.signal]);
  let pending: Promise<Page> | undefined = fetchPage(o, partition, request, linked);
  try {
    while (pending) {
      const page: Page = await pending;
      pending = undefined;
      // An API that serves the same non-empty page again, or a paginator that hands back a
      // request it made before, would loop forever: stop with the evidence instead.
      const hash = page.text && page.records.length ? createHash('sha1').update(page.text).digest('hex') : undefined;
      if (hash && hash === lastBodyHash) {
        throw new DipError(
          'input',
          `${o.where}: pagination loop: page ${page.request.page} (${page.url}) has exactly the same content as the page before`,
        );
      }
      lastBodyHash = hash;
      if (o.paginator.addressable && o.parallel > 1 && page.next) {
        yield page;
        yield* readAhead(o, partition, page.request, page, signal, guard);
        return;
      }
      const next = page.next;
      if (next) {
        guard(next, page);
        const signature = signatureOf(next);
        if (seenRequests.has(signature)) {
          throw new DipError(
            'input',
            `${o.where}: pagination loop: after page ${page.request.page} (${page.url}) the API pointed back to a page already read (${next.url ?? JSON.stringify(next.params)}); it returned the same cursor/next link again`,
          );
        }
        seenRequests.add(signature);
        // Requested before this page is handed on: the round trip overlaps the work on this one.
        pending = fetchPage(o, partition, next, linked);
        pending.catch(() => undefined);
      }
      yield page;
    }
  } finally {
    local.abort();
  }
}

/**
 * Addressable pages (offset, page number) fetched `parallel` at a time and yielded in order.
 * With a known total every page is requested once; without, pages are requested ahead and
 * the walk ends at the first short page (later pages in flight are discarded).
 */
async function* readAhead(
  o: PageReaderOptions,
  partition: Partition,
  first: PageRequest,
  firstPage: Page,
  signal: AbortSignal,
  guard: (r: PageRequest, page: Page) => void,
): AsyncGenerator<Page> {
  const addressable = o.paginator.addressable as NonNullable<Paginator['addressable']>;
  const view: PageView = { body: firstPage.body, headers: firstPage.headers, records: firstPage.records };
  const last = addressable.lastPage(view);
  const remaining = last === undefined ? Infinity : last - first.page;
  const local = new AbortController();
  const linked = AbortSignal.any([signal, local.signal]);
  const inFlight: Promise<Page>[] = [];
  let k = 1;
  const launch = () => {
    const r = addressable.at(first, k++);
    guard(r, firstPage);
    const p = fetchPage(o, partition, r, linked);
    p.catch(() => undefined); // observed when its turn comes; never an unhandled rejection
    inFlight.push(p);
  };
  try {
    while (k <= remaining && inFlight.length < o.parallel) launch();
    while (inFlight.length) {
      const page = await (inFlight.shift() as Promise<Page>);
      yield page;
      if (page.next === null) return; // a short or last page ends the listing
      if (k <= remaining) launch();
    }
  } finally {
    local.abort();
  }
}

async function fetchPage(
  o: PageReaderOptions,
  partition: Partition,
  request: PageRequest,
  signal: AbortSignal,
): Promise<Page> {
  const http = buildRequest(o.template, partition, request);
  const response = await o.sender.send(http, signal);
  const url = o.redact(http.url);
  const receivedAt = new Date().toISOString();
  if (!response) {
    // The response action said ignore: the partition has no records and ends here.
    return {
      partition,
      request,
      url,
      status: 0,
      headers: {},
      text: undefined,
      body: null,
      records: [],
      recordsPath: undefined,
      next: null,
      receivedAt,
      attempts: 1,
    };
  }
  const headers: Record<string, string> = {};
  for (const h of o.keepHeaders) {
    const v = response.headers[h];
    if (v !== undefined) headers[h] = redactHeader(h, v, o.redact);
  }
  const rawBody = response.body.toString('utf8');
  if (rawBody.trim() === '' && response.status !== 204 && !o.allowEmpty) {
    // An empty body is as often a proxy, a maintenance page or an expired session as it is
    // "nothing here": the stream must say it can happen.
    throw new DipError(
      'input',
      `${o.where}: ${url} answered ${response.status} with an empty body; if this endpoint can answer empty when it has no records, set allow_empty: true on the resource`,
    );
  }
  // Secrets the API echoes (next links carrying the api key…) never reach the raw zone or records.
  const raw = redactPayload(rawBody, o.format, o.redact);
  let body: unknown;
  let records: Record<string, unknown>[];
  let recordsPath: string | undefined;
  let text: string;
  if (o.format === 'csv') {
    text = raw;
    body = raw;
    records = [];
  } else if (o.format === 'ndjson') {
    text = raw;
    records = raw
      .split('\n')
      .flatMap((line, i) =>
        line.trim() ? [parseJson(line, `${o.where}: ${url} line ${i + 1}`) as Record<string, unknown>] : [],
      );
    body = records;
  } else {
    body = raw.trim() === '' ? null : parseJson(raw, `${o.where}: ${url}`);
    // One line per envelope; raw line breaks in JSON can only be whitespace between tokens.
    text = raw.includes('\n') || raw.includes('\r') ? raw.replace(/[\r\n]+/g, ' ') : raw;
    ({ records, path: recordsPath } = o.select(body));
  }
  const view: PageView = { body, headers: response.headers, records };
  const next = o.format === 'csv' && raw.trim().split('\n').length <= 1 ? null : o.paginator.next(request, view);
  return {
    partition,
    request,
    url,
    status: response.status,
    headers,
    text,
    body,
    records,
    recordsPath,
    next,
    receivedAt,
    attempts: response.attempts,
  };
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DipError(
      'input',
      `${where}: response is not valid JSON (${(err as Error).message}): ${text.slice(0, 200)}`,
    );
  }
}
