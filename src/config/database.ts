/**
 * `type: postgres` and `type: mysql` sources in dip.yaml: one database connection and the
 * tables (by name or pattern) and queries read from it, each a stream, in one of three modes:
 * full extract, incremental by a cursor column, or change data capture (PostgreSQL).
 */
import { z } from 'zod';
import { duration, identifier, writeDispositionSchema } from './primitives.js';

export const tlsSchema = z
  .strictObject({
    mode: z
      .enum(['disable', 'require', 'verify-ca', 'verify-full'])
      .default('disable')
      .describe(
        'disable: plain TCP; require: TLS without certificate checks; verify-ca: the server certificate must chain to `ca`; verify-full: and match the host name',
      ),
    ca: z.string().optional().describe('PEM file of the CA that signed the server certificate (path, or ${file:…})'),
    cert: z.string().optional().describe('PEM client certificate file, for certificate authentication'),
    key: z.string().optional().describe('PEM client key file'),
  })
  .describe('TLS to the database');

export const connectionSchema = z
  .strictObject({
    url: z.string().optional().describe('postgres://user:pass@host:port/db or mysql://…; use ${env:NAME} for secrets'),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().optional(),
    password: z.string().optional().describe('Use ${env:NAME} or ${file:path}, never the value itself'),
    database: z.string().optional(),
    tls: tlsSchema.optional(),
    connect_timeout: duration.default('30s'),
  })
  .refine((c) => c.url !== undefined || c.host !== undefined, { message: 'set either url or host' })
  .describe('How to reach the database');

export const extractModeSchema = z
  .enum(['full', 'incremental', 'cdc'])
  .describe(
    'full: the whole table every run; incremental: rows past the last cursor value; cdc: the change stream (PostgreSQL logical replication, MySQL/MariaDB binlog)',
  );

const tableOptions = {
  mode: extractModeSchema.optional().describe("Overrides the source's mode"),
  columns: z.array(z.string().min(1)).min(1).optional().describe('Columns to read (default: all)'),
  exclude_columns: z.array(z.string().min(1)).optional().describe('Columns never read (e.g. blobs, secrets)'),
  cursor: z
    .string()
    .min(1)
    .optional()
    .describe('incremental: the column whose growth marks new or changed rows (updated_at, id)'),
  primary_key: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe("Columns identifying a row; default: the table's primary key"),
  lag: duration
    .optional()
    .describe(
      'incremental on a timestamp cursor: read only rows older than this, so transactions that commit late are not skipped',
    ),
  where: z.string().min(1).optional().describe('SQL condition every read adds, e.g. "status <> \'draft\'"'),
  write_disposition: writeDispositionSchema
    .optional()
    .describe(
      'Default: replace for full; merge for incremental with a primary key, else append; cdc keeps a change log and a merged current table',
    ),
  chunk_rows: z.number().int().min(1).optional().describe("Rows per unit (overrides the source's extract.chunk_rows)"),
};

export const dbTableSchema = z.union([
  z.string().min(1).describe('A table name, optionally schema-qualified (sales.orders)'),
  z
    .strictObject({
      name: z.string().min(1).describe('Table name, optionally schema-qualified'),
      stream: identifier.optional().describe('Stream name (default: the table name, lower-cased)'),
      table: identifier.optional().describe('Destination table in each zone (default: the stream name)'),
      ...tableOptions,
    })
    .describe('One table'),
  z
    .strictObject({
      pattern: z
        .string()
        .min(1)
        .describe('Glob over table names (* and ?), optionally schema-qualified: "billing_*", "sales.*"'),
      exclude: z.array(z.string()).optional().describe('Table names or globs left out'),
      ...tableOptions,
    })
    .describe('Every table whose name matches'),
]);

export const dbQuerySchema = z
  .strictObject({
    sql: z.string().min(1).describe('A SELECT; incremental reads wrap it and add the cursor condition'),
    table: identifier.optional(),
    mode: z.enum(['full', 'incremental']).default('full'),
    cursor: tableOptions.cursor,
    primary_key: tableOptions.primary_key,
    lag: tableOptions.lag,
    write_disposition: tableOptions.write_disposition,
    chunk_rows: tableOptions.chunk_rows,
  })
  .describe('A stream read by custom SQL');

export const extractSchema = z
  .strictObject({
    chunk_rows: z
      .number()
      .int()
      .min(1)
      .default(500_000)
      .describe('Rows per unit: each unit is staged and (append, incremental) committed on its own'),
    parallel: z
      .number()
      .int()
      .min(1)
      .max(16)
      .optional()
      .describe(
        'Full extracts: table ranges read at once, from one consistent snapshot (default: cores - 1, at least 1: staging needs a core too)',
      ),
  })
  .default({ chunk_rows: 500_000 });

export const cdcSchema = z
  .strictObject({
    slot: identifier.optional().describe('Replication slot (default: dip_<pipeline>_<source>)'),
    publication: identifier
      .optional()
      .describe('Publication (default: dip_<pipeline>_<source>); created for the cdc tables when missing'),
    batch_records: z.number().int().min(1).default(20_000).describe('A unit is committed at this many change events'),
    flush_interval: duration.default('500ms').describe('…or when its oldest event is this old'),
    idle_timeout: duration
      .default('10s')
      .describe('Without --follow: stop when no change arrived for this long after catching up'),
  })
  .default({ batch_records: 20_000, flush_interval: '500ms', idle_timeout: '10s' });

const databaseSource = {
  connection: connectionSchema,
  schema: z
    .string()
    .min(1)
    .optional()
    .describe('Schema of unqualified table names (PostgreSQL default: public; MySQL: the connection database)'),
  mode: extractModeSchema.default('full'),
  tables: z.array(dbTableSchema).default([]).describe('Tables to read, by name or pattern'),
  queries: z.record(identifier, dbQuerySchema).default({}).describe('Streams read by custom SQL, by stream name'),
  extract: extractSchema,
};

export const postgresSourceSchema = z
  .strictObject({ type: z.literal('postgres'), ...databaseSource, cdc: cdcSchema })
  .describe('PostgreSQL tables and queries: COPY-based full extracts, incremental by cursor, logical-replication CDC');

export const mysqlCdcSchema = z
  .strictObject({
    server_id: z
      .number()
      .int()
      .min(1)
      .max(4_294_967_295)
      .optional()
      .describe(
        'Server id the binlog connection registers with, unique among the replicas of the server (default: derived from the pipeline and source names)',
      ),
    batch_records: z.number().int().min(1).default(20_000).describe('A unit is committed at this many change events'),
    flush_interval: duration.default('500ms').describe('…or when its oldest event is this old'),
    idle_timeout: duration
      .default('10s')
      .describe(
        'Without --follow: stop when no binlog event arrived for this long (normally the run stops on reaching the end of the binlog as it was at start)',
      ),
  })
  .default({ batch_records: 20_000, flush_interval: '500ms', idle_timeout: '10s' });

export const mysqlSourceSchema = z
  .strictObject({
    type: z.literal('mysql'),
    ...databaseSource,
    mode: extractModeSchema
      .default('full')
      .describe(
        'full: the whole table every run; incremental: rows past the last cursor value; cdc: the binlog change stream',
      ),
    cdc: mysqlCdcSchema,
  })
  .describe('MySQL and MariaDB tables and queries: streamed full extracts, incremental by cursor, binlog CDC');

export type TlsConfig = z.infer<typeof tlsSchema>;
export type ConnectionConfig = z.infer<typeof connectionSchema>;
export type DbTableConfig = z.infer<typeof dbTableSchema>;
export type DbQueryConfig = z.infer<typeof dbQuerySchema>;
export type ExtractMode = z.infer<typeof extractModeSchema>;
export type PostgresSourceConfig = z.infer<typeof postgresSourceSchema>;
export type MysqlSourceConfig = z.infer<typeof mysqlSourceSchema>;
export type DatabaseSourceConfig = PostgresSourceConfig | MysqlSourceConfig;
