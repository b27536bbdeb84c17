/**
 * What the CDC sessions share about DDL: after a statement changed a stream's table, the table
 * is copied again alone (its events read on with the new columns), and the copy is handed to
 * the stream once reading reaches the copy's position, so every event lands once and the copy
 * brings what the DDL changed without events. A table found gone fails its stream alone.
 */
import { ConfigError } from '../../core/errors.js';
import type { CdcUnit } from './change-batch.js';

/** A copy of a stream's table taken after DDL, waiting until reading reaches `at`. */
export interface DdlCopy {
  unit: CdcUnit;
  /** The copy holds the transactions committing before this position; the stream reads the others. */
  at: bigint;
}

/** The state field saying a copy after DDL has not landed yet (the next run takes it again). */
export const copyDue = (f: { copy?: DdlCopy | undefined }): { copy_due?: true } => (f.copy ? { copy_due: true } : {});

/** The error a stream fails with when its table is gone; `what` says how and where it was found. */
export function tableGoneError(
  label: string,
  pipeline: string,
  f: { table: { schema: string; name: string }; stream: { spec: { name: string } } },
  what: string,
): ConfigError {
  const { schema, name } = f.table;
  const stream = f.stream.spec.name;
  return new ConfigError(
    `${label}: table ${schema}.${name} of stream ${stream} ${what}; its changes up to there are in the lake. Remove it from dip.yaml (or point the stream at the new name and run \`dip state ${pipeline} --stream ${stream} --reset\`); the other streams go on`,
  );
}
