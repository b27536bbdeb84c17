/** Helpers every benchmark uses: option parsing, medians, tables. */

/** A whole number from a command-line option (underscores allowed: 5_000_000). */
export function count(text: string, name: string): number {
  const n = Number(text.replaceAll('_', ''));
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) throw new Error(`--${name} ${text}: expected a whole number`);
  return n;
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
  const line = (r: string[]) => r.map((c, i) => (rightAlign[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
