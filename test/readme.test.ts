/** The README's dip.yaml example must stay a valid project: the first thing a user copies. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { parseProject } from '../src/config/load.js';

it('the dip.yaml example in README.md validates', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README.md has a yaml example');
  const config = parseProject(block, 'README.md');
  assert.deepEqual(Object.keys(config.pipelines), ['shop']);
  const exports = config.pipelines['shop']?.sources['exports'];
  assert.deepEqual(Object.keys(exports?.type === 'files' ? exports.streams : {}), ['orders', 'customers']);
});
