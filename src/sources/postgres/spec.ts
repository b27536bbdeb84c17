/** `type: postgres` sources: the spec (schema in ../database/spec.ts, example, answers); the connector is `./index.ts`. */
import { defineConnectorSpec } from '../spec.js';
import { databaseReadsDisjointSlices, declaredDatabaseTables, postgresSourceSchema } from '../database/spec.js';

export const postgresSpec = defineConnectorSpec({
  type: 'postgres',
  description: 'PostgreSQL tables and queries: COPY full extracts, incremental by cursor, CDC by logical replication',
  schema: postgresSourceSchema,
  example: {
    type: 'postgres',
    connection: { url: '${env:SHOP_DB_URL}' },
    mode: 'incremental',
    tables: [{ name: 'orders', cursor: 'updated_at' }, { pattern: 'billing_*' }],
    queries: { big_orders: { sql: 'select * from orders where total > 1000' } },
  },
  declared: declaredDatabaseTables,
  readsDisjointSlices: databaseReadsDisjointSlices,
});
