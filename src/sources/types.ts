/**
 * The connector contract. A connector is its folder `sources/<type>/`: a spec (`spec.ts`, see
 * ../spec.ts: schema, example, declared tables) and an implementation (`index.ts`: capabilities,
 * factory, default export); an instance lists its streams and yields read units. Each unit is something the
 * engine can read (a file DuckDB opens, or a batch a source wrote to a local NDJSON file)
 * plus the state that becomes true once it is committed: a ledger entry, a cursor.
 * No I/O in factories; every long call takes an AbortSignal.
 */
import type { SharedBudgets } from '../catalog/budgets/types.js';
import type { z } from 'zod';
import type { LedgerEntry } from '../catalog/types.js';
import type { ConnectorSpec } from './spec.js';
import type { InputFormat, ReadUnit, StreamSpec } from '../lake/units.js';

// The unit types belong to the lake (it reads and commits them); connectors produce them.
export type { FileInput, InputFormat, ReadUnit, StreamSpec } from '../lake/units.js';

/** Durable state outside any stream (e.g. rotated OAuth refresh tokens), kept in the catalog. */
export interface StateStore {
  load(): Promise<unknown>;
  save(value: unknown): Promise<void>;
}

export interface PlanContext {
  pipeline: string;
  source: string;
  ledger: ReadonlyMap<string, LedgerEntry>;
  state: unknown;
  signal: AbortSignal;
  /** State of the source as a whole, shared by its streams. */
  sourceState: StateStore;
  /** Re-fetch only the requests an earlier run recorded as failed (`dip run --retry-failed`). */
  retryFailed: boolean;
  /** Local directory for files the source writes for its units. */
  stagingDir: string;
  /** The run reading the stream (raw envelopes a source writes itself carry it). */
  runId: string;
  /** Streaming sources (CDC): keep reading until interrupted instead of stopping once caught up. */
  follow: boolean;
  /**
   * A graceful stop (`dip run --follow` got SIGTERM/SIGINT): a streaming source ends its units at
   * the next transaction boundary, after handing over everything read so far, so the run ends at
   * a commit boundary and succeeds. Finite sources ignore it.
   */
  stop?: AbortSignal | undefined;
  /** Every stream of this source the run reads (streams that share one feed must run together). */
  streams: readonly string[];
}

export interface StreamPlan {
  /**
   * Units in commit order. A list when the inputs are known up front (files); an async
   * iterable when the source discovers them as it reads (API pages, database chunks): the
   * runner commits each before asking for the next, so state advances unit by unit.
   */
  units: readonly ReadUnit[] | AsyncIterable<ReadUnit>;
  /** Known totals, for progress; omitted when the source cannot tell in advance. */
  total?: { units: number; bytes: number } | undefined;
  /** Inputs seen but not read because the ledger says they are already in the lake. */
  skipped: number;
  /** Things the user should know that do not fail the stream (a glob that matched no files). */
  warnings?: string[] | undefined;
}

export interface SourceInstance {
  /**
   * Asks the source what it holds (tables matching a pattern, their keys and types) before
   * `streams()` is called; sources whose streams are all declared do not need it.
   */
  discover?(signal: AbortSignal): Promise<void>;
  streams(): StreamSpec[];
  plan(stream: StreamSpec, context: PlanContext): Promise<StreamPlan>;
  /**
   * Streams this one needs finished first (a child resource's parent). With
   * `streamConcurrency` > 1 the runner starts a stream once those are done.
   */
  dependsOn?(stream: StreamSpec): string[];
  /** How many of this source's streams may run at once (default 1: in order). */
  readonly streamConcurrency?: number;
  /** Counters the source kept for a stream (requests, retries, …), added to the run's stats. */
  metrics?(stream: StreamSpec): Record<string, number>;
  close(): Promise<void>;
}

export interface ConnectorCapabilities {
  incremental: boolean;
  /** Whether the connector needs the processed-file ledger. */
  fileLedger: boolean;
  formats?: InputFormat[];
}

export interface ConnectorContext {
  /** The project directory: relative paths in the config are relative to it. */
  baseDir: string;
  sourceName: string;
  /** Rate budgets shared with the deployment's other processes (API sources take their slots there too). */
  budgets?: SharedBudgets | undefined;
}

/**
 * A connector's implementation, the default export of `sources/<type>/index.ts`: its spec
 * (`./spec.ts`, what the rest of DIP knows without loading this), capabilities and factory.
 */
export interface Connector<Spec extends ConnectorSpec = ConnectorSpec> {
  spec: Spec;
  capabilities: ConnectorCapabilities;
  create(config: z.output<Spec['schema']>, context: ConnectorContext): SourceInstance;
}

export function defineConnector<Spec extends ConnectorSpec>(connector: Connector<Spec>): Connector<Spec> {
  return connector;
}
