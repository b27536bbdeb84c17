import type { TableSchema } from '../catalog/types.js';

/** The envelope every raw record is kept in (one JSON object per line, zstd-compressed). */
export const RAW_SCHEMA: TableSchema = {
  columns: [
    { name: 'seq', type: 'BIGINT' },
    { name: 'payload', type: 'JSON' },
    { name: 'pipeline', type: 'VARCHAR' },
    { name: 'source', type: 'VARCHAR' },
    { name: 'stream', type: 'VARCHAR' },
    { name: 'run_id', type: 'VARCHAR' },
    { name: 'received_at', type: 'VARCHAR' },
    { name: 'position', type: 'JSON' },
  ],
};
