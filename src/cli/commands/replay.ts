import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import type { PipelineConfig } from '../../config/schema.js';
import type { Lake } from '../../lake/lake.js';
import { asRegisteredWriter } from '../../lake/writers.js';
import { replayStream, type ReplayResult } from '../../lake/replay.js';
import { openSource } from '../../sources/open.js';
import { withLake, type GlobalOptions } from '../context.js';
import { pipelineNamed, streamNames } from '../../pipeline/pipelines.js';
import { assertKnown } from '../options.js';
import { formatCount, printJson } from '../output.js';

const DATE = /^\d{4}-\d{2}-\d{2}$/;

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description("rebuild a pipeline's bronze tables from the raw zone alone (no source is read)")
    .argument('<pipeline>', 'pipeline to replay')
    .option('--from <date>', 'first ingest date (YYYY-MM-DD) of raw files to replay')
    .option('--to <date>', 'last ingest date (YYYY-MM-DD) of raw files to replay')
    .option('--stream <names...>', 'only these streams')
    .action(async (name: string, opts: { from?: string; to?: string; stream?: string[] }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      for (const [flag, v] of [
        ['--from', opts.from],
        ['--to', opts.to],
      ] as const) {
        if (v !== undefined && !DATE.test(v))
          throw new DipError('input', `${flag} "${v}": expected a date as YYYY-MM-DD`);
      }
      const results = await withLake(global, async (lake) => {
        const pipeline = pipelineNamed(lake.project, name);
        if (opts.stream && streamNames(pipeline).complete)
          assertKnown('stream', opts.stream, streamNames(pipeline).names);
        // Registered as a running writer, so gc leaves the files it publishes before committing alone.
        return asRegisteredWriter(lake, name, (runId) => replayAll(lake, name, pipeline, opts, runId));
      });
      if (global.json) return printJson(results);
      for (const r of results) {
        process.stdout.write(
          r.commit
            ? `${r.table}: ${r.rawFiles} raw files → ${formatCount(r.rows)} rows (replaced ${r.removedFiles} files) in commit ${r.commit.id}\n`
            : `${r.table}: no raw files in the range; nothing changed\n`,
        );
      }
    });
}

async function replayAll(
  lake: Lake,
  name: string,
  pipeline: PipelineConfig,
  opts: { from?: string; to?: string; stream?: string[] },
  runId: string,
): Promise<ReplayResult[]> {
  const out: ReplayResult[] = [];
  for (const [sourceName, cfg] of Object.entries(pipeline.sources)) {
    const source = await openSource(cfg, lake.project.dir, sourceName);
    try {
      await source.discover?.(new AbortController().signal);
      for (const stream of source.streams()) {
        if (opts.stream && !opts.stream.includes(stream.name)) continue;
        if (!opts.stream && stream.currentState) continue; // change logs are not replayable (replayStream says why)
        out.push(await replayStream(lake, name, sourceName, stream, { from: opts.from, to: opts.to }, runId));
      }
    } finally {
      await source.close();
    }
  }
  return out;
}
