/**
 * Reconciliation of callback streams (gateway endpoints with `reconcile`): lists the objects the
 * declared REST resource holds (its auth, pagination and records reused by planning that stream
 * of the REST source, nothing landed from it), compares their ids and update times in the
 * window with what callbacks brought (the endpoint's event log, plus earlier fills), and appends
 * each missing or stale object to the endpoint's reconcile log (`<endpoint>-reconcile`), the
 * event id `<object id>@<updated>` so a second fill of the same version is a duplicate. The
 * lander lands those events into the same stream's raw and bronze, marked `dip_filled_by:
 * reconcile`. The report (expected, received, missing, late, filled) is kept in the catalog as
 * a state-only commit under the stream `_reconcile.<endpoint>` (the last 50).
 */
import { readFile } from 'node:fs/promises';
import type { SourceConfig } from '../config/schema.js';
import { DipError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { parseDuration } from '../core/time.js';
import type { EventLog } from '../eventlog/types.js';
import type { Lake } from '../lake/lake.js';
import { Alerter } from './alerts.js';
import { pipelineNamed } from '../pipeline/pipelines.js';
import { openEndpointLog } from '../sources/gateway/log.js';
import {
  FILLED_FIELD,
  fillLogName,
  type GatewayEndpointConfig,
  type GatewaySourceConfig,
  REJECTED_HEADER,
} from '../sources/gateway/spec.js';
import { openSource } from '../sources/open.js';
import { fieldOf } from '../sources/rest/select.js';

export interface ReconcileReport {
  id: string;
  pipeline: string;
  source: string;
  stream: string;
  /** The window compared, by update time (ISO 8601). */
  from: string;
  to: string;
  /** Objects the API lists in the window. */
  expected: number;
  /** Of those, objects some callback brought (in their listed version or a newer one). */
  received: number;
  /** Objects no callback brought. */
  missing: number;
  /** Objects whose callbacks brought only an older version than the API lists. */
  late: number;
  /** Missing and late objects landed by this reconcile (not filled before). */
  filled: number;
  /** (missing + late) / expected. */
  miss_rate: number;
  threshold: number;
  alert: boolean;
  /** The first 1000 missing ids (sorted). */
  missing_ids: string[];
  /** The first 1000 late ids (sorted). */
  late_ids: string[];
  at: string;
}

export interface ReconcileOptions {
  /** Overrides the endpoint's window (a duration, counted back from `to`). */
  window?: string;
  /** Window bounds as ISO 8601 times (default: `to` now, `from` = to − window). */
  from?: string;
  to?: string;
}

const REPORTS_KEPT = 50;
const MAX_IDS = 1000;
const reportStream = (stream: string) => `_reconcile.${stream}`;

interface Target {
  source: string;
  stream: string;
  gateway: GatewaySourceConfig;
  endpoint: GatewayEndpointConfig;
  rest: SourceConfig;
}

/** Every stream of the pipeline with `reconcile` declared, or the one named. */
function targets(lake: Lake, pipeline: string, stream?: string): Target[] {
  const p = pipelineNamed(lake.project, pipeline);
  const out: Target[] = [];
  for (const [source, config] of Object.entries(p.sources)) {
    if (config.type !== 'gateway') continue;
    const gateway = config as GatewaySourceConfig;
    for (const [name, endpoint] of Object.entries(gateway.endpoints)) {
      const r = endpoint.reconcile;
      if (!r || (stream && stream !== name)) continue;
      const rest = p.sources[r.source];
      if (rest?.type !== 'rest')
        throw new DipError(
          'config',
          `pipelines.${pipeline}.sources.${source}.endpoints.${name}.reconcile.source: "${r.source}" is not a REST source of pipeline ${pipeline}`,
        );
      out.push({ source, stream: name, gateway, endpoint, rest });
    }
  }
  if (stream && !out.length)
    throw new DipError('not_found', `no gateway stream "${stream}" with reconcile in pipeline ${pipeline}`);
  return out;
}

const text = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
const timeMs = (v: unknown): number | undefined => {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
};

/** Runs the reconcile of each chosen stream and records its report. */
export async function reconcile(
  lake: Lake,
  pipeline: string,
  stream?: string,
  options: ReconcileOptions = {},
): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  for (const t of targets(lake, pipeline, stream)) reports.push(await reconcileOne(lake, pipeline, t, options));
  return reports;
}

/** The scheduled `reconcile.<source>` task: every reconciled endpoint of that gateway source. */
export async function reconcileSource(lake: Lake, pipeline: string, source: string): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  for (const t of targets(lake, pipeline).filter((x) => x.source === source))
    reports.push(await reconcileOne(lake, pipeline, t, {}));
  return reports;
}

/** The reports recorded for the chosen streams, newest first. */
export async function reconcileReports(lake: Lake, pipeline: string, stream?: string): Promise<ReconcileReport[]> {
  const out: ReconcileReport[] = [];
  for (const t of targets(lake, pipeline, stream)) {
    const kept = (await lake.catalog.getState(pipeline, t.source, reportStream(t.stream))) as
      | { reports?: ReconcileReport[] }
      | undefined
      | null;
    out.push(...(kept?.reports ?? []));
  }
  return out.sort((a, b) => (a.at < b.at ? 1 : -1));
}

/** For `/metrics`: per callback stream, its newest report's counts and how many kept reports passed the threshold. */
export async function reconcileGauges(
  lake: Lake,
): Promise<{ pipeline: string; stream: string; count: string; value: number }[]> {
  const out: { pipeline: string; stream: string; count: string; value: number }[] = [];
  for (const pipeline of Object.keys(lake.project.config.pipelines)) {
    for (const s of await lake.catalog.listStates(pipeline)) {
      if (!s.stream.startsWith('_reconcile.')) continue;
      const reports = (s.value as { reports?: ReconcileReport[] } | null)?.reports ?? [];
      const newest = reports[0];
      if (!newest) continue;
      const stream = `${s.source}.${newest.stream}`;
      for (const count of ['expected', 'missing', 'late', 'filled'] as const)
        out.push({ pipeline, stream, count, value: newest[count] });
      out.push({ pipeline, stream, count: 'over_threshold', value: reports.filter((r) => r.alert).length });
    }
  }
  return out;
}

async function reconcileOne(lake: Lake, pipeline: string, t: Target, o: ReconcileOptions): Promise<ReconcileReport> {
  const r = t.endpoint.reconcile as NonNullable<GatewayEndpointConfig['reconcile']>;
  const windowText = o.window ?? r.window;
  const windowMs = parseDuration(windowText);
  if (windowMs === undefined)
    throw new DipError('input', `--window ${windowText}: expected a duration such as 1h or 7d`);
  const toMs = o.to ? timeMs(o.to) : Date.now();
  const fromMs = o.from ? timeMs(o.from) : toMs === undefined ? undefined : toMs - windowMs;
  if (toMs === undefined || fromMs === undefined)
    throw new DipError('input', `reconcile window ${o.from ?? ''}..${o.to ?? ''}: expected ISO 8601 times`);

  // 1. What the API lists in the window.
  const listed = new Map<string, { updated: number | undefined; record: Record<string, unknown> }>();
  const source = await openSource(t.rest, lake.project.dir, r.source);
  try {
    const spec = (await source.streams()).find((s) => s.name === r.resource);
    if (!spec) throw new DipError('config', `REST source ${r.source} has no resource "${r.resource}"`);
    const ac = new AbortController();
    const plan = await source.plan(spec, {
      pipeline,
      source: r.source,
      ledger: new Map(),
      state: undefined,
      signal: ac.signal,
      sourceState: { load: async () => undefined, save: async () => {} },
      retryFailed: false,
      stagingDir: await lake.storage.stagingDir(),
      runId: newId('reconcile'),
      follow: false,
      streams: [r.resource],
    });
    for await (const unit of plan.units) {
      try {
        if (!unit.input) continue;
        const body = await readFile(unit.input.path, 'utf8');
        for (const line of body.split('\n')) {
          if (!line.trim()) continue;
          const record = JSON.parse(line) as Record<string, unknown>;
          const id = text(fieldOf(record, r.id));
          if (id === undefined) continue;
          const updated = r.updated ? timeMs(fieldOf(record, r.updated)) : undefined;
          if (updated !== undefined && (updated < fromMs || updated > toMs)) continue;
          listed.set(id, { updated, record });
        }
      } finally {
        await unit.dispose?.();
      }
    }
  } finally {
    await source.close?.();
  }

  // 2. What callbacks brought (and earlier fills): newest update time per object id.
  const seen = new Map<string, number>();
  const note = (id: string | undefined, updated: number | undefined) => {
    if (id === undefined) return;
    const before = seen.get(id);
    if (before === undefined || (updated ?? 0) > before) seen.set(id, updated ?? 0);
  };
  const target = { baseDir: lake.project.dir, pipeline, source: t.source };
  const main = await openEndpointLog(t.gateway, { ...target, endpoint: t.stream, mode: 'reader' });
  try {
    await scan(main, (e) =>
      note(text(fieldOf(e, r.callback_id)), r.callback_updated ? timeMs(fieldOf(e, r.callback_updated)) : undefined),
    );
  } finally {
    await main.close();
  }
  const fill = await openEndpointLog(t.gateway, { ...target, endpoint: fillLogName(t.stream), mode: 'writer' });
  try {
    await scan(fill, (e) => {
      const obj = fieldOf(e, r.fill_path) as Record<string, unknown> | undefined;
      if (obj) note(text(fieldOf(obj, r.id)), r.updated ? timeMs(fieldOf(obj, r.updated)) : undefined);
    });

    // 3. Compare, fill, report.
    const missing: string[] = [];
    const late: string[] = [];
    for (const [id, l] of listed) {
      const got = seen.get(id);
      if (got === undefined) missing.push(id);
      else if (l.updated !== undefined && r.callback_updated && got < l.updated) late.push(id);
    }
    missing.sort();
    late.sort();
    const reportId = newId('rc');
    const toFill = [...missing, ...late].map((id) => {
      const l = listed.get(id) as { updated: number | undefined; record: Record<string, unknown> };
      const event: Record<string, unknown> = { [FILLED_FIELD]: 'reconcile', dip_reconcile_id: reportId };
      const parts = r.fill_path.split('.');
      let at = event;
      for (const part of parts.slice(0, -1)) at = at[part] = {} as Record<string, unknown>;
      at[parts[parts.length - 1] as string] = l.record;
      return { id: `${id}@${l.updated ?? ''}`, data: Buffer.from(JSON.stringify(event)) };
    });
    const appended = toFill.length ? await fill.append(toFill) : [];
    const filled = appended.filter((a) => !a.duplicate).length;
    const expected = listed.size;
    const missRate = expected ? (missing.length + late.length) / expected : 0;
    const report: ReconcileReport = {
      id: reportId,
      pipeline,
      source: t.source,
      stream: t.stream,
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      expected,
      received: expected - missing.length,
      missing: missing.length,
      late: late.length,
      filled,
      miss_rate: missRate,
      threshold: r.max_miss_rate,
      alert: missRate > r.max_miss_rate,
      // The ids, up to MAX_IDS each (the counts are always exact).
      missing_ids: missing.slice(0, MAX_IDS),
      late_ids: late.slice(0, MAX_IDS),
      at: new Date().toISOString(),
    };
    const key = { pipeline, source: t.source, stream: reportStream(t.stream) };
    const kept = (await lake.catalog.getState(key.pipeline, key.source, key.stream)) as
      | { reports?: ReconcileReport[] }
      | undefined
      | null;
    await lake.catalog.commit({
      runId: reportId,
      operation: 'state',
      tables: [],
      state: [{ ...key, value: { reports: [report, ...(kept?.reports ?? [])].slice(0, REPORTS_KEPT) } }],
      summary: { ...key, reconcile: { expected, missing: missing.length, late: late.length, filled } },
    });
    if (report.alert) await alert(lake, report);
    return report;
  } finally {
    await fill.close();
  }
}

/** A miss rate past the threshold goes to the project's alert channels as a quality alert. */
async function alert(lake: Lake, r: ReconcileReport): Promise<void> {
  const alerter = Alerter.create(lake.project.config.alerts, lake.catalog.orchestration.alertLedger(), {
    baseDir: lake.project.dir,
  });
  try {
    await alerter.send({
      kind: 'quality',
      key: `reconcile:${r.pipeline}:${r.source}.${r.stream}`,
      pipeline: r.pipeline,
      title: `Reconcile: ${r.source}.${r.stream} missed ${(r.miss_rate * 100).toFixed(2)}% of callbacks`,
      text: `${r.missing} missing and ${r.late} late of ${r.expected} objects between ${r.from} and ${r.to} (threshold ${(r.threshold * 100).toFixed(2)}%); ${r.filled} filled`,
      fields: {
        stream: `${r.source}.${r.stream}`,
        expected: String(r.expected),
        missing: String(r.missing),
        late: String(r.late),
        filled: String(r.filled),
        report: r.id,
      },
      at: new Date(r.at),
    });
  } finally {
    await alerter.close();
  }
}

/** Every retained event of a log, parsed (events the gateway refused are skipped). */
async function scan(log: EventLog, each: (event: Record<string, unknown>) => void): Promise<void> {
  let next = (await log.bounds()).start;
  for (;;) {
    const events = await log.read(next, { maxEvents: 10_000 });
    if (!events.length) return;
    for (const e of events) {
      next = e.offset + 1;
      if (e.headers?.[REJECTED_HEADER] !== undefined) continue;
      try {
        const v = JSON.parse(Buffer.from(e.data).toString('utf8')) as unknown;
        if (v && typeof v === 'object' && !Array.isArray(v)) each(v as Record<string, unknown>);
      } catch {
        // not JSON: cannot name an object
      }
    }
  }
}
