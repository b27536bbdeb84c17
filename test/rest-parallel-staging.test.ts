/**
 * REST units are staged while pages are still being fetched: with the default batch size a unit
 * closes early when the lake is waiting for one, so staging keeps pace with the fetch and the
 * run's tail is small; every record still lands once, pages in order. An explicit
 * batch_records keeps units of exactly that size.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RunEvent } from '../src/pipeline/events.js';
import { RestFixtures, items } from './support/api-server.js';

const { api, project, dispose } = new RestFixtures();
after(dispose);

const RECORDS = 20_000;
const PAGE = 50;
const PAGES = RECORDS / PAGE;

describe('REST staging off the fetch path', () => {
  const server = () => {
    const data = items(RECORDS);
    return api(
      (req) => {
        const offset = Number(req.query.get('offset'));
        const limit = Number(req.query.get('limit'));
        return { body: { items: data.slice(offset, offset + limit), total: data.length } };
      },
      { latencyMs: 20 },
    );
  };
  const resource = (extra: Record<string, unknown> = {}) => ({
    records: '$.items',
    paginator: { type: 'offset', limit: PAGE, total_path: '$.total' },
    ...extra,
  });

  it('with the default batch size, units are staged and committed while later pages are fetched', async () => {
    const s = await server();
    const p = await project({
      base_url: s.url,
      http: { concurrency: { max: 4, initial: 4 } },
      resources: { items: resource() },
    });
    const committed: number[] = [];
    const sizes: number[] = [];
    const onEvent = (e: RunEvent) => {
      if (e.type !== 'unit_committed' || e.rows === 0) return;
      committed.push(Date.now());
      sizes.push(e.rows);
    };
    const r = await p.runOk('p', { onEvent });
    const lastRequest = Math.max(...s.requests.map((q) => q.at));
    assert.equal(s.requests.length, PAGES);
    assert.ok(committed.length >= 2, `several units (${committed.length})`);
    // The runner waits for the first unit from the start: it closes at 1/4 of the default 20,000.
    assert.equal(sizes[0], 5_000, `unit sizes ${sizes.join(', ')}`);
    assert.ok(
      sizes.every((n) => n <= 20_000),
      `no unit over the batch size (${sizes.join(', ')})`,
    );
    assert.ok(
      (committed[0] as number) < lastRequest,
      `the first unit committed ${(committed[0] as number) - lastRequest} ms after the last request was sent`,
    );
    assert.equal(r.stats.streams['api.items']?.files, committed.length);
    assert.deepEqual(
      [await p.count('bronze.items'), await p.num('select count(distinct id) from bronze.items')],
      [RECORDS, RECORDS],
    );
    assert.equal(await p.num('select sum(id) from bronze.items'), (RECORDS * (RECORDS + 1)) / 2);
    const pages = await p.rows(`select position->>'page' as page from raw.items`);
    assert.deepEqual(
      pages.map((x) => Number(x['page'])),
      Array.from({ length: PAGES }, (_, i) => i + 1),
      'raw pages committed in page order (files in commit order, lines in file order)',
    );
    const again = await p.runOk();
    assert.equal(again.stats.streams['api.items']?.rows, RECORDS, 'a full re-read (no cursor) appends once more');
  });

  it('an explicit batch_records keeps units of that size', async () => {
    const s = await server();
    const p = await project({
      base_url: s.url,
      http: { concurrency: { max: 4, initial: 4 } },
      resources: { items: resource({ batch_records: 4_000 }) },
    });
    const r = await p.runOk();
    assert.deepEqual([r.stats.streams['api.items']?.files, r.stats.streams['api.items']?.commits], [5, 5]);
    assert.equal(await p.count('bronze.items'), RECORDS);
  });
});
