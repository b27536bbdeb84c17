/**
 * `type: files` sources: CSV, JSON, NDJSON and Parquet from local paths and globs. The spec
 * (config schema, example, declared tables); the connector is `./index.ts`.
 */
import { z } from 'zod';
import { identifier, writeDispositionSchema } from '../../config/primitives.js';
import { cutByInterval, defineConnectorSpec } from '../spec.js';

export const csvOptionsSchema = z
  .strictObject({
    delimiter: z.string().min(1).max(4).optional().describe('Field separator; sniffed when omitted'),
    quote: z.string().max(1).optional().describe('Quote character; sniffed when omitted'),
    escape: z.string().max(1).optional().describe('Escape character inside quotes; sniffed when omitted'),
    header: z.boolean().optional().describe('First line holds column names; sniffed when omitted'),
    encoding: z.enum(['utf-8', 'utf-16', 'latin-1']).default('utf-8').describe('Text encoding of the file'),
    null_values: z.array(z.string()).optional().describe('Strings read as NULL (default: empty field)'),
    skip_rows: z.number().int().min(0).optional().describe('Lines to skip before the header'),
    date_format: z.string().optional().describe('strptime format for DATE columns, e.g. %d/%m/%Y'),
    timestamp_format: z.string().optional().describe('strptime format for TIMESTAMP columns'),
    columns: z
      .record(z.string(), z.string())
      .optional()
      .describe('Declared column types (DuckDB type names) that override sniffing, e.g. {id: BIGINT}'),
  })
  .describe('CSV parsing options');

export const jsonOptionsSchema = z
  .strictObject({
    columns: z
      .record(z.string(), z.string())
      .optional()
      .describe(
        'Declared column types (DuckDB type names) that override inference, e.g. {id: BIGINT, code: VARCHAR}; a declared column absent from a file is NULL',
      ),
  })
  .describe('JSON and NDJSON reading options');

export const fileStreamSchema = z
  .strictObject({
    path: z
      .union([z.string(), z.array(z.string()).min(1)])
      .describe('File path or glob (relative to the project directory), or a list of them'),
    format: z
      .enum(['csv', 'json', 'ndjson', 'parquet'])
      .optional()
      .describe('File format; from the extension when omitted'),
    csv: csvOptionsSchema.optional(),
    json: jsonOptionsSchema.optional(),
    require_files: z
      .boolean()
      .optional()
      .describe('Fail the stream when a path or glob matches no file (default false: warn and go on)'),
    table: identifier.optional().describe('Destination table name in each zone; defaults to the stream name'),
    write_disposition: writeDispositionSchema.default('append'),
    primary_key: z.array(z.string().min(1)).optional().describe('Columns that identify a record; required for merge'),
    deleted_column: z
      .string()
      .optional()
      .describe('merge only: a boolean column; records where it is true delete the key from the table'),
    schema_contract: z
      .enum(['evolve', 'freeze'])
      .default('evolve')
      .describe(
        'evolve: new columns and safe widening become a new schema version; freeze: any schema change fails the run',
      ),
  })
  .describe('One stream read from files');

export const filesSourceSchema = z
  .strictObject({
    type: z.literal('files'),
    streams: z.record(identifier, fileStreamSchema).describe('Streams of this source, by name'),
  })
  .describe('Reads CSV, JSON, NDJSON and Parquet files from local paths and globs');

export const filesSpec = defineConnectorSpec({
  type: 'files',
  description: 'CSV, JSON, NDJSON and Parquet files from local paths and globs',
  schema: filesSourceSchema,
  example: {
    type: 'files',
    streams: {
      orders: { path: 'data/orders/*.csv', write_disposition: 'merge', primary_key: ['order_id'] },
      customers: { path: 'data/customers.ndjson', format: 'ndjson', table: 'customers_raw' },
    },
  },
  declared: (config) => ({
    tables: Object.entries(config.streams).map(([name, s]) => ({
      table: s.table ?? name,
      stream: name,
      path: ['streams', name, ...(s.table ? ['table'] : [])],
    })),
    complete: true,
  }),
  readsDisjointSlices(config) {
    const streams = Object.values(config.streams);
    return streams.length > 0 && streams.every((s) => cutByInterval(s.path));
  },
});

export type CsvOptions = z.infer<typeof csvOptionsSchema>;
export type JsonOptions = z.infer<typeof jsonOptionsSchema>;
export type FileStreamConfig = z.infer<typeof fileStreamSchema>;
export type FilesSourceConfig = z.infer<typeof filesSourceSchema>;
