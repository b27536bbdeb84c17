/**
 * Schedules as data intervals (the groundwork of the orchestrator): a cron expression in a time
 * zone (croner) or a fixed interval divides time into logical intervals [start, end); the run
 * for an interval is due at its end. After downtime, catch-up decides which missed intervals
 * still run. Every function takes the clock as an argument, so tests drive time directly.
 */
import { Cron } from 'croner';
import { ConfigError } from '../core/errors.js';
import type { Interval } from '../core/interval.js';
import { durationMs } from '../core/time.js';

export interface ScheduleSpec {
  /** Cron expression (5 or 6 fields), e.g. "0 2 * * *"; or use `every`. */
  cron?: string | undefined;
  /** Fixed interval, e.g. "15m", aligned to `anchor` (default: the Unix epoch). */
  every?: string | undefined;
  /** IANA zone the cron expression is read in (default UTC). */
  timezone?: string | undefined;
  /** After downtime, all: every missed interval runs (oldest first); latest: only the newest. */
  catchup?: 'all' | 'latest' | undefined;
  anchor?: Date | undefined;
}

/** A logical data interval: the run for it is due at `end`. */
export type { Interval } from '../core/interval.js';

/** The ticks (interval boundaries) of a schedule. */
export interface Ticks {
  /** The first boundary strictly after `t`. */
  next(t: Date): Date;
  /** The last boundary at or before `t`. */
  previous(t: Date): Date;
}

const MAX_INTERVALS = 1_000_000;

export function ticksOf(spec: ScheduleSpec): Ticks {
  if ((spec.cron === undefined) === (spec.every === undefined)) {
    throw new ConfigError('a schedule needs exactly one of cron or every');
  }
  if (spec.every !== undefined) {
    const step = durationMs(spec.every, 'schedule.every');
    if (step <= 0) throw new ConfigError(`schedule.every: "${spec.every}" must be longer than 0`);
    const anchor = spec.anchor?.getTime() ?? 0;
    const floor = (t: number) => anchor + Math.floor((t - anchor) / step) * step;
    return { next: (t) => new Date(floor(t.getTime()) + step), previous: (t) => new Date(floor(t.getTime())) };
  }
  const expression = spec.cron as string;
  if (spec.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: spec.timezone });
    } catch {
      throw new ConfigError(
        `schedule: time zone "${spec.timezone}" is not an IANA zone name (e.g. Europe/Berlin, America/New_York, UTC)`,
      );
    }
  }
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone: spec.timezone ?? 'UTC', paused: true });
  } catch (err) {
    throw new ConfigError(
      `schedule: "${expression}"${spec.timezone ? ` in ${spec.timezone}` : ''} is not a valid cron schedule: ${(err as Error).message}`,
    );
  }
  const next = (t: Date): Date => {
    const n = cron.nextRun(t);
    if (!n) throw new ConfigError(`schedule: "${expression}" has no run after ${t.toISOString()}`);
    return n;
  };
  return {
    next,
    previous(t: Date): Date {
      // croner looks forward only: step back a widening window until a tick falls in it.
      for (let back = 60_000; back < 400 * 86_400_000; back *= 4) {
        let tick = cron.nextRun(new Date(t.getTime() - back));
        if (!tick || tick > t) continue;
        for (let n = cron.nextRun(tick); n && n <= t; n = cron.nextRun(tick)) tick = n;
        return tick;
      }
      throw new ConfigError(`schedule: "${expression}" has no run in the year before ${t.toISOString()}`);
    },
  };
}

/** Every interval whose end lies in (from, to]: what a backfill of that range runs. */
export function intervalsBetween(spec: ScheduleSpec, from: Date, to: Date): Interval[] {
  const ticks = ticksOf(spec);
  const out: Interval[] = [];
  let start = ticks.previous(from);
  for (let end = ticks.next(start); end <= to; end = ticks.next(end)) {
    if (end > from) out.push({ start, end });
    start = end;
    if (out.length > MAX_INTERVALS)
      throw new ConfigError(
        `schedule: more than ${MAX_INTERVALS} intervals between ${from.toISOString()} and ${to.toISOString()}`,
      );
  }
  return out;
}

/**
 * The intervals due at `now` for a pipeline whose last completed interval ended at `lastEnd`
 * (undefined: never ran, so only the latest interval is due). Catch-up after downtime:
 * `all` returns every missed interval, oldest first; `latest` only the newest.
 */
export function dueIntervals(spec: ScheduleSpec, lastEnd: Date | undefined, now: Date): Interval[] {
  const ticks = ticksOf(spec);
  const latestEnd = ticks.previous(now);
  if (lastEnd !== undefined && latestEnd <= lastEnd) return [];
  if (lastEnd === undefined) {
    return [{ start: ticks.previous(new Date(latestEnd.getTime() - 1)), end: latestEnd }];
  }
  const missed = intervalsBetween(spec, lastEnd, latestEnd);
  return spec.catchup === 'latest' ? missed.slice(-1) : missed;
}
