/**
 * JSON schemas of the REST API's parameters and bodies: Fastify validates requests with them
 * (unknown body properties are refused, not dropped) and the OpenAPI document is built from
 * them, so what is checked and what is documented cannot drift apart.
 */
import type { FastifySchema } from 'fastify';
import { TERMINAL_RUN } from '../catalog/orchestration-types.js';

export type JsonSchema = Record<string, unknown>;

/** What a success looks like, for the OpenAPI document (Fastify ignores these keys). */
export interface SuccessDoc {
  status: number;
  description: string;
  /** Default application/json. */
  contentType?: string;
  /** Another success status (e.g. 200 for a dry run). */
  alternative?: { status: number; description: string };
}

/** A route's schema: Fastify validates body/params/querystring; summary, tags and success document it. */
export interface RouteSchema extends FastifySchema {
  summary: string;
  description?: string;
  tags: string[];
  success: SuccessDoc;
  body?: JsonSchema;
  params?: JsonSchema;
  querystring?: JsonSchema;
}

const RUN_STATUSES = ['queued', 'running', ...TERMINAL_RUN] as const;

const instant: JsonSchema = {
  type: 'string',
  minLength: 10,
  description: 'ISO date (read as UTC midnight) or date-time, e.g. 2026-03-01 or 2026-03-01T02:00:00Z',
};

export const pipelineParams: JsonSchema = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, description: 'Pipeline name' } },
  required: ['name'],
};

export const runParams: JsonSchema = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, description: 'Run id' } },
  required: ['id'],
};

export const taskLogParams: JsonSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, description: 'Run id' },
    task: { type: 'string', minLength: 1, description: 'Task name, e.g. ingest.shop' },
  },
  required: ['id', 'task'],
};

export const tableParams: JsonSchema = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, description: 'Table as zone.table, e.g. bronze.orders' } },
  required: ['name'],
};

export const runsQuery: JsonSchema = {
  type: 'object',
  properties: {
    pipeline: { type: 'string', minLength: 1, description: 'Runs of this pipeline only' },
    status: { type: 'string', enum: [...RUN_STATUSES], description: 'Runs in this status only' },
    backfill_id: { type: 'string', minLength: 1, description: 'Runs of one backfill only' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50, description: 'How many, newest first' },
  },
  additionalProperties: false,
};

export const qualityQuery: JsonSchema = {
  type: 'object',
  properties: {
    runs: { type: 'integer', minimum: 1, maximum: 1000, default: 1, description: 'How many reports, newest first' },
  },
  additionalProperties: false,
};

export const quarantineQuery: JsonSchema = {
  type: 'object',
  properties: {
    table: {
      type: 'string',
      minLength: 1,
      description: 'A silver table (posts or silver.posts): its quarantined rows too, not only the counts',
    },
    check: { type: 'string', minLength: 1, description: 'Only rows that failed this check' },
    limit: { type: 'integer', minimum: 1, maximum: 10000, default: 20, description: 'Rows to return with a table' },
  },
  additionalProperties: false,
};

export const stateQuery: JsonSchema = {
  type: 'object',
  properties: {
    stream: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'Only these streams (repeat the parameter for several)',
    },
  },
  additionalProperties: false,
};

export interface QuarantineQueryString {
  table?: string;
  check?: string;
  limit?: number;
}

export const logQuery: JsonSchema = {
  type: 'object',
  properties: { attempt: { type: 'integer', minimum: 1, description: 'Which attempt (default: the latest)' } },
  additionalProperties: false,
};

export const triggerBody: JsonSchema = {
  type: 'object',
  properties: {
    interval_start: {
      ...instant,
      description: `Start of the data interval the run covers; with interval_end. ${String(instant['description'])}`,
    },
    interval_end: { ...instant, description: 'End of the data interval (exclusive); with interval_start' },
  },
  additionalProperties: false,
};

export const backfillBody: JsonSchema = {
  type: 'object',
  properties: {
    from: { ...instant, description: 'First interval starts at or after this' },
    to: { ...instant, description: 'Last interval ends at or before this (exclusive)' },
    parallel: { type: 'integer', minimum: 1, maximum: 1000, default: 1, description: 'Runs of this backfill at once' },
    dry_run: { type: 'boolean', default: false, description: 'List the intervals and create nothing' },
    batch: { type: 'integer', minimum: 1, default: 1, description: 'One run per this many consecutive intervals' },
    every: {
      type: 'string',
      pattern: '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)$',
      description: 'Cut intervals of this length (e.g. 1h) instead of the pipeline schedule',
    },
    rerun: {
      type: 'boolean',
      default: false,
      description: 'Also run intervals that already have a queued, running or succeeded run',
    },
  },
  required: ['from', 'to'],
  additionalProperties: false,
};

export const rerunBody: JsonSchema = {
  type: 'object',
  properties: {
    all: { type: 'boolean', default: false, description: 'Run every task again, not only those that did not succeed' },
  },
  additionalProperties: false,
};

export interface TriggerBody {
  interval_start?: string;
  interval_end?: string;
}

export interface BackfillBody {
  from: string;
  to: string;
  parallel?: number;
  dry_run?: boolean;
  batch?: number;
  every?: string;
  rerun?: boolean;
}

export const compactBody: JsonSchema = {
  type: 'object',
  properties: {
    small_file_bytes: {
      type: 'integer',
      minimum: 1,
      default: 64 * 1024 * 1024,
      description: 'Files below this many bytes are packed together (tables not merged on read)',
    },
    dry_run: { type: 'boolean', default: false, description: 'Only report what would be compacted' },
  },
  additionalProperties: false,
};

export interface CompactBody {
  small_file_bytes?: number;
  dry_run?: boolean;
}

export interface RerunBody {
  all?: boolean;
}

export interface RunsQuery {
  pipeline?: string;
  status?: (typeof RUN_STATUSES)[number];
  backfill_id?: string;
  limit?: number;
}
