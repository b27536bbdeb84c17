/**
 * The end of a task attempt's log, kept while the task runs: a task printing hundreds of
 * megabytes holds only the last `limit` characters in memory, and the record says how much
 * earlier output was left out.
 */
export const LOG_TAIL_CHARS = 64 * 1024;

export class LogTail {
  private lines: string[] = [];
  private head = 0;
  private kept = 0;
  private droppedLines = 0;
  private droppedChars = 0;

  constructor(private readonly limit = LOG_TAIL_CHARS) {}

  push(line: string): void {
    const text = line.length > this.limit ? line.slice(line.length - this.limit) : line;
    this.droppedChars += line.length - text.length;
    this.lines.push(text);
    this.kept += text.length;
    while (this.kept > this.limit && this.head < this.lines.length) {
      const old = this.lines[this.head] as string;
      this.lines[this.head++] = '';
      this.kept -= old.length;
      this.droppedLines++;
      this.droppedChars += old.length;
    }
    // Compact the array now and then, so dropped slots do not pile up.
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.head = 0;
    }
  }

  /** Characters held now (at most the limit). */
  get size(): number {
    return this.kept;
  }

  text(): string {
    const body = this.lines.slice(this.head).join('');
    return this.droppedChars > 0
      ? `[… ${this.droppedLines} earlier lines (${this.droppedChars} characters) not kept: the log keeps its last ${this.limit} characters]\n${body}`
      : body;
  }
}
