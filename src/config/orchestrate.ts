/**
 * Orchestration settings: a pipeline's schedule, triggers, run limits, task retries and
 * custom tasks; the project's pools, alert channels and the `dip serve` API.
 */
import { z } from 'zod';
import { duration, identifier } from './primitives.js';

export const retrySchema = z
  .strictObject({
    attempts: z.number().int().min(1).max(100).default(3).describe('Attempts in all, the first included'),
    delay: duration.default('10s').describe('Wait before the first retry'),
    backoff: z.number().min(1).max(10).default(2).describe('Each further retry waits this many times longer'),
    max_delay: duration.default('10m').describe('Ceiling of the wait between attempts'),
    jitter: z.boolean().default(true).describe('Randomize each wait (full jitter) so retries do not arrive in step'),
  })
  .describe('Task retries: terminal errors (config, input, schema, quality) are never retried');

export const scheduleSchema = z
  .union([
    z.string().min(1).describe('A cron expression, read in UTC'),
    z
      .strictObject({
        cron: z.string().min(1).optional().describe('Cron expression (5 or 6 fields), e.g. "0 2 * * *"'),
        every: duration.optional().describe('Fixed interval, e.g. 15m or 1h, instead of cron'),
        timezone: z.string().optional().describe('IANA time zone the cron expression is read in (default UTC)'),
        catchup: z
          .enum(['all', 'latest'])
          .default('all')
          .describe('After downtime: run every missed interval (oldest first), or only the newest'),
        start: z
          .string()
          .optional()
          .describe(
            'The first interval starts here (ISO date or time); default: when the schedule is first seen (the first run is the interval in progress then; none that ended before runs)',
          ),
      })
      .refine((s) => (s.cron === undefined) !== (s.every === undefined), 'give exactly one of cron or every'),
  ])
  .describe(
    'When the pipeline runs; each run covers one data interval, passed to sources as {interval.start}/{interval.end}',
  );

export const triggerSchema = z
  .union([
    z.strictObject({
      files: z.string().min(1).describe('Glob (relative to the project) whose new or changed files start a run'),
    }),
    z.strictObject({ pipeline: identifier.describe('Run after every successful run of this pipeline') }),
  ])
  .describe('A data-driven trigger');

const taskCommon = {
  depends_on: z
    .array(z.string())
    .default([])
    .describe('Tasks that must succeed first, besides those implied by inputs/outputs'),
  retries: retrySchema.optional(),
  timeout: duration.optional().describe('Per-attempt timeout'),
  pool: identifier.optional().describe('Pool whose slot the task holds while it runs'),
};

export const taskOverrideSchema = z
  .strictObject(taskCommon)
  .describe('Settings for a derived task (ingest.<source>, silver.<table>)');

export const customTaskSchema = z
  .union([
    z.strictObject({
      ...taskCommon,
      shell: z
        .string()
        .min(1)
        .describe('Shell command; DIP_INTERVAL_START, DIP_INTERVAL_END, DIP_RUN_ID and DIP_TASK are set'),
      env: z
        .record(
          z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits, _)'),
          z.string(),
        )
        .default({})
        .describe(
          'Variables the command sees, e.g. {API_KEY: "${env:API_KEY}"}; besides these only PATH, HOME, LANG, LC_*, TZ, TMPDIR, USER, SHELL and the DIP_* task variables are passed. Referenced values are secrets: masked in the task log',
        ),
      inputs: z.array(z.string()).default([]).describe('Tables read (zone.table); the tasks writing them run first'),
      outputs: z.array(z.string()).default([]).describe('Tables written (zone.table); tasks reading them run after'),
    }),
    z.strictObject({
      ...taskCommon,
      module: z.string().min(1).describe('JS/TS module (relative to the project) exporting the task function'),
      export: z.string().default('default').describe('Export name of the task function'),
      inputs: z.array(z.string()).default([]),
      outputs: z.array(z.string()).default([]),
    }),
  ])
  .describe('A custom task: a shell command or a TS/JS function');

export const pipelineOrchestrationFields = {
  schedule: scheduleSchema.optional(),
  triggers: z.array(triggerSchema).default([]).describe('Data-driven triggers'),
  max_active_runs: z
    .number()
    .int()
    .min(1)
    .default(1)
    .describe('Runs of this pipeline at once; more wait, fresh runs before backfill runs'),
  retries: retrySchema.optional().describe('Default retries of every task of this pipeline'),
  timeout: duration.optional().describe('Default per-attempt timeout of every task'),
  max_parallel_tasks: z.number().int().min(1).default(4).describe('Tasks of one run at once'),
  sla: z
    .record(z.string(), duration)
    .default({})
    .describe('Freshness deadlines: table (zone.table) → maximum age of its last commit before an alert'),
  tasks: z
    .record(z.string(), z.union([customTaskSchema, taskOverrideSchema]))
    .default({})
    .describe('Custom tasks by name, and settings for derived tasks (ingest.<source>, silver.<table>)'),
};

export const poolSchema = z.strictObject({
  slots: z.number().int().min(1).describe('Tasks that may hold the pool at once'),
});

export const alertEvent = z.enum(['failure', 'retry_exhausted', 'sla', 'quality', 'recovery']);

export const alertsSchema = z
  .strictObject({
    on: z.array(alertEvent).default(['failure', 'retry_exhausted', 'sla', 'quality']).describe('Events that alert'),
    dedup: duration.default('1h').describe('One incident (pipeline, task, kind) alerts once in this window'),
    webhooks: z
      .array(
        z.strictObject({
          url: z
            .string()
            .refine(
              (u) => u.includes('${') || URL.canParse(u),
              'expected an http(s) URL or a ${env:NAME} / ${file:path} reference',
            )
            .describe('Slack-compatible incoming webhook; ${env:…} allowed'),
          headers: z.record(z.string(), z.string()).default({}),
        }),
      )
      .default([]),
    email: z
      .strictObject({
        host: z.string(),
        port: z.number().int().min(1).max(65535).default(587),
        secure: z.boolean().default(false).describe('TLS from the start (port 465); otherwise STARTTLS when offered'),
        user: z.string().optional(),
        password: z.string().optional().describe('Use ${env:NAME} or ${file:path}'),
        from: z.string(),
        to: z.array(z.string()).min(1),
      })
      .optional(),
  })
  .describe('Where failures, exhausted retries, SLA breaches and quality failures are reported');

export const serveSchema = z
  .strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8420),
    token: z
      .string()
      .optional()
      .describe(
        'Bearer token every route but /health and /ready needs (and those `public` opens); use ${env:DIP_API_TOKEN}. Required to listen beyond loopback',
      ),
    public: z
      .array(z.enum(['metrics', 'openapi']))
      .optional()
      .describe(
        'Routes open without the token when one is set: metrics (/metrics), openapi (/openapi.json). Default: none',
      ),
    allowed_hosts: z
      .array(z.string().min(1))
      .optional()
      .describe(
        'Names clients use in the Host header besides the listen address and loopback (e.g. a proxy name); other hosts get 421 (DNS rebinding). "*" accepts any',
      ),
    max_backfill_intervals: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Intervals one backfill request to the API may queue (default 1000); more is a 400 naming both'),
    allow_unauthenticated: z
      .boolean()
      .optional()
      .describe(
        'Listen beyond loopback without a token (default false: refused). Only behind a proxy that authenticates',
      ),
    tick: duration.default('5s').describe('How often the scheduler looks for due runs, triggers and SLA breaches'),
    concurrency: z.number().int().min(1).default(4).describe('Tasks this process runs at once (in-process executor)'),
    executor: z
      .enum(['in-process', 'workers'])
      .default('in-process')
      .describe('workers: tasks go to a PostgreSQL queue that `dip worker` processes pull from'),
  })
  .describe('`dip serve`: the scheduler, the REST API and the metrics');

export type RetryConfig = z.infer<typeof retrySchema>;
export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type TriggerConfig = z.infer<typeof triggerSchema>;
export type CustomTaskConfig = z.infer<typeof customTaskSchema>;
export type TaskOverrideConfig = z.infer<typeof taskOverrideSchema>;
export type AlertsConfig = z.infer<typeof alertsSchema>;
export type AlertEvent = z.infer<typeof alertEvent>;
export type ServeConfig = z.infer<typeof serveSchema>;
