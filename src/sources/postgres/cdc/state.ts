/** The state a PostgreSQL CDC stream commits with each unit. */
export interface CdcState {
  slot: string;
  /** The slot's consistent point: where its snapshot was taken. */
  point: string;
  /** Commit LSN of the last transaction whose events are in the lake. */
  lsn: string;
  /** The table's columns (name, type oid, modifier) as of `lsn`: a relation message with others means it changed. */
  shape?: string | undefined;
  /** The table changed before `lsn` and the copy taken after that has not landed: take it again. */
  copy_due?: true | undefined;
}

export function isCdcState(value: unknown): value is CdcState {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CdcState).lsn === 'string' &&
    typeof (value as CdcState).slot === 'string'
  );
}
