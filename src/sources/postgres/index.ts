/**
 * PostgreSQL source: tables (by name or pattern) and queries, each a stream read in full
 * (COPY, parallel ctid ranges from one snapshot), incrementally (keyset on cursor and key) or
 * as a change stream (logical replication, pgoutput).
 */
import { availableParallelism } from 'node:os';
import type pg from 'pg';
import { postgresSpec } from './spec.js';
import { DatabaseSource } from '../database/source.js';
import { defineConnector, type SourceInstance } from '../types.js';
import { PgIntrospector } from './introspect.js';
import { CdcSession } from './cdc/session.js';
import { clientConfig, connect } from './connection.js';
import { fullUnits, incrementalUnits, type ExtractOptions } from './extract.js';

export const postgresConnector = defineConnector({
  spec: postgresSpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['csv'] },
  create(config, { sourceName, baseDir }): SourceInstance {
    let client: pg.ClientConfig | undefined;
    // Secrets are resolved (and TLS files read) when the database is first needed, not here.
    const connection = () => (client ??= clientConfig(config.connection, baseDir, sourceName));
    const extract = (): ExtractOptions => ({
      client: connection(),
      label: sourceName,
      parallel: config.extract.parallel ?? Math.max(1, Math.min(8, availableParallelism() - 1)),
    });
    return new DatabaseSource(config, sourceName, {
      async withIntrospector(fn) {
        const c = await connect(connection(), sourceName);
        try {
          return await fn(new PgIntrospector(c));
        } finally {
          await c.end().catch(() => undefined);
        }
      },
      full: (s, ctx) => fullUnits(s, ctx, extract()),
      incremental: (s, ctx) => incrementalUnits(s, ctx, extract()),
      changeFeed: (streams, ctx) =>
        new CdcSession({ config, client: connection(), label: sourceName, streams, pipeline: ctx.pipeline }),
    });
  },
});

export default postgresConnector;
