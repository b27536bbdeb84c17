/**
 * Pipelines and runs: list and inspect them (GET), trigger, backfill, cancel and re-run (POST);
 * with a token configured every one of them needs it (security.ts). Names from the URL are
 * looked up as own properties only: /pipelines/__proto__ is no pipeline.
 */
import type { FastifyInstance } from 'fastify';
import { DipError } from '../core/errors.js';
import { listRuns as listRunsOp, runDetail } from '../ops/runs.js';
import type { Interval } from '../orchestrate/schedule.js';
import { servedPipeline, type ApiContext } from './context.js';
import {
  backfillBody,
  logQuery,
  pipelineParams,
  rerunBody,
  runParams,
  runsQuery,
  taskLogParams,
  triggerBody,
  type BackfillBody,
  type RerunBody,
  type RouteSchema,
  type RunsQuery,
  type TriggerBody,
} from './schemas.js';
import { dagView, intervalView, plainRunView, runView, statsView, taskView, type RunView } from './views.js';

export function registerRunRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { lake, runtime } = ctx;
  const orchestrator = runtime.orchestrator;
  const store = lake.catalog.orchestration;

  const lastRun = async (pipeline: string): Promise<RunView | null> => {
    const [last] = await lake.catalog.listRuns({ pipeline, limit: 1 });
    if (!last) return null;
    const run = await store.getRun(last.id);
    return run ? runView(run) : plainRunView(last);
  };

  const pipelineView = async (name: string) => {
    const config = servedPipeline(lake, name);
    let tasks: ReturnType<typeof dagView> = [];
    let error: string | null = null;
    try {
      tasks = dagView(orchestrator.dag(name));
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    return {
      name,
      description: config.description ?? null,
      schedule: config.schedule ?? null,
      triggers: config.triggers,
      max_active_runs: config.max_active_runs,
      max_parallel_tasks: config.max_parallel_tasks,
      tasks,
      last_run: await lastRun(name),
      ...(error ? { error } : {}),
    };
  };

  const getPipelines: RouteSchema = {
    summary: 'Pipelines with their task graph and last run',
    tags: ['pipelines'],
    success: { status: 200, description: '{ pipelines: [...] }' },
  };
  app.get('/pipelines', { schema: getPipelines }, async () => ({
    pipelines: await Promise.all(Object.keys(lake.project.config.pipelines).map(pipelineView)),
  }));

  const getPipeline: RouteSchema = {
    summary: 'One pipeline: schedule, tasks with their dependencies, max_active_runs, last run',
    tags: ['pipelines'],
    params: pipelineParams,
    success: { status: 200, description: 'The pipeline' },
  };
  app.get<{ Params: { name: string } }>('/pipelines/:name', { schema: getPipeline }, async (req) =>
    pipelineView(req.params.name),
  );

  const trigger: RouteSchema = {
    summary: 'Queue a run of the pipeline now (optionally for a data interval)',
    tags: ['pipelines'],
    params: pipelineParams,
    body: triggerBody,
    success: { status: 201, description: 'The queued (or already started) run' },
  };
  app.post<{ Params: { name: string }; Body: TriggerBody }>(
    '/pipelines/:name/trigger',
    { schema: trigger },
    async (req, reply) => {
      const interval = bodyInterval(req.body);
      const run = await orchestrator.trigger(req.params.name, { interval, trigger: 'api' });
      return reply.status(201).send(runView(run));
    },
  );

  const backfill: RouteSchema = {
    summary: 'One run per schedule interval in [from, to); intervals already covered are skipped unless rerun',
    tags: ['pipelines'],
    params: pipelineParams,
    body: backfillBody,
    success: {
      status: 201,
      description: 'The plan and the runs it queued',
      alternative: { status: 200, description: 'dry_run: the intervals it would run' },
    },
  };
  app.post<{ Params: { name: string }; Body: BackfillBody }>(
    '/pipelines/:name/backfill',
    { schema: backfill },
    async (req, reply) => {
      const b = req.body;
      const from = parseInstant(b.from, 'from');
      const to = parseInstant(b.to, 'to');
      const dryRun = b.dry_run ?? false;
      const plan = await orchestrator.backfill(req.params.name, {
        from,
        to,
        dryRun,
        parallel: b.parallel ?? 1,
        batch: b.batch ?? 1,
        rerun: b.rerun ?? false,
        ...(b.every ? { every: b.every } : {}),
        maxIntervals: { limit: ctx.maxBackfillIntervals, setting: 'serve.max_backfill_intervals' },
      });
      return reply.status(dryRun ? 200 : 201).send({
        backfill_id: plan.backfillId,
        pipeline: plan.pipeline,
        dry_run: dryRun,
        intervals: plan.intervals.map(intervalView),
        skipped: plan.skipped.map((s) => ({ interval: intervalView(s.interval), status: s.status })),
        run_ids: plan.runIds,
      });
    },
  );

  const listRuns: RouteSchema = {
    summary: 'Orchestrated runs, newest first',
    tags: ['runs'],
    querystring: runsQuery,
    success: { status: 200, description: '{ runs: [...] }' },
  };
  app.get<{ Querystring: RunsQuery }>('/runs', { schema: listRuns }, async (req) => {
    const q = req.query;
    const runs = await listRunsOp(lake, {
      limit: q.limit ?? 50,
      pipeline: q.pipeline,
      status: q.status,
      backfillId: q.backfill_id,
    });
    return { runs: runs.map(runView) };
  });

  const getRun: RouteSchema = {
    summary: 'A run with its tasks and stream stats (also a `dip run` run, which has no tasks)',
    tags: ['runs'],
    params: runParams,
    success: { status: 200, description: 'The run' },
  };
  app.get<{ Params: { id: string } }>('/runs/:id', { schema: getRun }, async (req) => {
    const id = req.params.id;
    const detail = await runDetail(lake, id);
    if (detail?.run)
      return {
        ...runView(detail.run),
        stats: statsView(detail.record?.stats),
        tasks: detail.tasks.map((t) => taskView(t)),
      };
    if (detail?.record) return { ...plainRunView(detail.record), stats: statsView(detail.record.stats), tasks: [] };
    throw noRun(id);
  });

  const getTasks: RouteSchema = {
    summary: "A run's tasks with every attempt",
    tags: ['runs'],
    params: runParams,
    success: { status: 200, description: '{ run_id, tasks: [...] }' },
  };
  app.get<{ Params: { id: string } }>('/runs/:id/tasks', { schema: getTasks }, async (req) => {
    const id = req.params.id;
    if (!(await store.getRun(id))) throw noRun(id);
    const [tasks, attempts] = await Promise.all([store.listTasks(id), store.listAttempts(id)]);
    return { run_id: id, tasks: tasks.map((t) => taskView(t, attempts)) };
  });

  const getLog: RouteSchema = {
    summary: "A task attempt's log (the latest attempt unless ?attempt=N)",
    tags: ['runs'],
    params: taskLogParams,
    querystring: logQuery,
    success: { status: 200, description: 'The log text', contentType: 'text/plain' },
  };
  app.get<{ Params: { id: string; task: string }; Querystring: { attempt?: number } }>(
    '/runs/:id/tasks/:task/log',
    { schema: getLog },
    async (req, reply) => {
      const { id, task } = req.params;
      if (!(await store.getRun(id))) throw noRun(id);
      const tasks = await store.listTasks(id);
      if (!tasks.some((t) => t.task === task))
        throw new DipError(
          'not_found',
          `run ${id} has no task ${task} (tasks: ${tasks.map((t) => t.task).join(', ') || 'none'})`,
        );
      const attempts = await store.listAttempts(id, task);
      const wanted = req.query.attempt ?? attempts.at(-1)?.attempt;
      const attempt = attempts.find((a) => a.attempt === wanted);
      if (!attempt)
        throw new DipError(
          'not_found',
          `${wanted === undefined ? 'no attempt' : `no attempt ${wanted}`} of task ${task} in run ${id} (attempts: ${attempts.map((a) => a.attempt).join(', ') || 'none yet'})`,
        );
      return reply
        .type('text/plain; charset=utf-8')
        .header('x-dip-attempt', String(attempt.attempt))
        .header('x-dip-attempt-status', attempt.status)
        .send(attempt.log);
    },
  );

  const cancel: RouteSchema = {
    summary: 'Cancel a queued or running run: waiting tasks stop at once, running ones at their next heartbeat',
    tags: ['runs'],
    params: runParams,
    success: { status: 200, description: 'The run (cancelled, or running with cancel_requested)' },
  };
  app.post<{ Params: { id: string } }>('/runs/:id/cancel', { schema: cancel }, async (req) =>
    runView(await orchestrator.cancel(req.params.id)),
  );

  const rerun: RouteSchema = {
    summary: 'Run a finished run again: resume from its failed tasks, or every task with all',
    tags: ['runs'],
    params: runParams,
    body: rerunBody,
    success: { status: 200, description: 'The run, queued again' },
  };
  app.post<{ Params: { id: string }; Body: RerunBody }>('/runs/:id/rerun', { schema: rerun }, async (req) => {
    // The ending about to be reset is counted first, whoever ran the run and however soon after it ended.
    await ctx.metrics.observeRun(req.params.id).catch(() => undefined);
    return runView(await orchestrator.rerun(req.params.id, { all: req.body.all ?? false }));
  });
}

function noRun(id: string): DipError {
  return new DipError('not_found', `no run ${id}`);
}

/** `2026-03-01` is UTC midnight; anything else must be an ISO date-time. */
export function parseInstant(text: string, field: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime()))
    throw new DipError(
      'input',
      `${field} "${text}": expected an ISO date or date-time, e.g. 2026-03-01 or 2026-03-01T02:00:00Z`,
    );
  return d;
}

function bodyInterval(body: TriggerBody): Interval | null {
  const { interval_start: start, interval_end: end } = body;
  if (start === undefined && end === undefined) return null;
  if (start === undefined || end === undefined)
    throw new DipError('input', 'interval_start and interval_end go together');
  const interval = { start: parseInstant(start, 'interval_start'), end: parseInstant(end, 'interval_end') };
  if (!(interval.start < interval.end))
    throw new DipError('input', `interval_start (${start}) must be before interval_end (${end})`);
  return interval;
}
