/**
 * PostgreSQL source: tables (by name or pattern) and queries, each a stream read in full
 * (COPY, parallel ctid ranges from one snapshot), incrementally (keyset on cursor and key) or
 * as a change stream (logical replication, pgoutput).
 */
import { availableParallelism } from 'node:os';
import type pg from 'pg';
import { postgresSourceSchema, type PostgresSourceConfig } from '../../config/database.js';
import { DipError } from '../../core/errors.js';
import { resolveStreams } from '../database/resolve.js';
import { databaseStreamConcurrency, type DbStream } from '../database/types.js';
import { defineConnector, type PlanContext, type SourceInstance, type StreamPlan, type StreamSpec } from '../types.js';
import { PgCatalog } from './catalog.js';
import { CdcSession } from './cdc/session.js';
import { clientConfig, connect } from './connection.js';
import { fullUnits, incrementalUnits, type ExtractOptions } from './extract.js';

export const postgresConnector = defineConnector({
  name: 'postgres',
  description: 'PostgreSQL tables and queries: COPY full extracts, incremental by cursor, CDC by logical replication',
  spec: postgresSourceSchema,
  capabilities: { incremental: true, fileLedger: false, formats: ['csv'] },
  create(config, context): SourceInstance {
    return new PostgresSource(config, context.sourceName, context.baseDir);
  },
});

class PostgresSource implements SourceInstance {
  private dbStreams: DbStream[] | undefined;
  private client: pg.ClientConfig | undefined;
  private cdc: CdcSession | undefined;

  constructor(
    private readonly config: PostgresSourceConfig,
    private readonly name: string,
    private readonly baseDir: string,
  ) {}

  private connection(): pg.ClientConfig {
    return (this.client ??= clientConfig(this.config.connection, this.baseDir, this.name));
  }

  async discover(): Promise<void> {
    if (this.dbStreams) return;
    const client = await connect(this.connection(), this.name);
    try {
      this.dbStreams = await resolveStreams(this.config, this.name, new PgCatalog(client));
    } finally {
      await client.end().catch(() => undefined);
    }
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
    const options: ExtractOptions = { client: this.connection(), label: this.name, parallel: this.config.extract.parallel ?? Math.max(1, Math.min(8, availableParallelism() - 1)) };
    switch (s.mode) {
      case 'full':
        return { units: fullUnits(s, ctx, options), skipped: 0 };
      case 'incremental':
        return { units: incrementalUnits(s, ctx, options), skipped: 0 };
      case 'cdc': {
        this.cdc ??= new CdcSession({
          config: this.config,
          client: this.connection(),
          label: this.name,
          streams: (this.dbStreams ?? []).filter((d) => d.mode === 'cdc'),
          pipeline: ctx.pipeline,
        });
        return { units: this.cdc.units(s, ctx), skipped: 0 };
      }
    }
  }

  async close(): Promise<void> {
    await this.cdc?.close();
  }
}
