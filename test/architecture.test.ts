import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { documentedOrder, importCycles, importEdges, layerViolations, parseLayers } from './support/import-graph.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const order = documentedOrder(readFileSync(join(repo, 'docs', 'architecture.md'), 'utf8'));

describe('imports point one way (the order in docs/architecture.md)', () => {
  const edges = importEdges(join(repo, 'src'));

  it('reads the layer order from the architecture document', () => {
    const layers = parseLayers(order);
    assert.deepEqual(layers[0]?.includes('core'), true);
    assert.ok(layers.length >= 6, `layers: ${JSON.stringify(layers)}`);
    assert.ok(edges.length > 300, `${edges.length} imports found`);
  });

  it('has no import against the layer order', () => {
    const lines = layerViolations(edges, order).map(
      (v) => `${v.from} → ${v.to} (${v.fromModule} may not import ${v.toModule})`,
    );
    assert.deepEqual(lines, []);
  });

  it('has no import cycle between files', () => {
    assert.deepEqual(importCycles(edges), []);
  });

  it('gives every source file over 400 lines a reason at its top', () => {
    const unexplained = [...new Set(edges.map((e) => e.from))].filter((file) => {
      const lines = readFileSync(join(repo, 'src', file), 'utf8').split('\n');
      return lines.length > 400 && !lines.slice(0, 4).some((line) => line.includes('Over 400 lines:'));
    });
    assert.deepEqual(unexplained, []);
  });
});

describe('the import check itself', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dip-imports-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  };
  write('core/a.ts', 'export const a = 1;\n');
  write('lake/b.ts', "import { a } from '../core/a.js';\nexport const b = a;\n");
  write('catalog/c.ts', "import type { a } from '../core/a.js';\nexport type C = typeof a;\n");
  const fixtureOrder = 'core ← catalog < lake';

  it('passes a tree that follows the order', () => {
    assert.deepEqual(layerViolations(importEdges(dir), fixtureOrder), []);
    assert.deepEqual(importCycles(importEdges(dir)), []);
  });

  it('fails on a back-edge, a type-only one and a dynamic one included', () => {
    write(
      'core/back.ts',
      "import type { C } from '../catalog/c.js';\nexport const load = () => import('../lake/b.js');\nexport type X = C;\n",
    );
    const found = layerViolations(importEdges(dir), fixtureOrder).map((v) => `${v.from}→${v.to}`);
    assert.deepEqual(found.sort(), ['core/back.ts→catalog/c.ts', 'core/back.ts→lake/b.ts']);
    rmSync(join(dir, 'core/back.ts'));
  });

  it('fails on an import inside one layer against its inner order, and on an unlisted module', () => {
    write('catalog/d.ts', "import { b } from '../lake/b.js';\nexport const d = b;\n");
    write('extra/e.ts', "import { a } from '../core/a.js';\nexport const e = a;\n");
    const found = layerViolations(importEdges(dir), fixtureOrder).map((v) => `${v.from}→${v.to}`);
    assert.deepEqual(found.sort(), ['catalog/d.ts→lake/b.ts', 'extra/e.ts→core/a.ts']);
    rmSync(join(dir, 'catalog/d.ts'));
    rmSync(join(dir, 'extra'), { recursive: true });
  });

  it('fails on a cycle between files of one module', () => {
    write('lake/x.ts', "import { y } from './y.js';\nexport const x = () => y;\n");
    write('lake/y.ts', "import { x } from './x.js';\nexport const y = () => x;\n");
    assert.deepEqual(importCycles(importEdges(dir)), [['lake/x.ts', 'lake/y.ts']]);
  });
});
