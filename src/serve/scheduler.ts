/**
 * The scheduler loop of `dip serve`: one orchestrator tick at start, then one every `intervalMs`
 * (measured from the end of the previous one, so ticks never overlap). A failing tick is logged
 * and the loop goes on; stop() waits for a tick in progress.
 */
import { errorMessage } from '../core/errors.js';

export type ServeLog = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** What /ready and the logs need to know about the loop. */
export interface SchedulerStatus {
  readonly enabled: boolean;
  /** Ticks that completed without an error. */
  readonly ticks: number;
  readonly lastTickAt: Date | null;
  readonly lastError: string | null;
}

export class SchedulerLoop implements SchedulerStatus {
  readonly enabled = true;
  ticks = 0;
  lastTickAt: Date | null = null;
  lastError: string | null = null;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly tick: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly log: ServeLog,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.tick();
        this.ticks++;
        this.lastError = null;
      } catch (err) {
        this.lastError = errorMessage(err);
        this.log('error', `scheduler tick failed: ${this.lastError}`);
      }
      this.lastTickAt = this.clock();
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.intervalMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/** `--no-scheduler`: nothing ticks here (another process schedules); readiness does not wait for it. */
export const NO_SCHEDULER: SchedulerStatus = { enabled: false, ticks: 0, lastTickAt: null, lastError: null };
