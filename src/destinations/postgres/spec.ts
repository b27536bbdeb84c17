/** `kind: postgres` destinations: a PostgreSQL database loaded with COPY FROM STDIN. */
import { z } from 'zod';
import { defineDestinationSpec } from '../types.js';

export const postgresDestinationSchema = z
  .strictObject({
    kind: z.literal('postgres'),
    url: z
      .string()
      .min(1)
      .describe(
        'Connection URL; put the password in a secret reference, e.g. postgres://dip:${env:PGPASSWORD}@host/db',
      ),
    schema: z.string().min(1).default('public').describe('Schema tables are created in (default public)'),
  })
  .describe('A PostgreSQL database');

export const postgresDestinationSpec = defineDestinationSpec({
  kind: 'postgres',
  description: 'A PostgreSQL database (COPY FROM STDIN; the last loaded lake commit kept in dip_loads)',
  schema: postgresDestinationSchema,
  example: { kind: 'postgres', url: 'postgres://dip:${env:PGPASSWORD}@127.0.0.1:5432/warehouse' },
});
