import { createRequire } from 'node:module';
import type cliProgressModule from 'cli-progress';
import type { RunEvent, RunEventSink } from '../pipeline/events.js';
import { createLogger } from '../observe/log.js';
import { formatBytes, formatCount } from './output.js';

/**
 * Progress for `dip run`: a bar per stream on a TTY, one structured log line per event
 * otherwise (CI, pipes, `--json`).
 */
const lastLogged = new Map<string, number>();

/** Without a TTY, progress inside a long unit is logged at most every 10 seconds. */
function progressLog(log: ReturnType<typeof createLogger>, e: Extract<RunEvent, { type: 'unit_progress' }>): void {
  const now = Date.now();
  if (now - (lastLogged.get(e.unit) ?? now - 10_001) < 10_000) return;
  lastLogged.set(e.unit, now);
  log.info(
    { pipeline: e.pipeline, stream: e.stream, unit: e.unit, percent: Math.round(e.fraction * 100) },
    'unit_progress',
  );
}

export function progressSink(options: { tty: boolean; quiet: boolean }): { sink: RunEventSink; stop(): void } {
  if (options.quiet) return { sink: () => undefined, stop: () => undefined };
  if (!options.tty) {
    const log = createLogger();
    return {
      sink: (e: RunEvent) => {
        const { type, ...fields } = e;
        if (type === 'unit_progress') return progressLog(log, e);
        if (e.type === 'silver_committed') {
          const { report, warnings, ...result } = e.result;
          return log.info({ ...result, quality: report?.status, warnings: warnings.length }, type);
        }
        if (e.type === 'silver_warning' || e.type === 'stream_warning') return log.warn(fields, type);
        if (e.type === 'stream_failed') return log.error(fields, type);
        if (e.type === 'run_finished' && e.status === 'failed') return log.error(fields, type);
        if (e.type === 'run_finished' && e.status === 'warned') return log.warn(fields, type);
        log.info(fields, type);
      },
      stop: () => undefined,
    };
  }
  // Loaded only for a terminal: runs in CI, pipes and tests never pay for it.
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof cliProgressModule;
  const multi = new cliProgress.MultiBar(
    {
      format: ' {stream} |{bar}| {percentage}% {value}/{total} · {rows} rows · {quarantined} quarantined',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 24,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? formatBytes(v) : String(v)),
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<
    string,
    { bar: cliProgressModule.SingleBar; rows: number; quarantined: number; done: number; sized: boolean }
  >();
  return {
    sink: (e: RunEvent) => {
      if (e.type === 'stream_planned') {
        const total = Math.max(e.bytes ?? 0, 1);
        const bar = multi.create(total, 0, { stream: e.stream.padEnd(24), rows: '0', quarantined: 0 });
        bars.set(e.stream, { bar, rows: 0, quarantined: 0, done: 0, sized: e.bytes !== null });
        if (e.units === 0) bar.update(total, { rows: `0 (${e.skipped} files unchanged)` });
      } else if (e.type === 'unit_progress') {
        const b = bars.get(e.stream);
        b?.bar.update(b.done + Math.round(e.fraction * e.bytes));
      } else if (e.type === 'unit_committed' || e.type === 'unit_staged') {
        const b = bars.get(e.stream);
        if (!b) return;
        b.rows += e.rows;
        b.quarantined += e.quarantined;
        b.done += e.bytes;
        if (!b.sized) b.bar.setTotal(Math.max(b.done, 1)); // a source that finds its inputs as it reads
        b.bar.update(b.done, { rows: formatCount(b.rows), quarantined: b.quarantined });
      } else if (e.type === 'stream_failed') {
        bars.get(e.stream)?.bar.update({ rows: 'FAILED' });
      } else if (e.type === 'silver_warning') {
        multi.log(`warning: ${e.table}: ${e.message}\n`);
      } else if (e.type === 'stream_warning') {
        multi.log(`warning: ${e.message}\n`);
      }
    },
    stop: () => multi.stop(),
  };
}
