/** `type: mysql` sources (MySQL and MariaDB): the spec (schema in ../database/spec.ts, example, answers); the connector is `./index.ts`. */
import { defineConnectorSpec } from '../spec.js';
import { databaseReadsDisjointSlices, declaredDatabaseTables, mysqlSourceSchema } from '../database/spec.js';

export const mysqlSpec = defineConnectorSpec({
  type: 'mysql',
  description:
    'MySQL and MariaDB tables and queries: streamed full extracts in primary-key chunks, incremental by cursor, CDC from the binlog',
  schema: mysqlSourceSchema,
  example: {
    type: 'mysql',
    connection: { host: '127.0.0.1', port: 3306, user: 'dip', password: '${env:SHOP_DB_PASSWORD}', database: 'shop' },
    mode: 'cdc',
    tables: ['customers', { name: 'orders', table: 'orders_current' }],
  },
  declared: declaredDatabaseTables,
  readsDisjointSlices: databaseReadsDisjointSlices,
});
