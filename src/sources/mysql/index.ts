/**
 * MySQL and MariaDB source: tables (by name or pattern) and queries, each a stream read in full
 * (keyset chunks over the primary key from one consistent snapshot), incrementally (keyset on
 * cursor and key) or as a change stream (the row-based binlog, cdc/session.ts). Rows are
 * streamed with mysql2 and written as typed CSV.
 */
import type { ConnectionOptions } from 'mysql2';
import { mysqlSourceSchema, type MysqlSourceConfig } from '../../config/database.js';
import { DipError } from '../../core/errors.js';
import { resolveStreams } from '../database/resolve.js';
import { databaseStreamConcurrency, type DbStream } from '../database/types.js';
import { defineConnector, type PlanContext, type SourceInstance, type StreamPlan, type StreamSpec } from '../types.js';
import { MysqlCatalog } from './catalog.js';
import { MysqlCdcSession } from './cdc/session.js';
import { connect, connectionOptions } from './connection.js';
import { fullUnits, incrementalUnits, type ExtractOptions } from './extract.js';

export const mysqlConnector = defineConnector({
  name: 'mysql',
  description: 'MySQL and MariaDB tables and queries: streamed full extracts in primary-key chunks, incremental by cursor, CDC from the binlog',
  spec: mysqlSourceSchema,
  capabilities: { incremental: true, fileLedger: false, formats: ['csv'] },
  create(config, context): SourceInstance {
    return new MysqlSource(config, context.sourceName, context.baseDir);
  },
});

class MysqlSource implements SourceInstance {
  private dbStreams: DbStream[] | undefined;
  private options: ConnectionOptions | undefined;
  private cdc: MysqlCdcSession | undefined;

  constructor(
    private readonly config: MysqlSourceConfig,
    private readonly name: string,
    private readonly baseDir: string,
  ) {}

  private connection(): ConnectionOptions {
    return (this.options ??= connectionOptions(this.config.connection, this.baseDir, this.name));
  }

  async discover(): Promise<void> {
    if (this.dbStreams) return;
    const conn = await connect(this.connection(), this.name);
    try {
      this.dbStreams = await resolveStreams(this.config, this.name, new MysqlCatalog(conn));
    } finally {
      await conn.end();
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
    const options: ExtractOptions = { connection: this.connection(), label: this.name };
    switch (s.mode) {
      case 'full':
        return { units: fullUnits(s, ctx, options), skipped: 0 };
      case 'incremental':
        return { units: incrementalUnits(s, ctx, options), skipped: 0 };
      case 'cdc': {
        this.cdc ??= new MysqlCdcSession({
          config: this.config,
          connection: this.connection(),
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
