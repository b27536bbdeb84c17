/**
 * Runs one task of a DAG: ingest a source (its config rendered for the run's interval), build a
 * silver table, a shell command or a TS/JS function. A task that left streams failed throws a
 * DipError of the first failure's kind, so retries follow the error (transient retries, a
 * quality or config failure does not).
 */
import type { RunStats } from '../catalog/types.js';
import { resolveSecrets, SecretRegistry, secretRegistry } from '../config/secrets.js';
import { DipError, EXIT_CODES, errorMessage, type ErrorKind } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { buildGoldModel, buildSilverTable, ingestSources, type TaskWork } from '../pipeline/run.js';
import type { RunEventSink } from '../pipeline/events.js';
import { pipelineNamed } from '../pipeline/pipelines.js';
import { runModuleTask, runShellTask } from './custom-tasks.js';
import type { TaskDef } from '../config/task-graph.js';
import { renderIntervalTemplates } from '../core/interval-templates.js';
import type { Interval } from './schedule.js';
import { withSpan } from '../observe/trace.js';

export interface TaskRunContext {
  runId: string;
  pipeline: string;
  interval: Interval | null;
  attempt: number;
  signal: AbortSignal;
  log: (line: string) => void;
  onEvent?: RunEventSink;
  now?: Date;
}

export interface TaskResult {
  rows: number;
  stats: RunStats;
}

/**
 * Every line of a task's log (stored tail and streamed output) and its error are redacted like
 * everything else: every registered secret in any encoding, and the values of the task's own
 * declared `env:` references.
 */
/** Runs one task attempt, traced as a `dip.task` span. */
export function runTask(lake: Lake, task: TaskDef, ctx: TaskRunContext): Promise<TaskResult> {
  return withSpan(
    'dip.task',
    { 'dip.run_id': ctx.runId, 'dip.pipeline': ctx.pipeline, 'dip.task': task.name, 'dip.attempt': ctx.attempt },
    () => runTaskUntraced(lake, task, ctx),
  );
}

async function runTaskUntraced(lake: Lake, task: TaskDef, ctx: TaskRunContext): Promise<TaskResult> {
  const own = new SecretRegistry();
  const redact = (text: string): string => secretRegistry.redact(own.redact(text));
  const log = (line: string): void => ctx.log(redact(line));
  try {
    // Resolved into a registry of the task's own: a value passed through (a host name) is masked in this log only.
    const env =
      task.run.kind === 'shell' ? resolveTaskEnv(task.run.env, lake.project.dir, own, `task ${task.name}`) : undefined;
    return await runTaskKind(lake, task, { ...ctx, log }, env);
  } catch (err) {
    redactError(err, redact);
    throw err;
  }
}

function resolveTaskEnv(
  env: Record<string, string>,
  baseDir: string,
  registry: SecretRegistry,
  where: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    try {
      out[name] = resolveSecrets(value, { baseDir, registry });
    } catch (err) {
      throw new DipError('config', `${where}: env.${name}: ${errorMessage(err)}`, { cause: err });
    }
  }
  return out;
}

/** Masks secrets in an error's message and the messages of its causes, in place (kind and class kept for retries). */
function redactError(err: unknown, redact: (text: string) => string): void {
  let cur: unknown = err;
  for (let depth = 0; cur instanceof Error && depth < 6; depth++) {
    cur.message = redact(cur.message);
    if (cur.stack !== undefined) cur.stack = redact(cur.stack);
    cur = cur.cause;
  }
}

async function runTaskKind(
  lake: Lake,
  task: TaskDef,
  ctx: TaskRunContext,
  env: Record<string, string> | undefined,
): Promise<TaskResult> {
  const options = {
    runId: ctx.runId,
    signal: ctx.signal,
    onEvent: ctx.onEvent ?? eventsToLog(ctx.log),
    ...(ctx.now ? { now: ctx.now } : {}),
  };
  switch (task.run.kind) {
    case 'ingest': {
      const source = pipelineNamed(lake.project, ctx.pipeline).sources[task.run.source];
      if (!source) throw new DipError('config', `pipeline ${ctx.pipeline} has no source ${task.run.source}`);
      const rendered = renderIntervalTemplates(
        source,
        ctx.interval,
        `pipelines.${ctx.pipeline}.sources.${task.run.source}`,
      );
      return outcome(await ingestSources(lake, ctx.pipeline, { [task.run.source]: rendered }, options), task.name);
    }
    case 'reconcile': {
      // Fills what callbacks missed (landed by ingest.<source>, which runs next) and alerts past
      // the threshold; the reports are in the catalog (`dip reconcile --reports`).
      const { reconcileSource } = await import('./reconcile.js');
      await reconcileSource(lake, ctx.pipeline, task.run.source);
      return { rows: 0, stats: { streams: {} } };
    }
    case 'silver':
      return outcome(await buildSilverTable(lake, ctx.pipeline, task.run.table, options), task.name);
    case 'gold':
      return outcome(await buildGoldModel(lake, ctx.pipeline, task.run.model, options), task.name);
    case 'load': {
      const { loadDestinationTable } = await import('../destinations/load.js');
      const r = await loadDestinationTable(lake, task.run.destination, task.run.table, task.run.target);
      ctx.log(
        `load ${r.table} → ${task.run.destination} ${r.target} (${r.mode}): ${r.loaded ? `${r.rows} rows, ${r.deleted} deleted, ${r.bytes} bytes` : 'nothing new'}, lake commit ${r.commit ?? 'none'}`,
      );
      return { rows: r.rows, stats: { streams: {} } };
    }
    case 'shell':
    case 'module': {
      const custom = {
        runId: ctx.runId,
        task: task.name,
        pipeline: ctx.pipeline,
        interval: ctx.interval,
        attempt: ctx.attempt,
        projectDir: lake.project.dir,
        signal: ctx.signal,
        log: ctx.log,
        ...(env ? { env } : {}),
      };
      if (task.run.kind === 'shell') await runShellTask(task.run.command, custom);
      else await runModuleTask(task.run.module, task.run.export, custom);
      return { rows: 0, stats: { streams: {} } };
    }
  }
}

function outcome(work: TaskWork, task: string): TaskResult {
  const rows = Object.values(work.stats.streams).reduce((n, s) => n + s.rows, 0);
  const first = work.errors[0];
  if (!first) return { rows, stats: work.stats };
  // Retry when any failure may pass (a lost commit race included: another run wrote the table first).
  const transient = work.errors.find(
    (e) =>
      e.exitCode === EXIT_CODES.transient || e.exitCode === EXIT_CODES.internal || e.exitCode === EXIT_CODES.conflict,
  );
  const kind = transient ? 'transient' : kindOf(first.exitCode);
  throw new DipError(kind, `${work.errors.map((e) => `${e.stream}: ${e.message}`).join('; ')}`, {
    details: { stats: work.stats, errors: work.errors },
  });
}

function kindOf(exitCode: number): ErrorKind {
  const found = (Object.entries(EXIT_CODES) as [ErrorKind, number][]).find(([, code]) => code === exitCode);
  return found ? found[0] : 'internal';
}

function eventsToLog(log: (line: string) => void): RunEventSink {
  return (event) => {
    const { type, ...rest } = event as { type: string } & Record<string, unknown>;
    if (type === 'unit_progress') return;
    log(`${type} ${JSON.stringify(rest)}`);
  };
}
