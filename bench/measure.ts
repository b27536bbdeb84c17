/** Child processes of the benchmarks: timed, with peak RSS and CPU time polled from /proc. */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A benchmark step that did not produce what it must; the bench reports it and fails. */
export class BenchFailure extends Error {}

export interface Measured {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak resident set (VmHWM) in KiB, or null where /proc is unavailable. */
  peakRssKiB: number | null;
  /** User + system CPU seconds of the child (last poll before exit), or null without /proc. */
  cpuSec: number | null;
}

/** Kernel clock ticks per second (the unit of CPU times in /proc). */
export const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** Peak resident set (VmHWM) of a process in KiB, or null where /proc cannot tell. */
export function readHwm(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function readProc(pid: number): { hwmKiB: number; cpuSec: number } | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (!m || !Number.isFinite(ticks)) return null;
    return { hwmKiB: Number(m[1]), cpuSec: ticks / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/** Runs a child to completion, timing it and polling its peak RSS and CPU time every 50 ms. */
export function spawnMeasured(cmd: string, args: string[], cwd = ROOT): Promise<Measured> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let peak: number | null = null;
    let cpu: number | null = null;
    let wallMs = 0;
    const timer = setInterval(() => {
      if (child.pid === undefined) return;
      const p = readProc(child.pid);
      if (p) {
        peak = Math.max(peak ?? 0, p.hwmKiB);
        cpu = Math.max(cpu ?? 0, p.cpuSec);
      }
    }, 50);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.once('exit', () => {
      wallMs = performance.now() - started;
      clearInterval(timer);
    });
    child.once('close', (code, signal) => {
      clearInterval(timer);
      resolvePromise({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        wallMs: wallMs || performance.now() - started,
        peakRssKiB: peak,
        cpuSec: cpu,
      });
    });
  });
}

export function failIfBad(what: string, m: Measured): void {
  if (m.code !== 0) {
    throw new BenchFailure(
      `${what} exited with ${m.code ?? m.signal}\n--- stderr ---\n${m.stderr.slice(-4000)}\n--- stdout ---\n${m.stdout.slice(-2000)}`,
    );
  }
}

/** Flush dirty pages of earlier runs so they are not written back during the next timed one. */
export function syncDisks(): void {
  spawnSync('sync', { stdio: 'ignore' });
}
