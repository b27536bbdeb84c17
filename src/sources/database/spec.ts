/**
 * `type: postgres` and `type: mysql` sources in dip.yaml: one database connection and the
 * tables (by name or pattern) and queries read from it, each a stream, in one of three modes:
 * full extract, incremental by a cursor column, or change data capture. The schema and answers
 * both database connectors share; their specs are `postgres/spec.ts` and `mysql/spec.ts`.
 */
import { z } from 'zod';
import { duration, identifier, writeDispositionSchema } from '../../config/primitives.js';
import { cutByInterval, type Declared, type DeclaredTable } from '../spec.js';

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

/** A stream name from a table name: lower case, anything else than [a-z0-9_] becomes _. */
export function streamNameOf(table: string): string {
  const name = table.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  return /^[a-z_]/.test(name) ? name : `t_${name}`;
}

/**
 * Stream names known without asking the database; `patterns` is true when patterns or
 * schema-qualified names (whose stream name depends on the default schema) leave some open.
 */
export function declaredStreamNames(config: DatabaseSourceConfig): { names: string[]; patterns: boolean } {
  const names: string[] = [];
  let patterns = false;
  for (const entry of config.tables) {
    const name = typeof entry === 'string' ? entry : 'name' in entry ? (entry.stream ?? entry.name) : undefined;
    if (name === undefined || name.includes('.')) patterns = true;
    else names.push(typeof entry !== 'string' && 'stream' in entry && entry.stream ? entry.stream : streamNameOf(name));
  }
  return { names: [...names, ...Object.keys(config.queries)], patterns };
}

/**
 * The bronze tables a database source's config declares: each named table (its destination, and
 * its change log in CDC mode) and each query. Patterns and schema-qualified names without an
 * explicit stream or table are known only once the database is asked (`complete: false`).
 */
export function declaredDatabaseTables(config: DatabaseSourceConfig): Declared {
  const tables: DeclaredTable[] = [];
  config.tables.forEach((entry, i) => {
    if (typeof entry !== 'string' && !('name' in entry)) return; // a pattern: known once the database is asked
    const name = typeof entry === 'string' ? entry : entry.name;
    const stream =
      typeof entry !== 'string' && entry.stream ? entry.stream : name.includes('.') ? undefined : streamNameOf(name);
    const explicit = typeof entry === 'string' ? undefined : (entry.table ?? entry.stream);
    if (explicit === undefined && name.includes('.')) return; // schema-qualified: its stream name depends on the default schema
    const destination = explicit ?? streamNameOf(name);
    const mode = (typeof entry === 'string' ? undefined : entry.mode) ?? config.mode;
    tables.push({ table: destination, stream, path: ['tables', i] });
    // The change log beside the current table.
    if (mode === 'cdc') tables.push({ table: `${destination}_changes`, stream, path: ['tables', i], changeLog: true });
  });
  for (const [q, cfg] of Object.entries(config.queries))
    tables.push({ table: cfg.table ?? q, stream: q, path: ['queries', q] });
  return { tables, complete: !declaredStreamNames(config).patterns };
}

/** Only full extracts, each cut by the run's interval (a `where:` or query naming it). */
export function databaseReadsDisjointSlices(config: DatabaseSourceConfig): boolean {
  const tables = config.tables.map((t) =>
    typeof t === 'string'
      ? { mode: config.mode, sliced: false }
      : { mode: t.mode ?? config.mode, sliced: cutByInterval(t.where) },
  );
  const queries = Object.values(config.queries).map((q) => ({ mode: q.mode, sliced: cutByInterval(q.sql) }));
  const streams = [...tables, ...queries];
  return streams.length > 0 && streams.every((s) => s.mode === 'full' && s.sliced);
}
