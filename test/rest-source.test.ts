/**
 * The REST source against local HTTP servers shaped like real APIs: every paginator
 * (GitHub Link headers, Stripe has_more, Zendesk cursors and next links, offset with total,
 * page numbers, single pages), response formats, raw page envelopes and replay.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { newId } from '../src/core/ids.js';
import { replayStream } from '../src/lake/replay.js';
import { RestFixtures, type TestApi, items } from './support/api-server.js';

const { api, project, dispose } = new RestFixtures();
after(dispose);

const sumIds = (n: number) => (n * (n + 1)) / 2;

describe('paginators on real API shapes', () => {
  it('GitHub: Link header rel="next" walks every page', async () => {
    const data = items(95);
    const server = await api((req, self) => {
      const page = Number(req.query.get('page') ?? 1);
      const per = Number(req.query.get('per_page'));
      const last = Math.ceil(data.length / per);
      const link = (p: number, rel: string) => `<${self.url}/repos/o/r/issues?per_page=${per}&page=${p}>; rel="${rel}"`;
      const links = [
        page < last ? link(page + 1, 'next') : undefined,
        link(last, 'last'),
        page > 1 ? link(1, 'first') : undefined,
      ].filter(Boolean);
      return { headers: { link: links.join(', ') }, body: data.slice((page - 1) * per, page * per) };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        issues: {
          path: '/repos/o/r/issues',
          params: { per_page: 30 },
          paginator: { type: 'link_header' },
          primary_key: ['id'],
        },
      },
    });
    const r = await p.runOk();
    assert.equal(server.requests.length, 4);
    assert.deepEqual(
      [await p.count('bronze.issues'), await p.num('select sum(id) from bronze.issues')],
      [95, sumIds(95)],
    );
    assert.equal(await p.count('raw.issues'), 4, 'one raw envelope per response page');
    assert.equal(r.stats.streams['api.issues']?.source?.['requests'], 4);
  });

  it('Stripe: has_more with starting_after = last id', async () => {
    const data = items(25).map((d) => ({ ...d, id: `cus_${String(d.id).padStart(3, '0')}` }));
    const server = await api((req) => {
      const after = req.query.get('starting_after');
      const limit = Number(req.query.get('limit'));
      const start = after ? data.findIndex((d) => d.id === after) + 1 : 0;
      const page = data.slice(start, start + limit);
      return { body: { object: 'list', url: '/v1/customers', has_more: start + limit < data.length, data: page } };
    });
    const p = await project({
      base_url: `${server.url}/v1`,
      resources: { customers: { params: { limit: 10 }, records: '$.data', paginator: { type: 'has_more' } } },
    });
    await p.runOk();
    assert.deepEqual(
      server.requests.map((r) => r.query.get('starting_after')),
      [null, 'cus_010', 'cus_020'],
    );
    assert.equal(await p.num('select count(distinct id) from bronze.customers'), 25);
  });

  const zendesk =
    (data: ReturnType<typeof items>) => (req: Parameters<Parameters<typeof TestApi.start>[0]>[0], self: TestApi) => {
      const size = Number(req.query.get('page[size]'));
      const after = req.query.get('page[after]');
      const start = after ? Number(Buffer.from(after, 'base64url').toString()) : 0;
      const page = data.slice(start, start + size);
      const more = start + size < data.length;
      const cursor = Buffer.from(String(start + size)).toString('base64url');
      return {
        body: {
          tickets: page,
          meta: { has_more: more, after_cursor: more ? cursor : null, before_cursor: null },
          links: {
            next: more ? `${self.url}/api/v2/tickets.json?page%5Bsize%5D=${size}&page%5Bafter%5D=${cursor}` : null,
            prev: null,
          },
        },
      };
    };

  it('Zendesk: cursor from meta.after_cursor, stopped by meta.has_more', async () => {
    const server = await api(zendesk(items(42)));
    const p = await project({
      base_url: `${server.url}/api/v2`,
      resources: {
        tickets: {
          path: '/tickets.json',
          params: { 'page[size]': 10 },
          records: '$.tickets',
          paginator: {
            type: 'cursor',
            cursor_path: '$.meta.after_cursor',
            param: 'page[after]',
            has_more_path: '$.meta.has_more',
          },
        },
      },
    });
    await p.runOk();
    assert.equal(server.requests.length, 5);
    assert.deepEqual(
      [await p.count('bronze.tickets'), await p.num('select sum(id) from bronze.tickets')],
      [42, sumIds(42)],
    );
  });

  it('Zendesk: links.next as the next URL', async () => {
    const server = await api(zendesk(items(42)));
    const p = await project({
      base_url: `${server.url}/api/v2`,
      resources: {
        tickets: {
          path: '/tickets.json',
          params: { 'page[size]': 20 },
          records: '$.tickets',
          paginator: { type: 'next_url', next_path: '$.links.next' },
        },
      },
    });
    await p.runOk();
    assert.equal(server.requests.length, 3);
    assert.equal(await p.num('select count(distinct id) from bronze.tickets'), 42);
  });

  it('offset with a total: pages fetched in parallel, each once, committed in order', async () => {
    const data = items(1003);
    const server = await api(
      (req) => {
        const offset = Number(req.query.get('offset'));
        const limit = Number(req.query.get('limit'));
        return { body: { items: data.slice(offset, offset + limit), total: data.length } };
      },
      { latencyMs: 30 },
    );
    const p = await project({
      base_url: server.url,
      http: { concurrency: { max: 8, initial: 8 } },
      resources: { items: { records: '$.items', paginator: { type: 'offset', limit: 100, total_path: '$.total' } } },
    });
    await p.runOk();
    const offsets = server.requests.map((r) => Number(r.query.get('offset'))).sort((a, b) => a - b);
    assert.deepEqual(
      offsets,
      Array.from({ length: 11 }, (_, i) => i * 100),
    );
    assert.ok(server.maxInFlight > 1, `requests overlapped (max in flight ${server.maxInFlight})`);
    assert.deepEqual(
      [await p.count('bronze.items'), await p.num('select sum(id) from bronze.items')],
      [1003, sumIds(1003)],
    );
    // Raw pages are numbered in page order, whatever order the responses arrived in.
    const pages = await p.rows(`select seq, position->>'page' as page from raw.items order by seq`);
    assert.deepEqual(
      pages.map((r) => Number(r['page'])),
      Array.from({ length: 11 }, (_, i) => i + 1),
    );
  });

  it('offset without a total: reads ahead and stops at the first short page', async () => {
    const data = items(250);
    const server = await api((req) => {
      const offset = Number(req.query.get('offset'));
      return { body: data.slice(offset, offset + Number(req.query.get('limit'))) };
    });
    const p = await project({
      base_url: server.url,
      resources: { things: { paginator: { type: 'offset', limit: 100 } } },
    });
    await p.runOk();
    assert.equal(await p.count('bronze.things'), 250);
    assert.equal(await p.num('select count(distinct id) from bronze.things'), 250);
  });

  it('page numbers with total_pages, and a single page', async () => {
    const data = items(45);
    const server = await api((req) => {
      if (req.path === '/status') return { body: { ok: true, version: '1.2' } };
      const page = Number(req.query.get('page'));
      return { body: { results: data.slice((page - 1) * 20, page * 20), total_pages: 3, page } };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        results: {
          path: '/list',
          records: '$.results',
          paginator: { type: 'page_number', total_pages_path: '$.total_pages' },
        },
        status: { records: '$' },
      },
    });
    await p.runOk();
    assert.deepEqual(
      server
        .to('/list')
        .map((r) => r.query.get('page'))
        .sort(),
      ['1', '2', '3'],
    );
    assert.equal(await p.count('bronze.results'), 45);
    assert.deepEqual(await p.rows('select ok, version from bronze.status'), [{ ok: true, version: '1.2' }]);
  });

  it('NDJSON and CSV responses', async () => {
    const server = await api((req) => {
      if (req.path === '/export.ndjson')
        return {
          body: items(7)
            .map((d) => JSON.stringify(d))
            .join('\n'),
        };
      return { body: 'id,city\n1,Paris\n2,Oslo\n' };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        events: { path: '/export.ndjson', format: 'ndjson' },
        cities: { path: '/cities.csv', format: 'csv' },
      },
    });
    await p.runOk();
    assert.equal(await p.num('select sum(id) from bronze.events'), sumIds(7));
    assert.deepEqual(await p.rows('select id::INT as id, city from bronze.cities order by id'), [
      { id: 1, city: 'Paris' },
      { id: 2, city: 'Oslo' },
    ]);
  });
});

describe('raw pages', () => {
  it('keep whole responses without secrets, and rebuild bronze on replay', async () => {
    process.env['DIP_TEST_API_KEY'] = 'k-SECRET-123';
    const data = items(30).map((d) => ({ ...d, author: { id: d.id % 4, name: `a${d.id % 4}` } }));
    const server = await api((req) => {
      if (req.query.get('api_key') !== 'k-SECRET-123') return { status: 401, body: { error: 'bad key' } };
      const cursor = Number(req.query.get('cursor') ?? 0);
      return {
        body: { data: data.slice(cursor, cursor + 8), next: cursor + 8 < data.length ? String(cursor + 8) : null },
        headers: { 'x-request-id': `req-${cursor}` },
      };
    });
    const p = await project({
      base_url: server.url,
      auth: { type: 'api_key', name: 'api_key', value: '${env:DIP_TEST_API_KEY}', in: 'query' },
      resources: {
        things: {
          records: '$.data',
          paginator: { type: 'cursor', cursor_path: '$.next', param: 'cursor' },
          primary_key: ['id'],
          write_disposition: 'append',
        },
      },
    });
    await p.runOk();
    const raw = await p.rows(
      `select seq, position->>'url' as url, position->'headers'->>'x-request-id' as rid, json_array_length(payload->'data') as n from raw.things order by seq`,
    );
    assert.equal(raw.length, 4);
    assert.deepEqual(
      raw.map((r) => Number(r['n'])),
      [8, 8, 8, 6],
    );
    assert.equal(raw[1]?.['rid'], 'req-8');
    for (const r of raw) {
      assert.ok(!String(r['url']).includes('SECRET'), `secret redacted from ${String(r['url'])}`);
    }
    const before = await p.rows('select id, name, amount, author.name as author from bronze.things order by id');
    const lake = await p.lake();
    const stream = {
      name: 'things',
      table: 'things',
      writeDisposition: 'append' as const,
      primaryKey: ['id'],
      schemaContract: 'evolve' as const,
    };
    const replayed = await replayStream(lake, 'p', 'api', stream, {}, newId('replay_'));
    assert.equal(replayed.rows, 30);
    assert.deepEqual(
      await p.rows('select id, name, amount, author.name as author from bronze.things order by id'),
      before,
    );
  });
});

describe('configuration errors', () => {
  const base = { type: 'rest' as const, base_url: 'http://127.0.0.1:1' };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'merge without a key',
      { r: { write_disposition: 'merge' } },
      /resource r: write_disposition merge needs primary_key/,
    ],
    [
      'lookback on append',
      { r: { incremental: { cursor_field: 'u', lookback: '1h' } } },
      /resource r: incremental.lookback .* use write_disposition: merge/,
    ],
    [
      'unknown parent',
      { r: { path: '/x/{parent.id}', parent: { resource: 'nope' } } },
      /resource r: parent nope is not a resource of this source \(have: r\)/,
    ],
    [
      '{parent.…} without a parent',
      { r: { path: '/x/{parent.id}' } },
      /resource r: uses \{parent.id\} but declares no parent/,
    ],
    [
      'CSV with a cursor',
      { r: { format: 'csv', paginator: { type: 'cursor', cursor_path: '$.n', param: 'c' } } },
      /resource r: CSV responses support paginators single and link_header/,
    ],
  ];
  for (const [name, resources, message] of cases) {
    it(name, async () => {
      const { restSourceSchema } = await import('../src/config/rest.js');
      const { createSource } = await import('../src/sources/registry.js');
      const config = restSourceSchema.parse({ ...base, resources });
      assert.throws(
        () => createSource(config, '.', 'api'),
        (err: Error & { kind?: string }) => err.kind === 'config' && message.test(err.message),
      );
    });
  }
});

describe('typing a batch from a sample', () => {
  it('a field first seen, or a type first changed, after the sampled records is neither dropped nor mistyped', async () => {
    const data = items(3000).map((d) => ({ ...d })) as Record<string, unknown>[];
    (data[2600] as Record<string, unknown>)['late_field'] = 'only here';
    (data[2900] as Record<string, unknown>)['amount'] = 'n/a';
    const server = await api(() => ({ body: data }));
    const p = await project({ base_url: server.url, resources: { rows: {} } });
    await p.runOk();
    assert.equal(await p.count('bronze.rows'), 3000);
    assert.deepEqual(await p.rows(`select id::INT as id, late_field from bronze.rows where late_field is not null`), [
      { id: 2601, late_field: 'only here' },
    ]);
    // Numbers and text in one field: the column holds JSON values (as a file source would).
    assert.deepEqual(
      await p.rows(
        `select json_extract_string(amount, '$') as amount from bronze.rows where id in (2900, 2901) order by id`,
      ),
      [{ amount: '8700' }, { amount: 'n/a' }],
    );
  });
});
