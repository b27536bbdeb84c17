import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { WARNED_STRICT_EXIT_CODE, runPipeline, type RunResult } from '../../pipeline/run.js';
import { withLake, type GlobalOptions } from '../context.js';
import { formatBytes, formatCount, formatDuration, printJson, renderTable } from '../output.js';
import { pipelineNamed, streamNames } from '../../pipeline/pipelines.js';
import { assertKnown } from '../options.js';
import { progressSink } from '../progress.js';
import { parseInterval } from './orchestrate.js';

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run pipelines: read new inputs, land them in raw and bronze, commit atomically')
    .argument('[pipelines...]', 'pipelines to run (default: all)')
    .option('--stream <names...>', 'only these streams')
    .option('--retry-failed', 'API sources: re-fetch only the requests an earlier run recorded as failed')
    .option(
      '--follow',
      'change-data-capture sources: keep streaming changes until interrupted (default: stop once caught up)',
    )
    .option('--no-silver', 'ingest only; do not build the silver tables afterwards')
    .option('--interval-start <time>', 'data interval start, for sources that use {interval.start} (ISO date or time)')
    .option('--interval-end <time>', 'data interval end (exclusive)')
    .option('--quiet', 'no progress output')
    .option(
      '--strict',
      `a run that only warned (every record of a stream quarantined) exits ${WARNED_STRICT_EXIT_CODE} instead of 0`,
    )
    .action(
      async (
        names: string[],
        opts: {
          stream?: string[];
          quiet?: boolean;
          strict?: boolean;
          retryFailed?: boolean;
          follow?: boolean;
          silver: boolean;
          intervalStart?: string;
          intervalEnd?: string;
        },
        cmd: Command,
      ) => {
        const global = cmd.optsWithGlobals<GlobalOptions>();
        const interval = parseInterval(opts.intervalStart, opts.intervalEnd);
        const results = await withLake(global, async (lake) => {
          const all = Object.keys(lake.project.config.pipelines);
          const chosen = names.length ? names : all;
          assertKnown('pipeline', chosen, all);
          if (opts.stream) {
            const declared = chosen.map((p) => streamNames(pipelineNamed(lake.project, p)));
            // Streams of table patterns are known only once the database is asked.
            if (declared.every((d) => d.complete))
              assertKnown(
                'stream',
                opts.stream,
                declared.flatMap((d) => d.names),
              );
          }
          const progress = progressSink({
            tty: Boolean(process.stderr.isTTY) && !global.json,
            quiet: Boolean(opts.quiet),
          });
          const abort = new AbortController();
          const stop = new AbortController();
          // With --follow the first SIGINT/SIGTERM is the way to stop: streams end at the next
          // transaction boundary with everything read committed (the run succeeds, exit 0). A
          // second signal, or any signal without --follow, interrupts: what is in flight is lost.
          const onSignal = (signal: NodeJS.Signals) => {
            if (opts.follow && !stop.signal.aborted) {
              stop.abort();
              if (!opts.quiet)
                process.stderr.write(
                  `\n${signal}: stopping at the next commit (everything read so far is committed); ${signal} again interrupts\n`,
                );
              return;
            }
            // One more signal after this one gets the default behaviour (the process ends at once).
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
            abort.abort(
              new DipError('interrupted', 'interrupted: the file in flight was not committed; run again to resume'),
            );
          };
          process.on('SIGINT', onSignal);
          process.on('SIGTERM', onSignal);
          const out: RunResult[] = [];
          try {
            for (const name of chosen) {
              out.push(
                await runPipeline(lake, name, {
                  signal: abort.signal,
                  onEvent: progress.sink,
                  retryFailed: Boolean(opts.retryFailed),
                  follow: Boolean(opts.follow),
                  stop: stop.signal,
                  silver: opts.silver,
                  interval,
                  ...(opts.stream ? { streams: opts.stream } : {}),
                }),
              );
            }
          } finally {
            progress.stop();
            process.off('SIGINT', onSignal);
            process.off('SIGTERM', onSignal);
          }
          return out;
        });
        if (global.json) printJson(results);
        else printRunSummary(results);
        const failed = results.find((r) => r.status === 'failed');
        if (failed) process.exitCode = failed.errors[0]?.exitCode ?? 1;
        else if (opts.strict && results.some((r) => r.status === 'warned')) process.exitCode = WARNED_STRICT_EXIT_CODE;
      },
    );
}

export function printRunSummary(results: RunResult[]): void {
  for (const r of results) {
    const rows = Object.entries(r.stats.streams).map(([stream, s]) => [
      stream,
      formatCount(s.files),
      formatCount(s.skippedFiles),
      formatCount(s.rows),
      formatCount(s.quarantined),
      formatBytes(s.bytes),
      formatCount(s.commits),
    ]);
    process.stdout.write(
      `\nrun ${r.runId} · pipeline ${r.pipeline} · ${r.status} in ${formatDuration(r.durationMs)}\n`,
    );
    process.stdout.write(
      `${renderTable(['stream', 'files read', 'unchanged', 'rows', 'quarantined', 'input', 'commits'], rows)}\n`,
    );
    for (const [stream, s] of Object.entries(r.stats.streams)) {
      const m = s.source;
      if (!m || m['requests'] === undefined) continue;
      const parts = [
        `${formatCount(m['requests'] ?? 0)} requests`,
        `${formatCount(m['pages'] ?? 0)} pages`,
        `${formatCount(m['retries'] ?? 0)} retries`,
      ];
      if (m['throttled_ms']) parts.push(`throttled ${formatDuration(m['throttled_ms'])}`);
      if (m['skipped_records']) parts.push(`${formatCount(m['skipped_records'])} records already loaded`);
      if (m['failed_requests']) parts.push(`${formatCount(m['failed_requests'])} failed (dip run --retry-failed)`);
      process.stdout.write(`${stream}: ${parts.join(', ')}\n`);
    }
    for (const s of Object.values(r.stats.streams))
      for (const w of s.warnings ?? []) process.stderr.write(`warning: ${w}\n`);
    for (const e of r.errors)
      process.stderr.write(`\nerror in ${e.stream}: ${e.message}${e.cause ? `\n  cause: ${e.cause}` : ''}\n`);
    for (const w of r.warnings ?? []) process.stderr.write(`\nwarning: ${w}\n`);
    const quarantined = Object.values(r.stats.streams).reduce((n, s) => n + s.quarantined, 0);
    if (quarantined > 0)
      process.stdout.write(
        `\n${formatCount(quarantined)} malformed records went to quarantine; see them with: dip query "select * from quarantine.<table>"\n`,
      );
  }
}
