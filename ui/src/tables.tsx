/** Tables: every zone's tables with freshness against the SLA; one table: schema versions (diff), time travel, sample rows, quality history, quarantine and replay. */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { type Column, enc, get, post, type Table } from './api.js';
import { ago, bytes, count, sqlIdent, sqlLiteral, time } from './format.js';
import { Err, Status, usePoll } from './runs.js';

export function TablesPage() {
  const [data, error] = usePoll(
    () => Promise.all([get<{ tables: Table[] }>('/tables'), get<{ sla: Record<string, number> }>('/tables/sla')]),
    [],
    5000,
  );
  const [tables, sla] = data ? [data[0].tables, data[1].sla] : [[], {}];
  return (
    <section>
      <h1>Tables</h1>
      <Err error={error} />
      <table class="tables">
        <caption>{tables.length} table(s) in every zone</caption>
        <thead>
          <tr>
            <th scope="col">Table</th>
            <th scope="col">Zone</th>
            <th scope="col">Rows</th>
            <th scope="col">Files</th>
            <th scope="col">Size</th>
            <th scope="col">Schema</th>
            <th scope="col">Last commit</th>
            <th scope="col">Freshness (SLA)</th>
          </tr>
        </thead>
        <tbody>
          {tables.map((t) => {
            const limit = sla[t.name];
            const late = limit !== undefined && t.freshness_seconds !== null && t.freshness_seconds > limit;
            return (
              <tr key={t.name} data-table={t.name}>
                <td>
                  <a href={`#/tables/${enc(t.name)}`}>{t.name}</a>
                </td>
                <td>{t.zone}</td>
                <td class="num" data-rows={t.rows}>
                  {count(t.rows)}
                </td>
                <td class="num">{t.files}</td>
                <td class="num">{bytes(t.bytes)}</td>
                <td>v{t.schema_version ?? '–'}</td>
                <td>{time(t.last_commit_at)}</td>
                <td class={late ? 'late' : ''}>
                  {ago(t.freshness_seconds)}
                  {limit !== undefined ? ` (SLA ${ago(limit)}${late ? ', late' : ''})` : ''}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

interface Versions {
  versions: { version: number; commit_id: number; columns: Column[] }[];
  commits: { id: number; run_id: string | null; operation: string; committed_at: string }[];
}

interface QualityReport {
  status: string;
  rows: number;
  run_id: string;
  created_at: string;
  report: { checks: { name: string; failed: number; evaluated: number; passed: boolean; severity: string }[] };
}

export function TablePage(props: { name: string }) {
  const name = props.name;
  const zone = name.split('.')[0] ?? '';
  const [table, error] = usePoll(() => get<Table & { columns: Column[] }>(`/tables/${enc(name)}`), [name]);
  const [versions] = usePoll(() => get<Versions>(`/tables/${enc(name)}/versions`), [name]);
  return (
    <section>
      <h1>{name}</h1>
      <Err error={error} />
      {table ? (
        <p>
          {count(table.rows)} rows · {table.files} file(s) · {bytes(table.bytes)} · schema v{table.schema_version ?? '–'} · last commit {time(table.last_commit_at)}
        </p>
      ) : null}
      {versions ? <SchemaVersions versions={versions} /> : null}
      {zone === 'silver' || zone === 'gold' ? <Sample name={name} commits={versions?.commits ?? []} /> : null}
      {zone === 'silver' ? <Quality name={name} /> : null}
      {zone === 'silver' ? <Quarantine name={name} primaryKey={table?.primary_key ?? []} /> : null}
    </section>
  );
}

function SchemaVersions(props: { versions: Versions }) {
  const vs = props.versions.versions;
  const [a, setA] = useState(vs.length > 1 ? vs.length - 2 : 0);
  const [b, setB] = useState(vs.length - 1);
  const va = vs[a];
  const vb = vs[b];
  // A column's type plus any other attribute (nullability, …) that changed between versions.
  const typeOf = (cols: Column[] | undefined) =>
    new Map(
      (cols ?? []).map((c) => {
        const { name: _n, type, ...rest } = c;
        return [c.name, Object.keys(rest).length ? `${type} ${JSON.stringify(rest)}` : type];
      }),
    );
  const ma = typeOf(va?.columns);
  const mb = typeOf(vb?.columns);
  const added = [...mb.keys()].filter((c) => !ma.has(c));
  const removed = [...ma.keys()].filter((c) => !mb.has(c));
  const changed = [...mb.keys()].filter((c) => ma.has(c) && ma.get(c) !== mb.get(c));
  const pick = (value: number, set: (n: number) => void, label: string) => (
    <label>
      {label}
      <select value={value} onChange={(e) => set(Number(e.currentTarget.value))}>
        {vs.map((v, i) => (
          <option key={v.version} value={i}>
            v{v.version} (commit {v.commit_id})
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <section aria-label="Schema versions">
      <h2>Schema versions ({vs.length})</h2>
      {vs.length > 1 ? (
        <div class="filters">
          {pick(a, setA, 'Compare')}
          {pick(b, setB, 'with')}
        </div>
      ) : null}
      <ul class="diff">
        {added.map((c) => (
          <li key={c} class="added">
            + {c} {mb.get(c)}
          </li>
        ))}
        {removed.map((c) => (
          <li key={c} class="removed">
            − {c} {ma.get(c)}
          </li>
        ))}
        {changed.map((c) => (
          <li key={c}>
            ~ {c}: {ma.get(c)} → {mb.get(c)}
          </li>
        ))}
        {vs.length > 1 && !added.length && !removed.length && !changed.length ? <li>no difference</li> : null}
      </ul>
      <details>
        <summary>Columns of v{vb?.version}</summary>
        <ul>
          {(vb?.columns ?? []).map((c) => (
            <li key={c.name}>
              {c.name} <code>{c.type}</code>
            </li>
          ))}
        </ul>
      </details>
    </section>
  );
}

function Sample(props: { name: string; commits: Versions['commits'] }) {
  const [commit, setCommit] = useState('');
  const [rows, error] = usePoll(
    () =>
      get<{ columns: { name: string }[]; rows: Record<string, unknown>[]; commit: number | null }>(
        `/tables/${enc(props.name)}/rows?limit=10${commit ? `&commit=${commit}` : ''}`,
      ),
    [props.name, commit],
  );
  const cols = (rows?.columns ?? []).map((c) => c.name).filter((c) => !c.startsWith('_dip_'));
  return (
    <section aria-label="Sample rows">
      <h2>Sample rows {rows?.commit ? `at commit ${rows.commit}` : ''}</h2>
      <label>
        Time travel to commit
        <select value={commit} onChange={(e) => setCommit(e.currentTarget.value)}>
          <option value="">latest</option>
          {props.commits.map((c) => (
            <option key={c.id} value={c.id}>
              {c.id} · {c.operation} · {time(c.committed_at)}
            </option>
          ))}
        </select>
      </label>
      <Err error={error} />
      <div class="scroll">
        <table>
          <thead>
            <tr>
              {cols.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {(rows?.rows ?? []).map((r, i) => (
              <tr key={i}>
                {cols.map((c) => (
                  <td key={c}>{cell(r[c])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '∅';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function Quality(props: { name: string }) {
  const [data, error] = usePoll(
    () => get<{ reports: QualityReport[] }>(`/tables/${enc(props.name)}/quality?runs=50`),
    [props.name],
  );
  const chart = useRef<HTMLDivElement>(null);
  const reports = [...(data?.reports ?? [])].reverse();
  const latest = data?.reports[0];
  useEffect(() => {
    const el = chart.current;
    if (!el || reports.length === 0) return;
    const checks = [...new Set(reports.flatMap((r) => r.report.checks.map((c) => c.name)))];
    const xs = reports.map((_, i) => i + 1);
    const series = checks.map((name) => reports.map((r) => r.report.checks.find((c) => c.name === name)?.failed ?? null));
    const palette = ['#b3261e', '#1d4ed8', '#0f766e', '#a16207', '#7e22ce', '#be185d'];
    const plot = new uPlot(
      {
        width: Math.min(760, el.clientWidth || 760),
        height: 240,
        scales: { x: { time: false } },
        axes: [{ label: 'report (oldest → newest)' }, { label: 'failed rows' }],
        series: [{ label: 'report' }, ...checks.map((c, i) => ({ label: c, stroke: palette[i % palette.length], width: 2, points: { show: true } }))],
      },
      [xs, ...series] as uPlot.AlignedData,
      el,
    );
    return () => plot.destroy();
  }, [data]);
  return (
    <section aria-label="Quality">
      <h2>Quality history</h2>
      <Err error={error} />
      <div ref={chart} class="chart" role="img" aria-label={`Failed rows per check over the last ${reports.length} quality report(s) of ${props.name}`} />
      {latest ? (
        <table class="quality">
          <caption>
            Latest report: <Status status={latest.status} /> over {count(latest.rows)} row(s), run {latest.run_id}
          </caption>
          <thead>
            <tr>
              <th scope="col">Check</th>
              <th scope="col">Severity</th>
              <th scope="col">Evaluated</th>
              <th scope="col">Failed</th>
              <th scope="col">Passed</th>
            </tr>
          </thead>
          <tbody>
            {latest.report.checks.map((c) => (
              <tr key={c.name} data-check={c.name}>
                <td>{c.name}</td>
                <td>{c.severity}</td>
                <td class="num">{c.evaluated}</td>
                <td class="num" data-failed={c.failed}>
                  {c.failed}
                </td>
                <td>{c.passed ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

interface Replay {
  input_rows: number;
  still_quarantined: number;
  rows: number;
}

function Quarantine(props: { name: string; primaryKey: string[] }) {
  const [data, error, reload] = usePoll(
    () => get<{ summary: { check: string; rows: number }[]; rows: Record<string, unknown>[] }>(`/quarantine?table=${enc(props.name)}&limit=50`),
    [props.name],
  );
  const [result, setResult] = useState<string | null>(null);
  const [replayError, setReplayError] = useState<string | null>(null);
  const replay = (row: Record<string, unknown>) => {
    const where = props.primaryKey.map((k) => `${sqlIdent(k)} = ${sqlLiteral(row[k])}`).join(' AND ');
    setReplayError(null);
    post<Replay>(`/tables/${enc(props.name)}/quarantine/replay`, where ? { where } : {}).then(
      (r) => {
        setResult(`Replayed ${r.input_rows} row(s): ${r.input_rows - r.still_quarantined} passed, ${r.still_quarantined} still quarantined; ${props.name} holds ${r.rows} row(s)`);
        reload();
      },
      (e: unknown) => setReplayError(e instanceof Error ? e.message : String(e)),
    );
  };
  const rows = data?.rows ?? [];
  const cols = rows[0] ? Object.keys(rows[0]).filter((c) => !c.startsWith('_dip_')) : [];
  return (
    <section aria-label="Quarantine">
      <h2>Quarantine</h2>
      <Err error={error} />
      <p>{(data?.summary ?? []).map((s) => `${s.check}: ${s.rows}`).join(' · ') || 'no quarantined rows'}</p>
      {result ? <p role="status">{result}</p> : null}
      <Err error={replayError} />
      {rows.length ? (
        <div class="scroll">
          <table class="quarantine">
            <thead>
              <tr>
                <th scope="col">Replay</th>
                {cols.map((c) => (
                  <th scope="col" key={c}>
                    {c}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => (
                <tr key={i}>
                  <td>
                    <button type="button" class="small" disabled={props.primaryKey.length === 0} onClick={() => replay(r)}>
                      Replay row {props.primaryKey.map((k) => cell(r[k])).join(', ')}
                    </button>
                  </td>
                  {cols.map((c) => (
                    <td key={c}>{cell(r[c])}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
