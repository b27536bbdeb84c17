/**
 * The SourceInstance every database connector is: streams resolved against the database in
 * `discover()`, each planned by its mode, CDC streams sharing one change feed. A dialect says
 * only how to reach its database and how to read each mode.
 */
import type { DatabaseSourceConfig } from '../../config/database.js';
import { DipError } from '../../core/errors.js';
import type { PlanContext, ReadUnit, SourceInstance, StreamPlan, StreamSpec } from '../types.js';
import { resolveStreams } from './resolve.js';
import { databaseStreamConcurrency, type DbIntrospector, type DbStream } from './types.js';

/** One change feed (a replication slot, a binlog connection) for all CDC streams of a source. */
export interface ChangeFeed {
  units(s: DbStream, ctx: PlanContext): AsyncIterable<ReadUnit>;
  close(): Promise<void>;
}

export interface DatabaseDialect {
  /** Runs `fn` with the database's introspector on a connection opened for it (and closed after). */
  withIntrospector<T>(fn: (db: DbIntrospector) => Promise<T>): Promise<T>;
  full(s: DbStream, ctx: PlanContext): AsyncIterable<ReadUnit>;
  incremental(s: DbStream, ctx: PlanContext): AsyncIterable<ReadUnit>;
  changeFeed(cdcStreams: DbStream[], ctx: PlanContext): ChangeFeed;
}

export class DatabaseSource implements SourceInstance {
  private dbStreams: DbStream[] | undefined;
  private feed: ChangeFeed | undefined;

  constructor(
    private readonly config: DatabaseSourceConfig,
    private readonly name: string,
    private readonly dialect: DatabaseDialect,
  ) {}

  async discover(): Promise<void> {
    this.dbStreams ??= await this.dialect.withIntrospector((db) => resolveStreams(this.config, this.name, db));
  }

  streams(): StreamSpec[] {
    if (!this.dbStreams) throw new DipError('internal', `${this.name}: streams() before discover()`);
    return this.dbStreams.map((s) => s.spec);
  }

  get streamConcurrency(): number {
    return databaseStreamConcurrency(this.dbStreams);
  }

  async plan(stream: StreamSpec, ctx: PlanContext): Promise<StreamPlan> {
    const s = this.dbStreams?.find((d) => d.spec.name === stream.name);
    if (!s) throw new DipError('internal', `${this.name}: no stream ${stream.name}`);
    if (s.missing) throw s.missing;
    switch (s.mode) {
      case 'full':
        return { units: this.dialect.full(s, ctx), skipped: 0 };
      case 'incremental':
        return { units: this.dialect.incremental(s, ctx), skipped: 0 };
      case 'cdc':
        this.feed ??= this.dialect.changeFeed(
          (this.dbStreams ?? []).filter((d) => d.mode === 'cdc' && !d.missing),
          ctx,
        );
        return { units: this.feed.units(s, ctx), skipped: 0 };
    }
  }

  async close(): Promise<void> {
    await this.feed?.close();
  }
}
