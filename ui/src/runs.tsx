/** Runs: the list with filters and actions (trigger, backfill with a dry-run preview), and one run: DAG, timeline, attempts, logs. */
import { useEffect, useState } from 'preact/hooks';
import { type Attempt, enc, get, post, type Run, type Task, text } from './api.js';
import { duration, time } from './format.js';
import { Graph } from './graph.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'crashed'];

export function usePoll<T>(load: () => Promise<T>, deps: unknown[], everyMs = 0): [T | undefined, string | null, () => void] {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    const go = () =>
      load()
        .then((d) => live && (setData(d), setError(null)))
        .catch((e: unknown) => live && setError(e instanceof Error ? e.message : String(e)));
    void go();
    const timer = everyMs > 0 ? setInterval(go, everyMs) : undefined;
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [...deps, n]);
  return [data, error, () => setN((x) => x + 1)];
}

export function Status(props: { status: string }) {
  return <span class={`status s-${props.status}`}>{props.status}</span>;
}

export function Err(props: { error: string | null }) {
  return props.error ? (
    <p role="alert" class="error">
      {props.error}
    </p>
  ) : null;
}

export function RunsPage() {
  const [pipeline, setPipeline] = useState('');
  const [status, setStatus] = useState('');
  const [since, setSince] = useState('');
  const [pipelines] = usePoll(() => get<{ pipelines: { name: string }[] }>('/pipelines'), []);
  const q = new URLSearchParams({ limit: '200' });
  if (pipeline) q.set('pipeline', pipeline);
  if (status) q.set('status', status);
  const [runs, error, reload] = usePoll(() => get<{ runs: Run[] }>(`/runs?${q}`), [pipeline, status], 2000);
  const shown = (runs?.runs ?? []).filter((r) => !since || (r.queued_at ?? r.started_at ?? '') >= since);
  const names = pipelines?.pipelines.map((p) => p.name) ?? [];
  return (
    <section>
      <h1>Runs</h1>
      <Actions pipelines={names} onDone={reload} />
      <form class="filters" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <label>
          Pipeline
          <select value={pipeline} onChange={(e) => setPipeline(e.currentTarget.value)}>
            <option value="">all</option>
            {names.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Since
          <input type="date" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
        </label>
      </form>
      <Err error={error} />
      <table class="runs">
        <caption>{shown.length} run(s), newest first</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Pipeline</th>
            <th scope="col">Status</th>
            <th scope="col">Trigger</th>
            <th scope="col">Queued</th>
            <th scope="col">Duration</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={r.id} data-run={r.id}>
              <td>
                <a href={`#/runs/${enc(r.id)}`}>{r.id}</a>
              </td>
              <td>{r.pipeline}</td>
              <td>
                <Status status={r.status} />
              </td>
              <td>{r.trigger}</td>
              <td>{time(r.queued_at as string | null)}</td>
              <td>{duration(r.started_at, r.ended_at)}</td>
              <td class="clip">{r.error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

interface Plan {
  intervals: { start: string; end: string }[];
  skipped: { interval: { start: string; end: string }; status: string }[];
  run_ids: string[];
  dry_run: boolean;
}

function Actions(props: { pipelines: string[]; onDone: () => void }) {
  const [pipeline, setPipeline] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [plan, setPlan] = useState<Plan | null>(null);
  const chosen = pipeline || props.pipelines[0] || '';
  const act = async (f: () => Promise<void>) => {
    setError(null);
    try {
      await f();
      props.onDone();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  const backfill = (dry: boolean) =>
    act(async () => {
      const p = await post<Plan>(`/pipelines/${enc(chosen)}/backfill`, { from, to, dry_run: dry });
      setPlan(p);
      setMessage(dry ? `preview: ${p.intervals.length} interval(s) would run, ${p.skipped.length} skipped` : `backfill queued ${p.run_ids.length} run(s)`);
    });
  return (
    <form class="actions" aria-label="Run actions" onSubmit={(e) => e.preventDefault()}>
      <label>
        Pipeline to run
        <select value={chosen} onChange={(e) => setPipeline(e.currentTarget.value)}>
          {props.pipelines.map((n) => (
            <option key={n}>{n}</option>
          ))}
        </select>
      </label>
      <button
        type="button"
        onClick={() =>
          act(async () => {
            const run = await post<Run>(`/pipelines/${enc(chosen)}/trigger`, {});
            setMessage(`triggered ${run.id}`);
            location.hash = `#/runs/${enc(run.id)}`;
          })
        }
      >
        Trigger run
      </button>
      <fieldset>
        <legend>Backfill</legend>
        <label>
          From
          <input type="date" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </label>
        <label>
          To
          <input type="date" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <button type="button" onClick={() => backfill(true)}>
          Preview
        </button>
        <button type="button" onClick={() => backfill(false)}>
          Backfill
        </button>
      </fieldset>
      {message ? <p role="status">{message}</p> : null}
      {plan?.dry_run ? (
        <ul class="plan">
          {plan.intervals.map((i) => (
            <li key={i.start}>
              {time(i.start)} → {time(i.end)}
            </li>
          ))}
        </ul>
      ) : null}
      <Err error={error} />
    </form>
  );
}

interface RunDetail extends Run {
  tasks: Task[];
  stats: { rows: number; bytes: number };
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'crashed']);

export function RunPage(props: { id: string }) {
  const id = props.id;
  const [run, error, reload] = usePoll(() => get<RunDetail>(`/runs/${enc(id)}`), [id], 1000);
  const [tasks] = usePoll(
    () => get<{ tasks: Task[] }>(`/runs/${enc(id)}/tasks`).catch(() => ({ tasks: [] as Task[] })),
    [id, run?.status],
  );
  const [log, setLog] = useState<{ title: string; text: string } | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  if (!run) return <section><h1>Run {id}</h1><Err error={error} /></section>;
  const list = tasks?.tasks ?? run.tasks;
  const act = (path: string, body?: unknown) => {
    setActionError(null);
    post(path, body).then(reload, (e: unknown) => setActionError(e instanceof Error ? e.message : String(e)));
  };
  const showLog = (task: string, a: Attempt) =>
    text(`/runs/${enc(id)}/tasks/${enc(task)}/log?attempt=${a.attempt}`).then(
      (t) => setLog({ title: `${task}, attempt ${a.attempt} (${a.status})`, text: t }),
      (e: unknown) => setActionError(e instanceof Error ? e.message : String(e)),
    );
  const starts = list.map((t) => (t.started_at ? Date.parse(t.started_at) : Number.NaN)).filter((n) => !Number.isNaN(n));
  const t0 = Math.min(...starts);
  const t1 = Math.max(...list.map((t) => (t.ended_at ? Date.parse(t.ended_at) : t.started_at ? Date.now() : 0)), t0 + 1);
  return (
    <section>
      <h1>
        Run {run.id} <Status status={run.status} />
      </h1>
      <p>
        {run.pipeline} · trigger {run.trigger ?? 'dip run'} · started {time(run.started_at)} · {duration(run.started_at, run.ended_at)} · {run.stats.rows} row(s)
      </p>
      {run.error ? (
        <p class="error" role="alert">
          Error: {run.error}
        </p>
      ) : null}
      <div class="buttons">
        {!TERMINAL.has(run.status) ? (
          <button type="button" onClick={() => act(`/runs/${enc(id)}/cancel`)}>
            Cancel run
          </button>
        ) : null}
        {run.status === 'failed' || run.status === 'crashed' || run.status === 'cancelled' ? (
          <button type="button" onClick={() => act(`/runs/${enc(id)}/rerun`, {})}>
            Re-run from failed
          </button>
        ) : null}
      </div>
      <Err error={actionError} />
      {list.length ? (
        <>
          <h2>DAG</h2>
          <div class="scroll">
            <Graph
              title={`Tasks of run ${run.id}`}
              nodes={list.map((t) => ({ id: t.task, label: t.task, sub: `${t.status} · ${duration(t.started_at, t.ended_at)}`, tone: t.status }))}
              edges={list.flatMap((t) => t.deps.map((d) => ({ from: d, to: t.task })))}
            />
          </div>
          <h2>Timeline</h2>
          <div class="timeline" role="list" aria-label="Task timeline">
            {list.map((t) => {
              const s = t.started_at ? Date.parse(t.started_at) : null;
              const e = t.ended_at ? Date.parse(t.ended_at) : Date.now();
              const left = s === null ? 0 : ((s - t0) / (t1 - t0)) * 100;
              const width = s === null ? 0 : Math.max(0.5, ((e - s) / (t1 - t0)) * 100);
              return (
                <div role="listitem" class="lane" key={t.task}>
                  <span class="lane-name">{t.task}</span>
                  <span class="lane-track">
                    <span class={`bar s-${t.status}`} style={{ left: `${left}%`, width: `${width}%` }} title={`${t.task}: ${t.status}, ${duration(t.started_at, t.ended_at)}`} />
                  </span>
                </div>
              );
            })}
          </div>
          <h2>Tasks and attempts</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Task</th>
                <th scope="col">Status</th>
                <th scope="col">Rows</th>
                <th scope="col">Attempts</th>
                <th scope="col">Error (cause)</th>
              </tr>
            </thead>
            <tbody>
              {list.map((t) => (
                <tr key={t.task} data-task={t.task}>
                  <td>{t.task}</td>
                  <td>
                    <Status status={t.status} />
                  </td>
                  <td>{t.rows}</td>
                  <td>
                    {(t.attempts ?? []).map((a) => (
                      <button type="button" class="small" key={a.attempt} onClick={() => showLog(t.task, a)}>
                        Log of {t.task} attempt {a.attempt}
                      </button>
                    ))}
                  </td>
                  <td class="clip">
                    {t.error ?? ''}
                    {t.cause ? ` (cause: ${String(t.cause)})` : ''}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : (
        <p>A `dip run` run: no tasks.</p>
      )}
      {log ? (
        <section aria-label="Attempt log">
          <h2>Log: {log.title}</h2>
          <pre class="log">{log.text || '(empty)'}</pre>
        </section>
      ) : null}
    </section>
  );
}
