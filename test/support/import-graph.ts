/**
 * The import graph of a TypeScript source tree, checked against a layer order: each top-level
 * folder (or top-level file) of `src/` is a module, and a module may import only from itself or
 * from modules in earlier layers. File-level import cycles are refused anywhere.
 *
 * The order is read from docs/architecture.md (the line "Dependencies point one way: `…`"), so
 * the document and the check cannot drift apart.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

export interface ImportEdge {
  from: string;
  to: string;
  /** Only types are imported (`import type`): still an edge, the layering is about knowledge. */
  typeOnly: boolean;
}

export interface LayerViolation {
  from: string;
  to: string;
  fromModule: string;
  toModule: string;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) out.push(full);
  }
  return out.sort();
}

/** Relative imports of every `.ts` file under `root`, as paths relative to `root`. */
export function importEdges(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
    const visit = (node: ts.Node): void => {
      let spec: string | undefined;
      let typeOnly = false;
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        spec = node.moduleSpecifier.text;
        typeOnly = node.importClause?.isTypeOnly ?? false;
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        spec = node.moduleSpecifier.text;
        typeOnly = node.isTypeOnly;
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteral(node.arguments[0])
      ) {
        spec = node.arguments[0].text;
      }
      if (spec?.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        edges.push({ from: rel(root, file), to: rel(root, target), typeOnly });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return edges;
}

function rel(root: string, file: string): string {
  return relative(root, file).split(sep).join('/');
}

/**
 * `core/errors.ts` → `core`; `index.ts` → `index`. A module named by a path in the order (a `*` in
 * it stands for one folder name) holds the files it matches, carved out of their folder's module:
 * a connector's spec sits in the connector's folder but below config, which builds on it.
 */
export function moduleOf(path: string, pathModules: readonly string[] = []): string {
  const file = path.replace(/\.ts$/, '');
  const named = pathModules.find((m) =>
    new RegExp(`^${m.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]+')}$`).test(file),
  );
  if (named) return named;
  const first = path.split('/')[0] ?? path;
  return first.replace(/\.ts$/, '');
}

/**
 * Parses "core ← config ← catalog, lake ← sources" into layers: [[core], [config], [catalog,
 * lake], [sources]]. Modules in one layer may not import each other unless listed with `<`
 * inside the layer text ("catalog < lake": lake may import catalog).
 */
export function parseLayers(order: string): string[][] {
  return order.split('←').map((layer) =>
    layer
      .split(/[,<]/)
      .map((name) => name.trim())
      .filter(Boolean),
  );
}

/** Within-layer orderings written as "a < b" (b may import a). */
function innerOrder(order: string): Map<string, number> {
  const rank = new Map<string, number>();
  for (const layer of order.split('←')) {
    layer
      .split(',')
      .map((part) => part.split('<').map((name) => name.trim()))
      .forEach((chain) => chain.forEach((name, i) => rank.set(name, i)));
  }
  return rank;
}

export function layerViolations(edges: ImportEdge[], order: string): LayerViolation[] {
  const layers = parseLayers(order);
  const inner = innerOrder(order);
  const layerOf = new Map<string, number>();
  layers.forEach((names, i) => names.forEach((name) => layerOf.set(name, i)));
  const pathModules = layers.flat().filter((name) => name.includes('/'));
  const violations: LayerViolation[] = [];
  for (const edge of edges) {
    const fromModule = moduleOf(edge.from, pathModules);
    const toModule = moduleOf(edge.to, pathModules);
    if (fromModule === toModule) continue;
    const a = layerOf.get(fromModule);
    const b = layerOf.get(toModule);
    const allowed =
      a !== undefined &&
      b !== undefined &&
      (b < a || (a === b && (inner.get(toModule) ?? 0) < (inner.get(fromModule) ?? 0)));
    if (!allowed) violations.push({ from: edge.from, to: edge.to, fromModule, toModule });
  }
  return violations;
}

/** Every file-level import cycle (strongly connected component of more than one file, or a self-import). */
export function importCycles(edges: ImportEdge[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const edge of edges) {
    if (!graph.has(edge.to)) graph.set(edge.to, []);
    const out = graph.get(edge.from) ?? [];
    out.push(edge.to);
    graph.set(edge.from, out);
  }
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      const selfLoop = component.length === 1 && (graph.get(v) ?? []).includes(v);
      if (component.length > 1 || selfLoop) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return cycles;
}

/** The layer order written in docs/architecture.md. */
export function documentedOrder(architectureMd: string): string {
  const match = /Dependencies point one way: `([^`]+)`/.exec(architectureMd);
  if (!match?.[1]) throw new Error('docs/architecture.md has no line "Dependencies point one way: `…`"');
  return match[1];
}
