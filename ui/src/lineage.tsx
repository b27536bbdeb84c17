/** Lineage: sources → raw → bronze → silver (→ gold) as an interactive graph; selecting a table shows its upstream path. */
import { enc, get } from './api.js';
import { count } from './format.js';
import { Graph } from './graph.js';
import { Err, usePoll } from './runs.js';

interface Lineage {
  nodes: { id: string; kind: string; pipeline: string; rows: number | null }[];
  edges: { from: string; to: string }[];
}

export function upstream(graph: Lineage, id: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>([id]);
  let frontier = [id];
  while (frontier.length) {
    const next: string[] = [];
    for (const n of frontier)
      for (const e of graph.edges)
        if (e.to === n && !seen.has(e.from)) {
          seen.add(e.from);
          out.push(e.from);
          next.push(e.from);
        }
    frontier = next;
  }
  return out;
}

export function LineagePage(props: { focus: string }) {
  const [graph, error] = usePoll(() => get<Lineage>('/lineage'), []);
  const focus = props.focus;
  const path = graph && focus ? upstream(graph, focus) : [];
  const lit = new Set([focus, ...path]);
  return (
    <section>
      <h1>Lineage</h1>
      <Err error={error} />
      <p>Select a table to follow it to its sources.</p>
      {graph ? (
        <div class="scroll">
          <Graph
            title="Table lineage"
            nodes={graph.nodes.map((n) => ({
              id: n.id,
              label: n.id,
              sub: n.kind === 'source' ? `source · ${n.pipeline}` : `${n.kind} · ${count(n.rows)} rows`,
              tone: n.kind,
              selected: n.id === focus,
              dim: Boolean(focus) && !lit.has(n.id),
            }))}
            edges={graph.edges}
            onSelect={(id) => {
              location.hash = `#/lineage/${enc(id)}`;
            }}
          />
        </div>
      ) : null}
      {focus ? (
        <section aria-label="Upstream">
          <h2>{focus} comes from</h2>
          <ol class="upstream">
            {path.map((id) => (
              <li key={id}>{id.startsWith('source:') ? id : <a href={`#/tables/${enc(id)}`}>{id}</a>}</li>
            ))}
          </ol>
          {focus.startsWith('source:') ? null : <a href={`#/tables/${enc(focus)}`}>Open {focus}</a>}
        </section>
      ) : null}
    </section>
  );
}
