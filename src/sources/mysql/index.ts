/**
 * MySQL and MariaDB source: tables (by name or pattern) and queries, each a stream read in full
 * (keyset chunks over the primary key from one consistent snapshot), incrementally (keyset on
 * cursor and key) or as a change stream (the row-based binlog, cdc/session.ts). Rows are
 * streamed with mysql2 and written as typed CSV.
 */
import type { ConnectionOptions } from 'mysql2';
import { mysqlSpec } from './spec.js';
import { DatabaseSource } from '../database/source.js';
import { defineConnector, type SourceInstance } from '../types.js';
import { MysqlIntrospector } from './introspect.js';
import { MysqlCdcSession } from './cdc/session.js';
import { connect, connectionOptions } from './connection.js';
import { fullUnits, incrementalUnits } from './extract.js';

export const mysqlConnector = defineConnector({
  spec: mysqlSpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['csv'] },
  create(config, { sourceName, baseDir }): SourceInstance {
    let options: ConnectionOptions | undefined;
    // Secrets are resolved (and TLS files read) when the database is first needed, not here.
    const connection = () => (options ??= connectionOptions(config.connection, baseDir, sourceName));
    return new DatabaseSource(config, sourceName, {
      async withIntrospector(fn) {
        const conn = await connect(connection(), sourceName);
        try {
          return await fn(new MysqlIntrospector(conn));
        } finally {
          await conn.end();
        }
      },
      full: (s, ctx) => fullUnits(s, ctx, { connection: connection(), label: sourceName }),
      incremental: (s, ctx) => incrementalUnits(s, ctx, { connection: connection(), label: sourceName }),
      changeFeed: (streams, ctx) =>
        new MysqlCdcSession({ config, connection: connection(), label: sourceName, streams, pipeline: ctx.pipeline }),
    });
  },
});

export default mysqlConnector;
