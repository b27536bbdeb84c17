import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkSchema } from '../src/config/silver.js';
import { writeDispositionSchema } from '../src/config/primitives.js';
import { COMMIT_STRATEGIES, commitTiming } from '../src/lake/commit/index.js';
import { CHECK_KINDS, checkLevel } from '../src/quality/checks.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('the commit layer: one strategy per write disposition', () => {
  it('has a strategy for every write disposition of the config, and nothing else', () => {
    assert.deepEqual(Object.keys(COMMIT_STRATEGIES).sort(), [...writeDispositionSchema.options].sort());
    for (const strategy of Object.values(COMMIT_STRATEGIES)) assert.equal(typeof strategy, 'function');
  });

  it('commits appends per unit; state-carrying units per unit (merge) or staged durably (replace)', () => {
    assert.deepEqual(
      (['append', 'merge', 'replace'] as const).flatMap((d) => [commitTiming(d, false), commitTiming(d, true)]),
      ['unit', 'unit', 'stream', 'unit', 'stream', 'stream-staged'],
    );
  });
});

describe('check kinds behind a registry', () => {
  const types = checkSchema.options.map((o) => o.shape.type.value).sort();

  it('registers one kind per check type of the config, under its own type', () => {
    assert.deepEqual(Object.keys(CHECK_KINDS).sort(), types);
    for (const [type, kind] of Object.entries(CHECK_KINDS)) assert.equal(kind.type, type);
  });

  it('keeps the row/table split of the checks', () => {
    const row = types.filter((t) => checkLevel(t) === 'row');
    assert.deepEqual(row, ['accepted_values', 'expression', 'format', 'not_null', 'range', 'regex', 'relationships']);
    assert.deepEqual(
      types.filter((t) => checkLevel(t) === 'table'),
      ['freshness', 'row_count', 'schema', 'unique', 'volume_anomaly'],
    );
  });
});

describe('split modules stay small', () => {
  it('has no file over 400 lines without a reason at its top', () => {
    const files = [
      ...readdirSync(join(repo, 'src/lake/commit')).map((f) => `src/lake/commit/${f}`),
      ...readdirSync(join(repo, 'src/quality/checks')).map((f) => `src/quality/checks/${f}`),
      'src/quality/checks.ts',
      'src/pipeline/run.ts',
      'src/pipeline/stream.ts',
      'src/orchestrate/queue.ts',
      'src/orchestrate/worker.ts',
    ];
    const long = files.filter((f) => readFileSync(join(repo, f), 'utf8').split('\n').length > 400);
    assert.deepEqual(long, []);
  });
});
