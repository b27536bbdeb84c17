/**
 * The connector contract for sources that find their inputs as they read (API pages, database
 * chunks): units come from an async iterable, each is committed with its state before the next
 * is asked for, and the source's own temporary files are disposed of.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, it } from 'node:test';
import type { StreamStats } from '../src/catalog/types.js';
import type { RunEvent } from '../src/pipeline/events.js';
import { runStream } from '../src/pipeline/run.js';
import type { ReadUnit, SourceInstance, StreamSpec } from '../src/sources/types.js';
import { TestProject } from './support/project.js';

const projects: TestProject[] = [];
after(async () => {
  for (const p of projects) await p.dispose();
});

it('an async stream of page units commits each with its state and disposes of it', async () => {
  const p = await TestProject.create({ unused: { path: 'none/*.csv' } });
  projects.push(p);
  const lake = await p.lake();
  const stream: StreamSpec = {
    name: 'posts',
    table: 'posts',
    writeDisposition: 'append',
    primaryKey: ['id'],
    schemaContract: 'evolve',
  };
  const disposed: number[] = [];
  const asked: number[] = [];
  const source: SourceInstance = {
    streams: () => [stream],
    async plan(_s, ctx) {
      const start = ((ctx.state as { page?: number } | undefined)?.page ?? 0) + 1;
      async function* pages(): AsyncIterable<ReadUnit> {
        for (let page = start; page <= 3; page++) {
          asked.push(page);
          const file = join(p.dir, `page-${page}.ndjson`);
          const records = Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: page * 100 + i, page }));
          await writeFile(file, `${records.join('\n')}\n`);
          yield {
            label: `GET /posts?page=${page}`,
            input: { path: file, format: 'ndjson' },
            bytes: 100,
            position: { file: `https://api.example/posts?page=${page}`, page },
            state: { page },
            dispose: async () => void disposed.push(page),
          };
        }
      }
      return { units: pages(), skipped: 0 };
    },
    close: async () => undefined,
  };
  const events: RunEvent[] = [];
  const stats: StreamStats = { rows: 0, bytes: 0, files: 0, quarantined: 0, commits: 0, skippedFiles: 0 };
  const target = { pipeline: 'api', source: 'social', stream, rawEnabled: true, runId: 'run_stream_test' };
  await runStream(lake, source, target, stats, new AbortController().signal, (e) => events.push(e));

  assert.deepEqual([stats.rows, stats.commits, stats.files], [30, 3, 3]);
  assert.deepEqual(disposed, [1, 2, 3]);
  assert.deepEqual(await lake.catalog.getState('api', 'social', 'posts'), { page: 3 });
  assert.equal(await p.num('select count(distinct id) from bronze.posts'), 30);
  assert.equal(await p.num('select count(*) from raw.posts'), 30);
  const planned = events.find((e) => e.type === 'stream_planned');
  assert.deepEqual(planned && [planned.units, planned.bytes], [null, null], 'totals unknown up front');
  // Each unit's commit carries its own state: commits are ordered page 1, 2, 3.
  const commits = await lake.catalog.listCommits({ table: 'bronze.posts' });
  assert.equal(commits.length, 3);

  // A second run resumes from the committed state and asks for no page again.
  asked.length = 0;
  await runStream(
    lake,
    source,
    { ...target, runId: 'run_stream_test_2' },
    { ...stats, rows: 0 },
    new AbortController().signal,
    () => undefined,
  );
  assert.deepEqual(asked, []);
  assert.equal(await p.num('select count(*) from bronze.posts'), 30);
});
