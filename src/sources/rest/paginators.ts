/**
 * Paginators: how the request for the next page follows from the current page. A page request
 * is plain data (URL override + query params), so the request a run would make next is also
 * the token a later run resumes from.
 */
import type { PaginatorConfig } from '../../config/rest.js';
import { DipError } from '../../core/errors.js';
import { compilePath } from './select.js';

export interface PageRequest {
  /** An absolute URL to request instead of the resource URL (next-URL and Link paginators). */
  url?: string | undefined;
  /** Query parameters the paginator sets, on top of the resource's. */
  params: Record<string, string>;
  /** Page number within the partition, from 1, for labels, guards and ordering. */
  page: number;
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

export function createPaginator(config: PaginatorConfig, where: string): Paginator {
  switch (config.type) {
    case 'single':
      return { first: () => ({ params: {}, page: 1 }), next: () => null };
    case 'offset': {
      const total = config.total_path ? compilePath(config.total_path) : undefined;
      const at = (r: PageRequest, k: number): PageRequest => {
        const offset = Number(r.params[config.offset_param]) + k * config.limit;
        return { params: { [config.offset_param]: String(offset), [config.limit_param]: String(config.limit) }, page: r.page + k };
      };
      const lastPage = (first: PageView) => {
        const t = total?.(first.body);
        return present(t) ? Math.max(1, Math.ceil((Number(t) - config.start) / config.limit)) : undefined;
      };
      const isLast = (r: PageRequest, p: PageView) => {
        if (p.records.length < config.limit) return true;
        const t = total?.(p.body);
        return present(t) && Number(r.params[config.offset_param]) + config.limit >= Number(t);
      };
      return {
        first: () => ({ params: { [config.offset_param]: String(config.start), [config.limit_param]: String(config.limit) }, page: 1 }),
        next: (r, p) => (isLast(r, p) ? null : at(r, 1)),
        addressable: { at, lastPage, isLast },
      };
    }
    case 'page_number': {
      const totalPages = config.total_pages_path ? compilePath(config.total_pages_path) : undefined;
      const totalRecords = config.total_path ? compilePath(config.total_path) : undefined;
      const size = config.page_size;
      if (totalRecords && !size) throw new DipError('config', `${where}: paginator page_number with total_path needs page_size`);
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
        if (p.records.length === 0 || (size !== undefined && p.records.length < size)) return true;
        const last = lastPage(p);
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
          if (hasMore && !truthy(hasMore(p.body))) return null;
          const c = cursor(p.body);
          if (!present(c) || p.records.length === 0) return null;
          return { params: { [config.param]: String(c) }, page: r.page + 1 };
        },
      };
    }
    case 'next_url': {
      const next = compilePath(config.next_path);
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const url = next(p.body);
          return typeof url === 'string' && url !== '' ? { url, params: {}, page: r.page + 1 } : null;
        },
      };
    }
    case 'link_header':
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          const url = linkRel(p.headers['link'], config.rel);
          return url ? { url, params: {}, page: r.page + 1 } : null;
        },
      };
    case 'has_more': {
      const hasMore = compilePath(config.has_more_path);
      return {
        first: () => ({ params: {}, page: 1 }),
        next: (r, p) => {
          if (!truthy(hasMore(p.body)) || p.records.length === 0) return null;
          const last = p.records[p.records.length - 1]?.[config.id_field];
          if (!present(last)) {
            throw new DipError('input', `${where}: has_more is true but the last record has no ${config.id_field} to continue from`);
          }
          return { params: { [config.param]: String(last) }, page: r.page + 1 };
        },
      };
    }
  }
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
