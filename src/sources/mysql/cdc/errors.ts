/** What a failed binlog stream tells the user, and the replica server id a session registers with. */
import { createHash } from 'node:crypto';
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import { TableChangedError } from './binlog.js';
import { isPrivilegeError, replicationPrivilegeMessage } from './position.js';

/** A replica server id derived from the pipeline and source names, in 2^30 … 2^31 - 2. */
export function defaultServerId(pipeline: string, source: string): number {
  const hash = createHash('sha256').update(`dip/${pipeline}/${source}`).digest().readUInt32BE(0);
  return 0x40000000 + (hash % 0x3fffffff);
}

/** The error every stream fails with; `at` is the position read up to (file:offset). */
export function describeBinlogError(
  err: unknown,
  o: { label: string; pipeline: string; serverId: number; at: () => string },
): Error {
  const { label, pipeline } = o;
  if (err instanceof DipError) return err;
  if (err instanceof TableChangedError) {
    return new ConfigError(
      `${label}: ${err.message}: its structure changed (ALTER TABLE) after the changes being read were written, so their values cannot be matched to columns. Run \`dip state ${pipeline} --reset\` to take a new snapshot`,
      { cause: err },
    );
  }
  const message = errorMessage(err);
  const errno = (err as { errno?: number } | undefined)?.errno;
  if (isPrivilegeError(err) || /REPLICATION SLAVE|REPLICA privilege/i.test(message))
    return new ConfigError(replicationPrivilegeMessage(label, message), { cause: err });
  if (/same server[_ ]id|server_uuid\/server_id/i.test(message)) {
    return new ConfigError(
      `${label}: another replica connected to the server with server id ${o.serverId} (another dip run of this pipeline, or a replica using that id): stop the other run, or set cdc.server_id to a number no other replica of this server uses: ${message}`,
      { cause: err },
    );
  }
  if (errno === 1236 || /could not find first log file|purged|log event entry exceeded/i.test(message)) {
    return new ConfigError(
      `${label}: the server cannot stream its binary log from ${o.at()}: ${message}. If the file was purged, the changes since are lost to the change stream: run \`dip state ${pipeline} --reset\` to take a new snapshot`,
      { cause: err },
    );
  }
  return new DipError('transient', `${label}: binlog stream failed: ${message}`, { cause: err });
}
