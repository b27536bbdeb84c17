/** A directed graph laid out by dagre and drawn as SVG; nodes are buttons (keyboard and screen readers). */
import dagre from '@dagrejs/dagre';

export interface GraphNode {
  id: string;
  label: string;
  sub?: string;
  tone: string;
  selected?: boolean;
  dim?: boolean;
}

export function Graph(props: {
  nodes: GraphNode[];
  edges: { from: string; to: string }[];
  title: string;
  onSelect?: (id: string) => void;
}) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 50, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const W = 170;
  const H = 44;
  for (const n of props.nodes) g.setNode(n.id, { width: W, height: H });
  for (const e of props.edges) if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to);
  dagre.layout(g);
  const { width = 200, height = 100 } = g.graph();
  return (
    <svg
      class="graph"
      role="group"
      aria-label={props.title}
      width={Math.max(width, 200)}
      height={Math.max(height, 60)}
      viewBox={`0 0 ${Math.max(width, 200)} ${Math.max(height, 60)}`}
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
          <path d="M0,0 L10,5 L0,10 z" fill="#667" />
        </marker>
      </defs>
      {g.edges().map((e) => {
        const pts = g.edge(e).points ?? [];
        const d = pts.map((p: { x: number; y: number }, i: number) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ');
        return <path key={`${e.v}-${e.w}`} d={d} fill="none" stroke="#667" stroke-width="1.4" marker-end="url(#arrow)" />;
      })}
      {props.nodes.map((n) => {
        const p = g.node(n.id);
        if (!p) return null;
        const x = p.x - W / 2;
        const y = p.y - H / 2;
        return (
          <g
            key={n.id}
            class={`node tone-${n.tone}${n.selected ? ' selected' : ''}${n.dim ? ' dim' : ''}`}
            role="button"
            tabIndex={0}
            data-node={n.id}
            onClick={() => props.onSelect?.(n.id)}
            onKeyDown={(ev) => {
              if (ev.key === 'Enter' || ev.key === ' ') {
                ev.preventDefault();
                props.onSelect?.(n.id);
              }
            }}
          >
            <rect x={x} y={y} width={W} height={H} rx="6" />
            <text x={x + 8} y={y + 18}>
              {n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label}
            </text>
            {n.sub ? (
              <text x={x + 8} y={y + 35} class="sub">
                {n.sub}
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}
