/** The README's dip.yaml example must stay a valid project: the first thing a user copies. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseProject } from '../src/config/load.js';
import { createSource } from '../src/sources/registry.js';
import { pipelineDag } from '../src/config/task-graph.js';

it('the dip.yaml example in README.md validates', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README.md has a yaml example');
  const config = parseProject(block, 'README.md');
  assert.deepEqual(Object.keys(config.pipelines), ['shop']);
  const exports = config.pipelines['shop']?.sources['exports'];
  assert.deepEqual(Object.keys(exports?.type === 'files' ? exports.streams : {}), ['orders', 'customers']);
});

it('the REST API example in README.md validates and plans its resources, parents first', async () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.includes('type: rest'));
  assert.ok(block, 'README.md has a REST example');
  const config = parseProject(block, 'README.md');
  const api = config.pipelines['social']?.sources['api'];
  assert.ok(api?.type === 'rest');
  const streams = createSource(api, '.', 'api').streams();
  assert.deepEqual(
    streams.map((s) => s.name),
    ['posts', 'comments', 'accounts', 'daily_stats'],
  );
  assert.deepEqual(
    streams.map((s) => s.writeDisposition),
    ['merge', 'append', 'append', 'append'],
  );
});

it('the database example in README.md validates', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.includes('type: postgres'));
  assert.ok(block, 'README.md has a database example');
  const config = parseProject(block, 'README.md');
  const pg = config.pipelines['shop_db']?.sources['pg'];
  assert.ok(pg?.type === 'postgres');
  assert.equal(pg.tables.length, 4);
  assert.equal(pg.mode, 'incremental');
  assert.deepEqual(Object.keys(pg.queries), ['big_orders']);
});

it('the silver example in README.md validates', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.includes('silver:'));
  assert.ok(block, 'README.md has a silver example');
  const config = parseProject(block, 'README.md');
  const posts = config.pipelines['social']?.silver['posts'];
  assert.ok(posts);
  assert.deepEqual([...new Set(posts.checks.map((c) => c.type))].length, 12, 'every check kind is shown');
  assert.equal(posts.columns['author__email']?.mask, 'hash');
  assert.equal(config.privacy.detect, 'warn');
});

it('the scheduling example in README.md validates and derives its DAG', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1] ?? '')
    .find((b) => b.includes('pools:'));
  assert.ok(block, 'README.md has a scheduling example');
  const config = parseProject(block, 'README.md');
  const dag = pipelineDag(config, 'crm');
  assert.deepEqual(
    dag.tasks.map((t) => [t.name, t.deps]),
    [
      ['ingest.api', []],
      ['silver.contacts', ['ingest.api']],
      ['export', ['silver.contacts']],
      ['score', ['export']],
    ],
  );
  assert.equal(dag.tasks[0]?.pool, 'crm_api');
  assert.equal(dag.tasks[0]?.retry.timeoutMs, 600_000);
  assert.deepEqual(
    pipelineDag(config, 'reports').tasks.map((t) => t.name),
    ['build'],
  );
  assert.equal(config.pipelines['reports']?.triggers.length, 2);
});
