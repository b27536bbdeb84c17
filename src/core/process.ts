import { hostname } from 'node:os';

/**
 * Whether a process recorded as (host, pid) may still be running. Processes on other hosts
 * are assumed alive: only their own host can tell.
 */
export function processAlive(host: string, pid: number): boolean {
  if (host !== hostname()) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
