/** Health: the figures of /metrics (Prometheus text) as tables, with readiness. */
import { get, text } from './api.js';
import { Err, usePoll } from './runs.js';

interface Sample {
  name: string;
  labels: string;
  value: number;
}

export function parseMetrics(body: string): Sample[] {
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m?.[1] && m[3]) out.push({ name: m[1], labels: m[2] ?? '', value: Number(m[3]) });
  }
  return out;
}

const GROUPS: [string, RegExp][] = [
  ['Queue depth', /^dip_queue_depth$/],
  ['Runs', /^dip_runs_total$/],
  ['Task attempts (retries are attempts after the first)', /^dip_task_attempts_total$/],
  ['Errors', /^dip_errors_total$/],
  ['Rows and bytes', /^dip_(rows|bytes)_total$/],
  ['Table freshness (s)', /^dip_table_freshness_seconds$/],
  ['Sources (requests, retries, throttling, CDC lag)', /^dip_(source|http|cdc|request|throttl|worker)/],
];

export function HealthPage() {
  const [data, error] = usePoll(
    () => Promise.all([text('/metrics'), get<{ status: string; catalog: string; scheduler: { ticks: number } }>('/ready').catch((e: Error) => ({ status: e.message, catalog: '?', scheduler: { ticks: 0 } }))]),
    [],
    5000,
  );
  const samples = data ? parseMetrics(data[0]) : [];
  const ready = data?.[1];
  return (
    <section>
      <h1>Health</h1>
      <Err error={error} />
      {ready ? (
        <p>
          Readiness: {ready.status} · catalog {ready.catalog} · scheduler ticks {ready.scheduler.ticks}
        </p>
      ) : null}
      {GROUPS.map(([title, re]) => {
        const rows = samples.filter((s) => re.test(s.name));
        return (
          <section key={title} aria-label={title}>
            <h2>{title}</h2>
            {rows.length ? (
              <table>
                <thead>
                  <tr>
                    <th scope="col">Metric</th>
                    <th scope="col">Labels</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((s) => (
                    <tr key={s.name + s.labels}>
                      <td>{s.name}</td>
                      <td>
                        <code>{s.labels}</code>
                      </td>
                      <td class="num">{s.value}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : (
              <p>Not reported by this server's /metrics.</p>
            )}
          </section>
        );
      })}
    </section>
  );
}
