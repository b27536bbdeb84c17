/**
 * The connector contract (issue 13, item 2): every connector of the list has a spec with a
 * description and an example that validates; the dip.yaml source union, the JSON Schema and the
 * README's table of source types come from the list; and a new source type takes one folder
 * and one list entry: a toy connector defined under test/support/toy-connector/ is registered
 * with `registerConnector` and a pipeline reading it lands its rows in bronze, with no other
 * file of src/ knowing about it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { z } from 'zod';
import { buildJsonSchema, README_FILE, readmeWithConnectorTable } from '../scripts/write-json-schema.js';
import { projectIssues } from '../src/config/checks.js';
import { loadProject } from '../src/config/load.js';
import { sourceSchema } from '../src/config/schema.js';
import { pipelineDag, sourceBronzeTables } from '../src/config/task-graph.js';
import { readsDisjointSlices } from '../src/orchestrate/source-slices.js';
import { bronzeTableNames, streamNames } from '../src/pipeline/pipelines.js';
import { CONNECTORS, connectorSpecs } from '../src/sources/connectors.js';
import { registerConnector } from '../src/sources/open.js';
import type { ConnectorSpec } from '../src/sources/spec.js';
import type { Connector } from '../src/sources/types.js';
import { TestProject } from './support/project.js';
import { toySpec } from './support/toy-connector/spec.js';

describe('every registered connector', () => {
  for (const spec of CONNECTORS as readonly ConnectorSpec[]) {
    it(`${spec.type}: has a spec, a description and an example that validates`, async () => {
      assert.match(spec.type, /^[a-z][a-z0-9_]*$/);
      assert.ok(spec.description.length > 20, 'a one-line description');
      assert.ok(spec.schema.description, 'the schema itself is described (JSON Schema, editor hints)');
      const parsed = spec.schema.safeParse(spec.example);
      assert.ok(parsed.success, parsed.success ? '' : z.prettifyError(parsed.error));
      assert.equal((parsed.data as { type: string }).type, spec.type);
      // The project's source union accepts it as the same thing.
      assert.deepEqual(sourceSchema.parse(spec.example), parsed.data);
      // Its answers work on its example: it declares at least one bronze table.
      const declared = spec.declared(parsed.data);
      assert.ok(declared.tables.length > 0, JSON.stringify(declared));
      assert.equal(typeof spec.readsDisjointSlices(parsed.data), 'boolean');
      // Its implementation (loaded only here, never by the spec) is the one for this spec.
      const impl = ((await import(`../src/sources/${spec.type}/index.js`)) as { default: Connector }).default;
      assert.equal(impl.spec, spec);
    });
  }

  it('the source union of dip.yaml, its JSON Schema and the README table are the list, in order', () => {
    assert.deepEqual(
      sourceSchema.options,
      CONNECTORS.map((c) => c.schema),
    );
    const pipeline = (buildJsonSchema()['properties'] as Record<string, { additionalProperties: unknown }>)['pipelines']
      ?.additionalProperties as { properties: { sources: { additionalProperties: { oneOf?: unknown[] } } } };
    const union = pipeline.properties.sources.additionalProperties.oneOf ?? [];
    assert.deepEqual(
      union.map((o) => (o as { properties: { type: { const: string } } }).properties.type.const),
      ['files', 'rest', 'postgres', 'mysql', 'gateway', 'kafka', 'jetstream'],
    );
    const readme = readFileSync(README_FILE, 'utf8');
    assert.equal(readmeWithConnectorTable(readme), readme, 'README.md is up to date (run `npm run schema`)');
    for (const c of CONNECTORS) assert.ok(readme.includes(`| \`${c.type}\` | ${c.description} |`), c.type);
  });

  it('database connectors declare the change log of a CDC table and leave patterns open', () => {
    const pg = sourceSchema.parse({
      type: 'postgres',
      connection: { url: 'postgres://u@127.0.0.1/db' },
      mode: 'cdc',
      tables: ['orders', { name: 'Line Items', table: 'lines' }, { pattern: 'billing_*' }],
    });
    const declared = CONNECTORS[2].declared(pg as never);
    assert.deepEqual(
      declared.tables.map((t) => [t.table, t.stream, t.path.join('.'), t.changeLog ?? false]),
      [
        ['orders', 'orders', 'tables.0', false],
        ['orders_changes', 'orders', 'tables.0', true],
        ['lines', 'line_items', 'tables.1', false],
        ['lines_changes', 'line_items', 'tables.1', true],
      ],
    );
    assert.equal(declared.complete, false);
    // One answer for every asker: the ingest task writes the destination tables and change logs
    // (before, the task graph listed bronze.orders and bronze.line_items, the checks the four below).
    assert.deepEqual(sourceBronzeTables(pg), {
      names: ['bronze.orders', 'bronze.orders_changes', 'bronze.lines', 'bronze.lines_changes'],
      complete: false,
    });
  });
});

describe('a toy source type: one folder (test/support/toy-connector) and one list entry', () => {
  registerConnector(toySpec, () => import('./support/toy-connector/index.js'));
  const projects: TestProject[] = [];
  after(async () => {
    for (const p of projects) await p.dispose();
  });

  it('is in the list and refuses a second registration of its type', () => {
    assert.deepEqual(
      connectorSpecs().map((c) => c.type),
      ['files', 'rest', 'postgres', 'mysql', 'gateway', 'kafka', 'jetstream', 'toy'],
    );
    assert.throws(() => registerConnector(toySpec, () => import('./support/toy-connector/index.js')), {
      message: 'a connector of type "toy" is already registered',
    });
  });

  it('a pipeline reading it validates, derives its task graph and lands its rows in bronze, once', async () => {
    const p = await TestProject.withSources({
      make: { type: 'toy', streams: { widgets: { rows: 3 }, gadgets: { rows: 2, table: 'gizmos' } } },
      files: { type: 'files', streams: { orders: { path: 'data/*.csv' } } },
    });
    projects.push(p);
    await p.write('data/a.csv', 'id,total\n1,10\n');
    const project = await loadProject(p.dir);
    const pipeline = project.config.pipelines['p'];
    assert.ok(pipeline);
    assert.deepEqual(streamNames(pipeline), { names: ['widgets', 'gadgets', 'orders'], complete: true });
    assert.deepEqual(bronzeTableNames(pipeline), { names: ['widgets', 'gizmos', 'orders'], complete: true });
    assert.deepEqual(
      pipelineDag(project.config, 'p').tasks.map((t) => [t.name, t.outputs]),
      [
        ['ingest.make', ['bronze.widgets', 'bronze.gizmos']],
        ['ingest.files', ['bronze.orders']],
      ],
    );
    assert.equal(readsDisjointSlices(pipeline.sources['make'] as never), false);

    const first = await p.runOk();
    assert.equal(first.stats.streams['make.widgets']?.rows, 3);
    assert.equal(first.stats.streams['make.gadgets']?.rows, 2);
    assert.equal(await p.count('bronze.widgets'), 3);
    assert.equal(await p.count('bronze.gizmos'), 2);
    assert.equal(await p.count('bronze.orders'), 1);
    assert.deepEqual(
      (await p.rows('select id, name from bronze.gizmos order by id')).map((r) => [Number(r['id']), r['name']]),
      [
        [1, 'gadgets 1'],
        [2, 'gadgets 2'],
      ],
    );
    // Its state committed with the rows: a second run reads nothing new.
    const second = await p.runOk();
    assert.equal(second.stats.streams['make.widgets']?.rows, 0);
    assert.equal(await p.count('bronze.widgets'), 3);
  });

  it('its spec validates its config and the project checks ask it which tables it writes', async () => {
    const bad = await TestProject.withSources({ make: { type: 'toy', streams: { widgets: { rows: -1 } } } });
    projects.push(bad);
    await assert.rejects(loadProject(bad.dir), (err: Error) =>
      /pipelines\.p\.sources\.make\.streams\.widgets\.rows/.test(err.message),
    );

    const clash = await TestProject.withSources({ make: { type: 'toy', streams: { orders: { rows: 1 } } } });
    projects.push(clash);
    const project = await loadProject(clash.dir);
    const config = {
      ...project.config,
      pipelines: {
        ...project.config.pipelines,
        q: { ...(project.config.pipelines['p'] as NonNullable<(typeof project.config.pipelines)['p']>) },
      },
    };
    assert.deepEqual(
      projectIssues(config).map((i) => i.message.replace(/ \(.*?\)/, '')),
      [
        'table bronze.orders is written by two pipelines, p and q: their rows would mix in one table; give one of them another table name',
      ],
    );
  });
});
