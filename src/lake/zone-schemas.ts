import type { TableSchema } from '../catalog/types.js';

// The fixed columns of each zone's tables: bronze audit columns, quarantine, raw envelopes.

/** Columns DIP adds to every bronze row. */
export const AUDIT_COLUMNS = [
  { name: '_dip_run_id', type: 'VARCHAR' },
  { name: '_dip_ingested_at', type: 'TIMESTAMP WITH TIME ZONE' },
  { name: '_dip_source', type: 'VARCHAR' },
  { name: '_dip_source_file', type: 'VARCHAR' },
] as const;

export const QUARANTINE_SCHEMA: TableSchema = {
  columns: [
    { name: '_dip_run_id', type: 'VARCHAR' },
    { name: '_dip_quarantined_at', type: 'TIMESTAMP WITH TIME ZONE' },
    { name: '_dip_source', type: 'VARCHAR' },
    { name: '_dip_source_file', type: 'VARCHAR' },
    { name: 'line', type: 'BIGINT' },
    { name: 'column_name', type: 'VARCHAR' },
    { name: 'error_type', type: 'VARCHAR' },
    { name: 'reason', type: 'VARCHAR' },
    { name: 'raw', type: 'VARCHAR' },
  ],
};

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

/**
 * Columns every change-data-capture event carries beside the row's own (the change log and the
 * current-state table merged from it): operation c|u|d|r|t, commit LSN, order within the unit,
 * transaction, commit time, whether the row is gone, and the row as it was before.
 */
export const CDC_COLUMNS = {
  op: '_cdc_op',
  lsn: '_cdc_lsn',
  seq: '_cdc_seq',
  txid: '_cdc_txid',
  commitTs: '_cdc_commit_ts',
  deleted: '_cdc_deleted',
  before: '_cdc_before',
} as const;

export const CDC_COLUMN_TYPES: readonly { name: string; type: string }[] = [
  { name: CDC_COLUMNS.op, type: 'VARCHAR' },
  { name: CDC_COLUMNS.lsn, type: 'UBIGINT' },
  { name: CDC_COLUMNS.seq, type: 'BIGINT' },
  { name: CDC_COLUMNS.txid, type: 'BIGINT' },
  { name: CDC_COLUMNS.commitTs, type: 'TIMESTAMPTZ' },
  { name: CDC_COLUMNS.deleted, type: 'BOOLEAN' },
  { name: CDC_COLUMNS.before, type: 'JSON' },
];
