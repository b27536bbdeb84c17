/**
 * Schedules as data intervals, with the clock passed in: cron in a time zone across both DST
 * changes, fixed intervals, catch-up after an outage, and backfill ranges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../src/core/errors.js';
import { dueIntervals, intervalsBetween, ticksOf, type Interval } from '../src/orchestrate/schedule.js';

const iso = (xs: Interval[]) => xs.map((x) => [x.start.toISOString(), x.end.toISOString()]);
const d = (s: string) => new Date(s);

describe('schedules', () => {
  it('02:00 Europe/Berlin across the spring change: the short local day is a 23 h interval, nothing skipped or doubled', () => {
    const xs = intervalsBetween(
      { cron: '0 2 * * *', timezone: 'Europe/Berlin' },
      d('2024-03-29T00:00:00Z'),
      d('2024-04-02T00:00:00Z'),
    );
    assert.deepEqual(iso(xs), [
      ['2024-03-28T01:00:00.000Z', '2024-03-29T01:00:00.000Z'],
      ['2024-03-29T01:00:00.000Z', '2024-03-30T01:00:00.000Z'],
      ['2024-03-30T01:00:00.000Z', '2024-03-31T01:00:00.000Z'], // 02:00 does not exist on the 31st: the run is at 03:00 CEST
      ['2024-03-31T01:00:00.000Z', '2024-04-01T00:00:00.000Z'],
      ['2024-04-01T00:00:00.000Z', '2024-04-02T00:00:00.000Z'],
    ]);
  });

  it('01:30 America/New_York across the autumn change runs once, and hourly stays hourly in UTC', () => {
    const daily = intervalsBetween(
      { cron: '30 1 * * *', timezone: 'America/New_York' },
      d('2024-11-02T00:00:00Z'),
      d('2024-11-05T00:00:00Z'),
    );
    assert.deepEqual(
      daily.map((x) => x.end.toISOString()),
      ['2024-11-02T05:30:00.000Z', '2024-11-03T05:30:00.000Z', '2024-11-04T06:30:00.000Z'],
    );
    assert.deepEqual(
      daily.slice(1).map((x) => (x.end.getTime() - x.start.getTime()) / 3_600_000),
      [24, 25],
    );
    const hourly = intervalsBetween(
      { cron: '0 * * * *', timezone: 'America/New_York' },
      d('2024-11-03T00:00:00Z'),
      d('2024-11-04T00:00:00Z'),
    );
    assert.equal(hourly.length, 24);
    assert.ok(hourly.every((x) => x.end.getTime() - x.start.getTime() === 3_600_000));
  });

  it('catch-up after an outage: all missed intervals oldest first, or only the latest', () => {
    const spec = { cron: '0 2 * * *', timezone: 'Europe/Berlin' };
    const lastEnd = d('2024-03-29T01:00:00Z');
    const now = d('2024-04-02T09:00:00Z');
    assert.deepEqual(
      iso(dueIntervals(spec, lastEnd, now)).map((x) => x[1]),
      ['2024-03-30T01:00:00.000Z', '2024-03-31T01:00:00.000Z', '2024-04-01T00:00:00.000Z', '2024-04-02T00:00:00.000Z'],
    );
    assert.deepEqual(iso(dueIntervals({ ...spec, catchup: 'latest' }, lastEnd, now)), [
      ['2024-04-01T00:00:00.000Z', '2024-04-02T00:00:00.000Z'],
    ]);
    assert.deepEqual(dueIntervals(spec, d('2024-04-02T00:00:00Z'), now), [], 'nothing due until the next tick');
    assert.deepEqual(
      iso(dueIntervals(spec, undefined, now)),
      [['2024-04-01T00:00:00.000Z', '2024-04-02T00:00:00.000Z']],
      'a first run takes the latest interval',
    );
  });

  it('fixed intervals are aligned to the anchor; a tick is its own previous boundary', () => {
    assert.deepEqual(iso(dueIntervals({ every: '15m' }, undefined, d('2024-01-01T10:07:00Z'))), [
      ['2024-01-01T09:45:00.000Z', '2024-01-01T10:00:00.000Z'],
    ]);
    const anchored = intervalsBetween(
      { every: '1h', anchor: d('2024-01-01T00:20:00Z') },
      d('2024-01-01T01:00:00Z'),
      d('2024-01-01T03:30:00Z'),
    );
    assert.deepEqual(
      anchored.map((x) => x.end.toISOString()),
      ['2024-01-01T01:20:00.000Z', '2024-01-01T02:20:00.000Z', '2024-01-01T03:20:00.000Z'],
    );
    assert.equal(
      ticksOf({ cron: '0 2 * * *' }).previous(d('2024-01-01T02:00:00Z')).toISOString(),
      '2024-01-01T02:00:00.000Z',
    );
    assert.equal(
      ticksOf({ cron: '0 2 * * 1' }).previous(d('2024-01-10T00:00:00Z')).toISOString(),
      '2024-01-08T02:00:00.000Z',
    );
  });

  it('bad schedules are config errors that name the expression', () => {
    assert.throws(
      () => ticksOf({ cron: '61 * * * *' }),
      (e: unknown) => e instanceof ConfigError && /"61 \* \* \* \*" is not a valid cron schedule/.test(e.message),
    );
    assert.throws(() => ticksOf({ cron: '0 2 * * *', timezone: 'Mars/Olympus' }), ConfigError);
    assert.throws(
      () => ticksOf({ every: 'soon' }),
      (e: unknown) => e instanceof ConfigError && /schedule\.every/.test(e.message),
    );
    assert.throws(() => ticksOf({}), /exactly one of cron or every/);
  });
});
