/**
 * A resource with the source's defaults applied and checked: what the connector needs to
 * plan its partitions and build its requests.
 */
import type {
  IncrementalConfig,
  PaginatorConfig,
  RestResourceConfig,
  RestSourceConfig,
  WindowConfig,
} from '../../config/rest.js';
import { DipError } from '../../core/errors.js';
import { durationMs } from '../../core/time.js';
import type { StreamSpec } from '../types.js';
import { placeholders } from './template.js';

export interface ResolvedResource {
  name: string;
  spec: StreamSpec;
  path: string;
  method: 'GET' | 'POST';
  params: Record<string, string | number | boolean>;
  headers: Record<string, string>;
  body: Record<string, unknown> | undefined;
  records: string | undefined;
  allowEmpty: boolean;
  format: 'json' | 'ndjson' | 'csv';
  paginator: PaginatorConfig;
  incremental: IncrementalConfig | undefined;
  window: WindowConfig | undefined;
  parent: { resource: string; fields: Record<string, string>; uses: string[] } | undefined;
  maxPages: number | undefined;
  maxTimeMs: number | undefined;
  batchRecords: number;
  /** Whether batch_records was left to its default: units may then close early to keep the lake busy (stream.ts). */
  batchRecordsDefault: boolean;
  rateLimit: { requests: number; perMs: number } | undefined;
  responseActions: Record<string, 'retry' | 'ignore' | 'fail'>;
}

const DEFAULT_BATCH = 20_000;

export function resolveResources(config: RestSourceConfig, source: string): ResolvedResource[] {
  const resolved = Object.entries(config.resources).map(([name, r]) => resolveOne(config, name, r, source));
  const byName = new Map(resolved.map((r) => [r.name, r]));
  for (const r of resolved) {
    if (!r.parent) continue;
    if (!byName.has(r.parent.resource)) {
      throw new DipError(
        'config',
        `source ${source}, resource ${r.name}: parent ${r.parent.resource} is not a resource of this source (have: ${[...byName.keys()].join(', ')})`,
      );
    }
  }
  // Parents first, so a child reads the parent records its run just fetched.
  const ordered: ResolvedResource[] = [];
  const visiting = new Set<string>();
  const visit = (r: ResolvedResource) => {
    if (ordered.includes(r)) return;
    if (visiting.has(r.name))
      throw new DipError(
        'config',
        `source ${source}: resources ${[...visiting].join(' → ')} → ${r.name} form a parent cycle`,
      );
    visiting.add(r.name);
    if (r.parent) visit(byName.get(r.parent.resource) as ResolvedResource);
    visiting.delete(r.name);
    ordered.push(r);
  };
  for (const r of resolved) visit(r);
  return ordered;
}

function resolveOne(config: RestSourceConfig, name: string, own: RestResourceConfig, source: string): ResolvedResource {
  const d = config.defaults;
  const where = `source ${source}, resource ${name}`;
  const pick = <K extends keyof typeof d>(k: K) => (own[k as keyof RestResourceConfig] ?? d[k]) as (typeof d)[K];
  const primaryKey = pick('primary_key') ?? [];
  // With a key, a second run of the same listing updates rows instead of adding them again.
  const writeDisposition = pick('write_disposition') ?? (primaryKey.length > 0 ? 'merge' : 'append');
  const incremental = pick('incremental');
  const format = pick('format') ?? 'json';
  const paginator = pick('paginator') ?? { type: 'single' as const };
  const path = own.path ?? `/${name}`;
  const params = { ...config.params, ...d.params, ...own.params };
  const headers = { ...config.headers, ...d.headers, ...own.headers };
  if (writeDisposition === 'merge' && primaryKey.length === 0) {
    throw new DipError('config', `${where}: write_disposition merge needs primary_key`);
  }
  if (incremental?.lookback !== undefined && writeDisposition === 'append') {
    throw new DipError(
      'config',
      `${where}: incremental.lookback re-reads records already loaded; use write_disposition: merge with a primary_key (append would duplicate them)`,
    );
  }
  if (
    format === 'csv' &&
    (incremental || own.parent || !['single', 'link_header', 'next_url'].includes(paginator.type))
  ) {
    throw new DipError(
      'config',
      `${where}: CSV responses support paginators single and link_header, without incremental or parent (records are read by DuckDB, not here)`,
    );
  }
  const templates = [
    path,
    ...Object.values(params).map(String),
    ...Object.values(headers),
    JSON.stringify(own.body ?? d.body ?? {}),
  ];
  const uses = [
    ...new Set(
      templates
        .flatMap(placeholders)
        .filter((p) => p.startsWith('parent.'))
        .map((p) => p.slice('parent.'.length)),
    ),
  ];
  if (own.parent && uses.length === 0 && Object.keys(own.parent.fields).length === 0) {
    throw new DipError(
      'config',
      `${where}: a child resource must use its parent, e.g. path: /posts/{parent.id}/comments`,
    );
  }
  if (!own.parent && uses.length) {
    throw new DipError('config', `${where}: uses {parent.${uses[0]}} but declares no parent`);
  }
  const duration = (text: string | undefined, field: string) =>
    text === undefined ? undefined : durationMs(text, `${where}: ${field}`);
  const rate = pick('rate_limit');
  return {
    name,
    spec: {
      name,
      table: own.table ?? name,
      writeDisposition,
      primaryKey,
      deletedColumn: pick('deleted_column'),
      schemaContract: pick('schema_contract') ?? 'evolve',
    },
    path,
    method: pick('method') ?? 'GET',
    params,
    headers,
    body: own.body ?? d.body,
    records: pick('records'),
    allowEmpty: pick('allow_empty') ?? false,
    format,
    paginator,
    incremental,
    window: pick('window'),
    parent: own.parent ? { resource: own.parent.resource, fields: own.parent.fields, uses } : undefined,
    maxPages: pick('max_pages'),
    maxTimeMs: duration(pick('max_time'), 'max_time'),
    batchRecords: pick('batch_records') ?? DEFAULT_BATCH,
    batchRecordsDefault: pick('batch_records') === undefined,
    rateLimit: rate ? { requests: rate.requests, perMs: durationMs(rate.per, `${where}: rate_limit.per`) } : undefined,
    responseActions: { ...config.http.response_actions, ...d.response_actions, ...own.response_actions },
  };
}
