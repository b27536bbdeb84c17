/**
 * The pgoutput decoder of `pg-logical-replication`, with column values kept as the server's
 * text: its default converts them with node-postgres type parsers (timestamps to JS Dates,
 * losing microseconds; numerics to floats in places). We need the exact text, typed later by
 * DuckDB the same way as the snapshot's COPY output.
 */
import { PgoutputPlugin } from 'pg-logical-replication';

/** LSN `X/Y` as a 64-bit number, and back. */
export function lsnToBigint(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
}

export function bigintToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export interface RelationColumn {
  name: string;
  flags: number;
  typeOid: number;
  typeMod: number;
}

export interface Relation {
  relationOid: number;
  schema: string;
  name: string;
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  columns: RelationColumn[];
  keyColumns: string[];
}

/** A tuple: column name → text, null, or undefined for an unchanged TOASTed value that was not sent. */
type Tuple = Record<string, string | null | undefined>;

export type PgoutputMessage =
  | { tag: 'begin'; commitLsn: string | null; commitTime: bigint | number; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: string | null; commitEndLsn: string | null; commitTime: bigint | number }
  | ({ tag: 'relation' } & Relation)
  | { tag: 'insert'; relation: Relation; new: Tuple }
  | { tag: 'update'; relation: Relation; key: Tuple | null; old: Tuple | null; new: Tuple }
  | { tag: 'delete'; relation: Relation; key: Tuple | null; old: Tuple | null }
  | { tag: 'truncate'; cascade: boolean; restartIdentity: boolean; relations: Relation[] }
  | {
      tag: 'message';
      flags: number;
      transactional: boolean;
      messageLsn: string | null;
      prefix: string;
      content: Uint8Array;
    }
  | { tag: 'type' | 'origin' };

interface ParserInternals {
  readRelationColumn(reader: unknown): { parser: (text: string) => unknown };
}

export function createPgoutputPlugin(publication: string): PgoutputPlugin {
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication], messages: true });
  const parser = (plugin as unknown as { parser: ParserInternals }).parser;
  const readColumn = parser.readRelationColumn.bind(parser);
  parser.readRelationColumn = (reader) => ({ ...readColumn(reader), parser: (text: string) => text });
  return plugin;
}
