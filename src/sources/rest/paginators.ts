/**
 * Paginators: how the request for the next page follows from the current page. A page request
 * is plain data (URL override + query params), so the request a run would make next is also
 * the token a later run resumes from.
 */
import type { PaginatorConfig } from '../../config/rest.js';
import { DipError } from '../../core/errors.js';
import { compilePath, keysPresent } from './select.js';

export interface PageRequest {
  /** An absolute URL to request instead of the resource URL (next-URL and Link paginators). */
  url?: string | undefined;
  /** Query parameters the paginator sets, on top of the resource's. */
  params: Record<string, string>;
  /** Page number within the partition, from 1, for labels, guards and ordering. */
  page: number;
  /** Records the partition's earlier pages held (a total in the response is compared with it). */
  seen?: number | undefined;
}

export interface PageView {
  body: unknown;
  headers: Record<string, string>;
  records: readonly Record<string, unknown>[];
}

export interface Paginator {
  first(): PageRequest;
  /** The request after `page`, or null when the listing is done. */
  next(request: PageRequest, page: PageView): PageRequest | null;
  /**
   * Addressable pages (offset, page number): the request `k` pages after `request`, so pages
   * can be fetched in parallel. `lastPage` tells from the first page how many pages there are
   * (undefined when the API gives no total: pages are then fetched speculatively until a short one).
   */
  addressable?: {
    at(request: PageRequest, k: number): PageRequest;
    lastPage(first: PageView): number | undefined;
    /** Whether this page ends the listing (short or empty). */
    isLast(request: PageRequest, page: PageView): boolean;
  };
}

const truthy = (v: unknown) => v === true || v === 'true' || v === 1;
const present = (v: unknown): v is string | number => (typeof v === 'string' && v !== '') || typeof v === 'number';
const seenAfter = (r: PageRequest, p: PageView) => (r.seen ?? 0) + p.records.length;

/** Flags APIs use to say another page exists (Stripe, Zendesk, GraphQL pageInfo, …). */
const MORE_FLAGS = new Set([
  'has_more',
  'hasmore',
  'has_next',
  'hasnext',
  'has_next_page',
  'hasnextpage',
  'more_available',
  'moreavailable',
]);
/** Record totals (DRF `count`, GitHub search `total_count`, …). */
const TOTALS = new Set([
  'total',
  'total_count',
  'totalcount',
  'count',
  'total_results',
  'totalresults',
  'total_records',
  'totalrecords',
  'total_items',
  'totalitems',
]);
/** Objects that hold paging metadata: a total there counts records (elsewhere it may be a sum). */
const PAGING = new Set([
  'meta',
  'paging',
  'pagination',
  'page_info',
  'pageinfo',
  'response_metadata',
  'metadata',
  'info',
  'links',
  '_links',
  'page',
]);
const isCount = (v: unknown) =>
  (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^\d+$/.test(v));
/** Where APIs put the next page's cursor or URL. */
const NEXT_KEYS = new Set([
  'next',
  'next_url',
  'nexturl',
  'next_link',
  'nextlink',
  'next_page_url',
  'nextpageurl',
  'next_cursor',
  'nextcursor',
  'after_cursor',
  'endcursor',
  'next_page_token',
  'nextpagetoken',
  'next_token',
  'nexttoken',
]);

/**
 * What in a page says the listing goes on: a "more" flag that is true, a record total larger
 * than the records read so far, a non-empty next cursor or link somewhere, a Link header with
 * rel="next", an X-Total-Count beyond what was read. Only the envelope is searched (not the
 * records), two levels deep. Values are not shown (next links may carry tokens).
 */
export function moreSignals(page: PageView, seen: number): string[] {
  const out: string[] = [];
  const walk = (value: unknown, at: string, depth: number, parent = '') => {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || depth > 2) return;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const key = k.toLowerCase();
      const path = `${at}.${k}`;
      if (MORE_FLAGS.has(key) && truthy(v)) out.push(`${path} is ${JSON.stringify(v)}`);
      else if (TOTALS.has(key) && (depth === 1 || PAGING.has(parent)) && isCount(v) && Number(v) > seen)
        out.push(`${path} is ${Number(v)} and ${seen} records were read`);
      else if (NEXT_KEYS.has(key) && present(v)) out.push(`${path} holds a next cursor/link`);
      else walk(v, path, depth + 1, key);
    }
  };
  walk(page.body, '$', 1);
  if (linkRel(page.headers['link'], 'next')) out.push('the Link header has rel="next"');
  const total = page.headers['x-total-count'] ?? page.headers['x-total'];
  if (total !== undefined && /^\d+$/.test(total) && Number(total) > seen)
    out.push(`X-Total-Count is ${total} and ${seen} records were read`);
  return out;
}

export function createPaginator(config: PaginatorConfig, where: string): Paginator {
  switch (config.type) {
    case 'single':
      return { first: () => ({ params: {}, page: 1 }), next: () => null };
    case 'offset': {
      const total = config.total_path ? compilePath(config.total_path) : undefined;
      const at = (r: PageRequest, k: number): PageRequest => {
        const offset = Number(r.params[config.offset_param]) + k * config.limit;
        return {
          params: { [config.offset_param]: String(offset), [config.limit_param]: String(config.limit) },
          page: r.page + k,
        };
      };
      const lastPage = (first: PageView) => {
        const t = total?.(first.body);
        return present(t) ? Math.max(1, Math.ceil((Number(t) - config.start) / config.limit)) : undefined;
      };
      const isLast = (r: PageRequest, p: PageView) => {
        const t = total?.(p.body);
        if (total && t === undefined && p.records.length > 0)
          noMatch(where, 'total_path', config.total_path as string, p, 'the total record count');
        const offset = Number(r.params[config.offset_param]);
        if (p.records.length < config.limit) {
          // A short page ends the listing, unless the total says more: the API capped the page size.
          if (present(t) && p.records.length > 0 && offset + p.records.length < Number(t)) {
            throw new DipError(
              'input',
              `${where}: page at ${config.offset_param}=${offset} returned ${p.records.length} records, fewer than limit ${config.limit}, but ${config.total_path} says ${Number(t)} in all: the API caps the page size; set paginator.limit to ${p.records.length}`,
            );
          }
          return true;
        }
        return present(t) && offset + config.limit >= Number(t);
      };
      return {
        first: () => ({
          params: { [config.offset_param]: String(config.start), [config.limit_param]: String(config.limit) },
          page: 1,
        }),
        next: (r, p) => (isLast(r, p) ? null : at(r, 1)),
        addressable: { at, lastPage, isLast },
      };
    }
    case 'page_number': {
      const totalPages = config.total_pages_path ? compilePath(config.total_pages_path) : undefined;
      const totalRecords = config.total_path ? compilePath(config.total_path) : undefined;
      const size = config.page_size;
      if (totalRecords && !size)
        throw new DipError('config', `${where}: paginator page_number with total_path needs page_size`);
      const sizeParams = size && config.size_param ? { [config.size_param]: String(size) } : {};
      const at = (r: PageRequest, k: number): PageRequest => ({
        params: { ...sizeParams, [config.page_param]: String(Number(r.params[config.page_param]) + k) },
        page: r.page + k,
      });
      const lastPage = (first: PageView) => {
        const pages = totalPages?.(first.body);
        if (present(pages)) return Math.max(1, Number(pages) - config.start + 1);
        const records = totalRecords?.(first.body);
        return present(records) && size ? Math.max(1, Math.ceil(Number(records) / size)) : undefined;
      };
      const isLast = (r: PageRequest, p: PageView) => {
        if (p.records.length > 0) {
          if (totalPages && totalPages(p.body) === undefined)
            noMatch(where, 'total_pages_path', config.total_pages_path as string, p, 'the number of pages');
          if (totalRecords && totalRecords(p.body) === undefined)
            noMatch(where, 'total_path', config.total_path as string, p, 'the total record count');
        }
        const last = lastPage(p);
        if (p.records.length === 0) return true;
        if (size !== undefined && p.records.length < size) {
          if (last !== undefined && r.page < last) {
            throw new DipError(
              'input',
              `${where}: page ${config.page_param}=${r.params[config.page_param]} returned ${p.records.length} records, fewer than page_size ${size}, but the response says there are ${last} pages: the API caps the page size; set paginator.page_size to ${p.records.length}`,
            );
          }
          return true;
        }
        return last !== undefined && r.page >= last;
      };
      return {
        first: () => ({ params: { ...sizeParams, [config.page_param]: String(config.start) }, page: 1 }),
        next: (r, p) => (isLast(r, p) ? null : at(r, 1)),
        addressable: { at, lastPage, isLast },
      };
    }
    case 'cursor': {
      const cursor = compilePath(config.cursor_path);
      const hasMore = config.has_more_path ? compilePath(config.has_more_path) : undefined;
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const seen = seenAfter(r, p);
          if (hasMore) {
            const more = hasMore(p.body);
            if (more === undefined && p.records.length > 0)
              noMatch(
                where,
                'has_more_path',
                config.has_more_path as string,
                p,
                'the flag that says whether more pages exist',
              );
            if (!truthy(more)) return null;
          }
          const c = cursor(p.body);
          if (!present(c)) {
            // The API says more, yet the cursor path finds nothing: a wrong path, never the end.
            if (hasMore) noMatch(where, 'cursor_path', config.cursor_path, p, `${config.has_more_path} is true`);
            if (c === undefined && p.records.length > 0)
              stopUnlessDone(where, 'cursor_path', config.cursor_path, p, seen);
            return null;
          }
          if (p.records.length === 0) return null;
          return { params: { [config.param]: String(c) }, page: r.page + 1, seen };
        },
      };
    }
    case 'next_url': {
      const next = compilePath(config.next_path);
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const url = next(p.body);
          const seen = seenAfter(r, p);
          if (typeof url === 'string' && url !== '') return { url, params: {}, page: r.page + 1, seen };
          if (url === undefined && p.records.length > 0) stopUnlessDone(where, 'next_path', config.next_path, p, seen);
          return null;
        },
      };
    }
    case 'link_header':
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const url = linkRel(p.headers['link'], config.rel);
          const seen = seenAfter(r, p);
          if (url) return { url, params: {}, page: r.page + 1, seen };
          if (p.records.length > 0) {
            const signals = moreSignals(p, seen).filter(
              (x) => config.rel !== 'next' || !x.startsWith('the Link header'),
            );
            if (signals.length) {
              const rels = linkRels(p.headers['link']);
              throw new DipError(
                'input',
                `${where}: the response says there are more pages (${signals.join('; ')}) but the Link header has no rel="${config.rel}" (rels present: ${rels.length ? rels.join(', ') : 'no Link header'}); fix paginator.rel`,
              );
            }
          }
          return null;
        },
      };
    case 'has_more': {
      const hasMore = compilePath(config.has_more_path);
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const more = hasMore(p.body);
          if (more === undefined && p.records.length > 0)
            noMatch(where, 'has_more_path', config.has_more_path, p, 'the flag that says whether more pages exist');
          if (!truthy(more) || p.records.length === 0) return null;
          const last = p.records[p.records.length - 1]?.[config.id_field];
          if (!present(last)) {
            throw new DipError(
              'input',
              `${where}: has_more is true but the last record has no ${config.id_field} to continue from`,
            );
          }
          return { params: { [config.param]: String(last) }, page: r.page + 1, seen: seenAfter(r, p) };
        },
      };
    }
  }
}

/** A configured path that matched nothing where the API must have put something. */
function noMatch(where: string, field: string, path: string, page: PageView, why: string): never {
  throw new DipError(
    'input',
    `${where}: paginator.${field} ${path} matches nothing in the response (${why}); ${keysPresent(page.body, path)}`,
  );
}

/** The continuation path found nothing: the end of the listing, unless the page says there is more. */
function stopUnlessDone(where: string, field: string, path: string, page: PageView, seen: number): void {
  const signals = moreSignals(page, seen);
  if (signals.length === 0) return;
  throw new DipError(
    'input',
    `${where}: the response says there are more pages (${signals.join('; ')}) but paginator.${field} ${path} matches nothing; ${keysPresent(page.body, path)}`,
  );
}

/** Every rel named in a Link header. */
function linkRels(header: string | undefined): string[] {
  if (!header) return [];
  return header.split(/,(?=\s*<)/).flatMap((part) => /rel\s*=\s*"?([^";]+)"?/i.exec(part)?.[1]?.split(/\s+/) ?? []);
}

/** The URL of `rel` in an RFC 8288 Link header (GitHub style). */
export function linkRel(header: string | undefined, rel: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = /<([^>]*)>(.*)/.exec(part.trim());
    if (!m) continue;
    const rels = /rel\s*=\s*"?([^";]+)"?/i.exec(m[2] ?? '')?.[1]?.split(/\s+/) ?? [];
    if (rels.includes(rel)) return m[1];
  }
  return undefined;
}
