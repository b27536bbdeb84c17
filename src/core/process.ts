import { hostname } from 'node:os';

/**
 * Whether a process recorded as (host, pid) is still running; undefined for another host's
 * process, which only heartbeats can tell about.
 */
export function processAlive(host: string, pid: number): boolean | undefined {
  if (host !== hostname()) return undefined;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
