/** Helpers every benchmark uses: option parsing, medians, tables, the machine. */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';

/** The machine a benchmark ran on, printed with its results (load average at the end filled in by the caller). */
export function machineInfo(root: string): {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  commit: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd: number[];
} {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  return {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    commit: git.status === 0 ? git.stdout.trim() : 'unknown',
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    loadAverageAtEnd: [],
  };
}

/** Parses a benchmark's options; a bad option prints the message and the help (exit 64), --help exits 0. */
export function parseOrExit<T>(parse: () => T | undefined, help: string): { opts: T } | { exit: number } {
  try {
    const opts = parse();
    return opts === undefined ? { exit: 0 } : { opts };
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${help}`);
    return { exit: 64 };
  }
}

/** A whole number from a command-line option (underscores allowed: 5_000_000). */
export function count(text: string, name: string): number {
  const n = Number(text.replaceAll('_', ''));
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n))
    throw new Error(`--${name} ${text}: expected a whole number`);
  return n;
}

/** `--variants a,b`: the names, each checked against the known ones. */
export function variantList<V extends string>(text: string, known: readonly V[]): V[] {
  const variants = text.split(',').map((v) => v.trim()) as V[];
  for (const v of variants)
    if (!known.includes(v)) throw new Error(`--variants: unknown variant "${v}" (expected ${known.join(', ')})`);
  return variants;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** A text table (aligned columns) or a Markdown one. */
export function renderTable(head: string[], rows: string[][], markdown: boolean, rightAlign: boolean[] = []): string {
  if (markdown) {
    const sep = head.map((_, i) => (rightAlign[i] ? '---:' : '---'));
    return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => (rightAlign[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
