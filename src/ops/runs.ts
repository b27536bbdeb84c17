/** Runs: orchestrated runs listed newest first, and one run with its tasks (and attempts). */
import type {
  OrchestratedRun,
  OrchestratedRunStatus,
  TaskAttemptRecord,
  TaskRunRecord,
} from '../catalog/orchestration-types.js';
import type { RunRecord } from '../catalog/types.js';
import { processAlive } from '../core/process.js';
import type { Lake } from '../lake/lake.js';

export const RUN_STATUSES: readonly OrchestratedRunStatus[] = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'crashed',
];

export interface RunFilter {
  limit: number;
  pipeline?: string | undefined;
  status?: OrchestratedRunStatus | undefined;
  backfillId?: string | undefined;
}

export function listRuns(lake: Lake, filter: RunFilter): Promise<OrchestratedRun[]> {
  return lake.catalog.orchestration.listRuns({
    limit: filter.limit,
    ...(filter.pipeline ? { pipeline: filter.pipeline } : {}),
    ...(filter.status ? { status: filter.status } : {}),
    ...(filter.backfillId ? { backfillId: filter.backfillId } : {}),
  });
}

export type AttemptSummary = Omit<TaskAttemptRecord, 'log'>;

export interface RunDetail {
  /** The orchestrated run, if the id is one. */
  run: OrchestratedRun | undefined;
  /** The run record with its stream stats (every run has one once it started; `dip run` runs only this). */
  record: RunRecord | undefined;
  tasks: TaskRunRecord[];
  /** Every attempt of every task, without their logs (with `attempts: true`). */
  attempts: AttemptSummary[];
}

/** One run by id; undefined when there is none (the caller words the error). */
export async function runDetail(
  lake: Lake,
  id: string,
  options: { attempts?: boolean } = {},
): Promise<RunDetail | undefined> {
  const store = lake.catalog.orchestration;
  let [run, record] = await Promise.all([store.getRun(id), lake.catalog.getRun(id)]);
  if (!run && !record) return undefined;
  if (!run && record?.status === 'running' && (await lake.catalog.markCrashedRuns(processAlive)) > 0)
    // Its process is gone (killed): the run is crashed, with the rows its commits landed.
    record = await lake.catalog.getRun(id);
  if (!run) return { run, record, tasks: [], attempts: [] };
  const [tasks, attempts] = await Promise.all([
    store.listTasks(id),
    options.attempts ? store.listAttempts(id) : Promise.resolve([]),
  ]);
  return { run, record, tasks, attempts: attempts.map(({ log: _log, ...a }) => a) };
}
