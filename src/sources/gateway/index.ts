/**
 * The lander: drains each endpoint's event log into raw and bronze in micro-batches (up to
 * `batch.max_events` events, or what arrived within `batch.max_age` of the batch's first event
 * when following). A unit's state is the log offset after its last event, committed in the same
 * catalog transaction as its rows, so a killed lander resumes exactly where its last commit
 * ended: nothing lost, nothing twice. Once a unit is committed its offset is acknowledged to the
 * log (retention and the gateway's backpressure read it). Events the gateway refused (schema)
 * are in the log with their reason and go to quarantine.
 *
 * `dip run` lands what the log holds and stops; `dip run --follow` keeps landing until
 * interrupted. Ack-to-queryable lag (from the log's store time to the commit) is a stream metric.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDuration } from '../../core/time.js';
import { newId } from '../../core/ids.js';
import type { EventLog, LogEvent } from '../../eventlog/types.js';
import { defineConnector, type ReadUnit, type StreamSpec } from '../types.js';
import { openEndpointLog } from './log.js';
import { fillLogName, gatewaySpec, REJECTED_HEADER } from './spec.js';

/** The consumer name the lander acknowledges under. */
export const LANDER = 'lander';

interface LanderState {
  next: number;
  /** Next offset of the endpoint's reconcile log (events a reconcile filled), when it has one. */
  fill?: number;
}

interface Fill {
  log: EventLog;
  next: number;
}

interface LagStats {
  events: number;
  batches: number;
  lags: number[];
  max: number;
}

export default defineConnector({
  spec: gatewaySpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['ndjson'] },
  create(config, context) {
    const streams: StreamSpec[] = Object.entries(config.endpoints).map(([name, e]) => ({
      name,
      table: e.table ?? name,
      writeDisposition: 'append',
      primaryKey: [],
      schemaContract: 'evolve',
    }));
    const logs: EventLog[] = [];
    const lag = new Map<string, LagStats>();
    const maxAgeMs = parseDuration(config.batch.max_age) ?? 1000;
    return {
      streams: () => streams,
      // Every endpoint's log is drained at once (with --follow none of them ends).
      streamConcurrency: Math.max(1, streams.length),
      metrics(stream): Record<string, number> {
        const s = lag.get(stream.name);
        if (!s) return {};
        const sorted = [...s.lags].sort((a, b) => a - b);
        const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
        return { events: s.events, batches: s.batches, ack_to_queryable_ms_p99: p99, ack_to_queryable_ms_max: s.max };
      },
      async plan(stream, ctx) {
        const log = await openEndpointLog(config, {
          baseDir: context.baseDir,
          pipeline: ctx.pipeline,
          source: ctx.source,
          endpoint: stream.name,
          mode: 'reader',
        });
        logs.push(log);
        const stats: LagStats = { events: 0, batches: 0, lags: [], max: 0 };
        lag.set(stream.name, stats);
        const saved = ctx.state as LanderState | undefined;
        const start = saved?.next ?? (await log.bounds()).start;
        // Register (or move) this consumer's position: retention keeps what it has not landed.
        await log.ack(LANDER, start);
        let fill: Fill | undefined;
        if (config.endpoints[stream.name]?.reconcile) {
          const fillLog = await openEndpointLog(config, {
            baseDir: context.baseDir,
            pipeline: ctx.pipeline,
            source: ctx.source,
            endpoint: fillLogName(stream.name),
            mode: 'reader',
          });
          logs.push(fillLog);
          fill = { log: fillLog, next: saved?.fill ?? (await fillLog.bounds()).start };
        }
        const units = drain(log, stream, start, ctx.stagingDir, ctx.follow, ctx.signal, stats, fill);
        return { units, skipped: 0 };
      },
      async close() {
        await Promise.all(logs.splice(0).map((l) => l.close()));
      },
    };

    async function* drain(
      log: EventLog,
      stream: StreamSpec,
      from: number,
      dir: string,
      follow: boolean,
      signal: AbortSignal,
      stats: LagStats,
      fill: Fill | undefined,
    ): AsyncGenerator<ReadUnit> {
      let next = from;
      while (!signal.aborted) {
        // Events a reconcile filled land first, in their own units (state: both offsets).
        const filled = fill ? await fill.log.read(fill.next, { maxEvents: config.batch.max_events }) : [];
        if (fill && filled.length) {
          const after = (filled[filled.length - 1] as LogEvent).offset + 1;
          yield await toUnit(filled, stream, dir, { next, fill: after }, `${fillLogName(stream.name)} `);
          fill.next = after;
          await fill.log.ack(LANDER, after);
          continue;
        }
        const events = await log.read(next, { maxEvents: config.batch.max_events, maxBytes: 256 * 1024 * 1024 });
        if (!events.length) {
          if (!follow) return;
          await log.waitFor(next, 1000, signal);
          continue;
        }
        if (follow && events.length < config.batch.max_events) {
          // Let the batch fill for up to max_age after its first event.
          const wait = (events[0] as LogEvent).timestamp + maxAgeMs - Date.now();
          const after = (events[events.length - 1] as LogEvent).offset + 1;
          if (wait > 0) {
            await log.waitFor(after + config.batch.max_events - events.length - 1, wait, signal);
            events.push(...(await log.read(after, { maxEvents: config.batch.max_events - events.length })));
          }
        }
        const last = (events[events.length - 1] as LogEvent).offset;
        const unit = await toUnit(events, stream, dir, fill ? { next: last + 1, fill: fill.next } : { next: last + 1 });
        yield unit;
        // The runner asks for the next unit only once this one is committed.
        const now = Date.now();
        for (const e of events) {
          const l = now - e.timestamp;
          if (stats.lags.length < 100_000) stats.lags.push(l);
          if (l > stats.max) stats.max = l;
        }
        stats.events += events.length;
        stats.batches += 1;
        next = last + 1;
        await log.ack(LANDER, next);
      }
    }

    async function toUnit(
      events: LogEvent[],
      stream: StreamSpec,
      dir: string,
      state: LanderState,
      logLabel = '',
    ): Promise<ReadUnit> {
      const lines: string[] = [];
      const rejected: { reason: string; errorType: string; raw: string }[] = [];
      for (const e of events) {
        const text = Buffer.from(e.data).toString('utf8');
        const reason = e.headers?.[REJECTED_HEADER];
        if (reason !== undefined) rejected.push({ reason, errorType: 'schema', raw: text });
        else lines.push(text);
      }
      const first = (events[0] as LogEvent).offset;
      const last = (events[events.length - 1] as LogEvent).offset;
      const position = {
        log: logLabel ? fillLogName(stream.name) : stream.name,
        first_offset: first,
        last_offset: last,
      };
      const label = `${logLabel || `${stream.name} `}offsets ${first}..${last} (${events.length} events)`;
      if (!lines.length) return { label, bytes: 0, position, state, rejected };
      const path = join(dir, `${newId('gw')}.ndjson`);
      const text = `${lines.join('\n')}\n`;
      await writeFile(path, text);
      return {
        label,
        input: { path, format: 'ndjson' },
        bytes: Buffer.byteLength(text),
        position,
        state,
        rejected: rejected.length ? rejected : undefined,
        dispose: () => rm(path, { force: true }),
      };
    }
  },
});
