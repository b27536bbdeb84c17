/**
 * Issue 14, REST items: a run that may have missed data never exits 0.
 * - every paginator refuses to stop when the page says there is more but the configured
 *   continuation finds nothing (Zendesk, Slack, DRF, GitHub, Stripe, capped offset/page sizes);
 * - a record selector that matches nothing in a non-empty response, and an empty 200 body
 *   (unless `allow_empty`), fail the stream;
 * - with a primary key the default write disposition is merge: a second run adds nothing;
 * - merge batches commit one by one and replace batches are staged durably: `dip run` killed
 *   with SIGKILL mid-listing and run again refetches no committed page and lands exact rows.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { collectGarbage } from '../src/lake/maintenance.js';
import { RestFixtures, type TestApi, items, type ApiRequest } from './support/api-server.js';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, projectWithSources, type TestProject } from './support/project.js';

const { api, project, dispose } = new RestFixtures();
after(dispose);

/** Runs and returns the one failed stream's error (the run must fail with a bad-input exit code). */
async function failure(p: TestProject): Promise<string> {
  const r = await p.run();
  assert.equal(r.status, 'failed', 'the run must not succeed');
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]?.exitCode, 3, `bad input exit code: ${r.errors[0]?.message}`);
  return r.errors[0]?.message ?? '';
}

describe('a continuation path that finds nothing while the page says more', () => {
  // Zendesk incremental/cursor export shape.
  const zendesk = (data: ReturnType<typeof items>) => (req: ApiRequest) => {
    const after = req.query.get('page[after]');
    const start = after ? Number(Buffer.from(after, 'base64url').toString()) : 0;
    const more = start + 10 < data.length;
    return {
      body: {
        tickets: data.slice(start, start + 10),
        meta: {
          has_more: more,
          after_cursor: more ? Buffer.from(String(start + 10)).toString('base64url') : null,
          before_cursor: null,
        },
        links: { prev: null, next: null },
      },
    };
  };

  it('cursor + has_more_path: a misspelled cursor_path fails naming the path and the keys present', async () => {
    const server = await api(zendesk(items(42)));
    const p = await project({
      base_url: `${server.url}/api/v2`,
      resources: {
        tickets: {
          records: '$.tickets',
          paginator: {
            type: 'cursor',
            cursor_path: '$.meta.after_cursr',
            param: 'page[after]',
            has_more_path: '$.meta.has_more',
          },
        },
      },
    });
    const message = await failure(p);
    assert.match(
      message,
      /paginator\.cursor_path \$\.meta\.after_cursr matches nothing in the response \(\$\.meta\.has_more is true\); keys present at \$\.meta: has_more, after_cursor, before_cursor/,
    );
    assert.equal(server.requests.length, 1);
  });

  it('cursor + has_more_path: a misspelled has_more_path fails too (it used to end the listing after page 1)', async () => {
    const server = await api(zendesk(items(42)));
    const p = await project({
      base_url: `${server.url}/api/v2`,
      resources: {
        tickets: {
          records: '$.tickets',
          paginator: {
            type: 'cursor',
            cursor_path: '$.meta.after_cursor',
            param: 'page[after]',
            has_more_path: '$.meta.hasMore',
          },
        },
      },
    });
    assert.match(
      await failure(p),
      /paginator\.has_more_path \$\.meta\.hasMore matches nothing .* keys present at \$\.meta: has_more, after_cursor, before_cursor/,
    );
  });

  it('cursor without has_more_path (Slack): a next cursor elsewhere in the page is evidence of more', async () => {
    const data = items(35).map((d) => ({ ...d, id: `U${String(d.id).padStart(8, '0')}` }));
    const server = await api((req) => {
      const start = Number(
        Buffer.from(req.query.get('cursor') ?? '', 'base64')
          .toString()
          .split(':')[1] ?? 0,
      );
      const next = start + 15 < data.length ? Buffer.from(`user:${start + 15}`).toString('base64') : '';
      return {
        body: {
          ok: true,
          members: data.slice(start, start + 15),
          cache_ts: 1767225600,
          response_metadata: { next_cursor: next },
        },
      };
    });
    const p = await project({
      base_url: `${server.url}/api`,
      resources: {
        members: {
          path: '/users.list',
          records: '$.members',
          paginator: { type: 'cursor', cursor_path: '$.response_metadata.nextCursor', param: 'cursor' },
        },
      },
    });
    assert.match(
      await failure(p),
      /the response says there are more pages \(\$\.response_metadata\.next_cursor holds a next cursor\/link\) but paginator\.cursor_path \$\.response_metadata\.nextCursor matches nothing; keys present at \$\.response_metadata: next_cursor/,
    );
    // Spelled right, the same API is read whole (Slack ends with next_cursor: "").
    const ok = await project({
      base_url: `${server.url}/api`,
      resources: {
        members: {
          path: '/users.list',
          records: '$.members',
          paginator: { type: 'cursor', cursor_path: '$.response_metadata.next_cursor', param: 'cursor' },
        },
      },
    });
    await ok.runOk();
    assert.equal(await ok.count('bronze.members'), 35);
  });

  it('next_url (Django REST framework): count larger than what was read fails', async () => {
    const data = items(45);
    const server = await api((req, self) => {
      const page = Number(req.query.get('page') ?? 1);
      const next = page * 20 < data.length ? `${self.url}/api/items/?page=${page + 1}` : null;
      return { body: { count: data.length, next, previous: null, results: data.slice((page - 1) * 20, page * 20) } };
    });
    const p = await project({
      base_url: `${server.url}/api`,
      resources: {
        items: { path: '/items/', records: '$.results', paginator: { type: 'next_url', next_path: '$.next_url' } },
      },
    });
    assert.match(
      await failure(p),
      /\$\.count is 45 and 20 records were read; \$\.next holds a next cursor\/link\) but paginator\.next_path \$\.next_url matches nothing; keys present at \$: count, next, previous, results/,
    );
    assert.equal(server.requests.length, 1);
  });

  it('link_header (GitHub): a rel that is not in the Link header, while rel="next" is, fails listing the rels', async () => {
    const data = items(95);
    const server = await api((req, self) => {
      const page = Number(req.query.get('page') ?? 1);
      const link = (n: number, rel: string) => `<${self.url}/repos/o/r/issues?per_page=30&page=${n}>; rel="${rel}"`;
      return {
        headers: { link: [page < 4 ? link(page + 1, 'next') : undefined, link(4, 'last')].filter(Boolean).join(', ') },
        body: data.slice((page - 1) * 30, page * 30),
      };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        issues: {
          path: '/repos/o/r/issues',
          params: { per_page: 30 },
          paginator: { type: 'link_header', rel: 'Next' },
        },
      },
    });
    assert.match(
      await failure(p),
      /the Link header has rel="next"\) but the Link header has no rel="Next" \(rels present: next, last\)/,
    );
  });

  it('has_more (Stripe): a misspelled has_more_path fails with the keys present', async () => {
    const data = items(25).map((d) => ({ ...d, id: `cus_${d.id}` }));
    const server = await api((req) => {
      const after = req.query.get('starting_after');
      const start = after ? data.findIndex((d) => d.id === after) + 1 : 0;
      return {
        body: {
          object: 'list',
          url: '/v1/customers',
          has_more: start + 10 < data.length,
          data: data.slice(start, start + 10),
        },
      };
    });
    const p = await project({
      base_url: `${server.url}/v1`,
      resources: {
        customers: {
          params: { limit: 10 },
          records: '$.data',
          paginator: { type: 'has_more', has_more_path: '$.hasMore' },
        },
      },
    });
    assert.match(
      await failure(p),
      /paginator\.has_more_path \$\.hasMore matches nothing .*; keys present at \$: object, url, has_more, data/,
    );
  });

  it('offset: a page shorter than limit while the total says more (the API caps the page size) fails', async () => {
    const data = items(120);
    const server = await api((req) => {
      const offset = Number(req.query.get('offset'));
      const limit = Math.min(50, Number(req.query.get('limit'))); // the API caps limit at 50
      return { body: { total: data.length, offset, data: data.slice(offset, offset + limit) } };
    });
    const p = await project({
      base_url: server.url,
      resources: { rows: { records: '$.data', paginator: { type: 'offset', limit: 100, total_path: '$.total' } } },
    });
    assert.match(
      await failure(p),
      /page at offset=0 returned 50 records, fewer than limit 100, but \$\.total says 120 in all: the API caps the page size; set paginator\.limit to 50/,
    );
  });

  it('offset and page_number: a total path that matches nothing fails', async () => {
    const data = items(60);
    const server = await api((req) => {
      const page = Number(req.query.get('page') ?? 1);
      return {
        body: {
          meta: { pagination: { total: 60, total_pages: 3, page } },
          data: data.slice((page - 1) * 20, page * 20),
        },
      };
    });
    const p = await project({
      base_url: server.url,
      resources: {
        rows: {
          records: '$.data',
          paginator: {
            type: 'page_number',
            page_size: 20,
            size_param: 'per_page',
            total_pages_path: '$.meta.pagination.pages',
          },
        },
      },
    });
    assert.match(
      await failure(p),
      /paginator\.total_pages_path \$\.meta\.pagination\.pages matches nothing .*; keys present at \$\.meta\.pagination: total, total_pages, page/,
    );
  });
});

describe('records selectors and empty bodies', () => {
  it('a selector that matches nothing in a non-empty response fails with the keys present', async () => {
    const server = await api(() => ({ body: { object: 'list', url: '/v1/charges', has_more: false, data: items(3) } }));
    const p = await project({ base_url: `${server.url}/v1`, resources: { charges: { records: '$.items' } } });
    assert.match(
      await failure(p),
      /records selector \$\.items matches nothing in the response; keys present at \$: object, url, has_more, data/,
    );
  });

  it('an error document served with 200 is not "no records"', async () => {
    const server = await api(() => ({ body: { ok: false, error: 'invalid_auth' } }));
    const p = await project({
      base_url: `${server.url}/api`,
      resources: { members: { path: '/users.list', records: '$.members' } },
    });
    assert.match(
      await failure(p),
      /records selector \$\.members matches nothing in the response; keys present at \$: ok, error/,
    );
  });

  it('an explicit empty list or null stays a page without records', async () => {
    const server = await api((req) => ({ body: req.path === '/a' ? { data: [] } : { data: null } }));
    const p = await project({
      base_url: server.url,
      resources: { a: { records: '$.data' }, b: { records: '$.data' } },
    });
    const r = await p.runOk();
    assert.equal(r.stats.streams['api.a']?.rows, 0);
    assert.equal(r.stats.streams['api.b']?.rows, 0);
  });

  it('an empty 200 body fails unless the resource declares allow_empty', async () => {
    const server = await api(() => ({ body: '' }));
    const p = await project({ base_url: server.url, resources: { events: { records: '$.data' } } });
    assert.match(
      await failure(p),
      /events: http:\/\/127\.0\.0\.1:\d+\/events answered 200 with an empty body; if this endpoint can answer empty when it has no records, set allow_empty: true on the resource/,
    );
    const ok = await project({ base_url: server.url, resources: { events: { records: '$.data', allow_empty: true } } });
    const r = await ok.runOk();
    assert.equal(r.stats.streams['api.events']?.rows, 0);
    // 204 No Content is empty by definition.
    const noContent = await api(() => ({ status: 204, body: '' }));
    const p204 = await project({ base_url: noContent.url, resources: { events: { records: '$.data' } } });
    await p204.runOk();
  });
});

describe('write disposition defaults', () => {
  const github = (data: ReturnType<typeof items>) => (req: ApiRequest, self: TestApi) => {
    const page = Number(req.query.get('page') ?? 1);
    const link =
      page * 30 < data.length ? `<${self.url}/repos/o/r/issues?per_page=30&page=${page + 1}>; rel="next"` : '';
    const headers: Record<string, string> = link ? { link } : {};
    return { headers, body: data.slice((page - 1) * 30, page * 30) };
  };

  it('with a primary key, a second run of the same listing adds nothing (merge by default)', async () => {
    const server = await api(github(items(95)));
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
    await p.runOk();
    await p.runOk();
    assert.deepEqual(
      [await p.count('bronze.issues'), await p.num('select count(distinct id) from bronze.issues')],
      [95, 95],
    );
  });

  it('without a key, append stays the default', async () => {
    const server = await api(github(items(40)));
    const p = await project({
      base_url: server.url,
      resources: {
        issues: { path: '/repos/o/r/issues', params: { per_page: 30 }, paginator: { type: 'link_header' } },
      },
    });
    await p.runOk();
    await p.runOk();
    assert.equal(await p.count('bronze.issues'), 80);
  });
});

/** Spawns `dip run p` in the project and SIGKILLs it once `until()` holds. */
function runAndKill(dir: string, until: () => boolean): Promise<{ killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'run', 'p', '--no-silver'], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: 'ignore',
    });
    const timer = setInterval(() => {
      if (until()) child.kill('SIGKILL');
    }, 10);
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      clearInterval(timer);
      resolve({ killed: signal === 'SIGKILL' });
    });
  });
}

describe('merge and replace batches survive SIGKILL', () => {
  const PAGES = 40;
  const PER_PAGE = 25;
  /** A cursor-paged API (Stripe-like), slow enough to be killed mid-listing; `version` changes the rows' content. */
  const slowList = (state: { version: number; total: number }) => (req: ApiRequest) => {
    const start = Number(req.query.get('starting_after') ?? 0);
    const rows = items(PER_PAGE, start + 1)
      .filter((r) => r.id <= state.total)
      .map((r) => ({ ...r, name: `v${state.version} ${r.name}` }));
    return { body: { object: 'list', has_more: start + PER_PAGE < state.total, data: rows } };
  };
  const requestsOf = (server: TestApi, from: number) =>
    server.requests.slice(from).map((r) => Number(r.query.get('starting_after') ?? 0) / PER_PAGE);

  for (const disposition of ['merge', 'replace'] as const) {
    it(`${disposition}: a killed run keeps its committed batches, the rerun fetches only the rest and lands exact rows`, async () => {
      const data = { version: 1, total: PAGES * PER_PAGE };
      const server = await api(slowList(data), { latencyMs: 40 });
      const p = await project({
        base_url: `${server.url}/v1`,
        resources: {
          customers: {
            records: '$.data',
            params: { limit: PER_PAGE },
            paginator: { type: 'has_more' },
            primary_key: ['id'],
            write_disposition: disposition,
            batch_records: 50,
          },
        },
      });
      if (disposition === 'replace') {
        // A first, complete version that the killed run must not half-replace.
        data.total = 300;
        await p.runOk();
        assert.equal(await p.count('bronze.customers'), 300);
        data.total = PAGES * PER_PAGE;
        data.version = 2;
      }
      const before = server.requests.length;
      const kill = await runAndKill(p.dir, () => server.requests.length - before >= 24);
      assert.ok(kill.killed, 'dip run was killed mid-listing');
      const firstRun = requestsOf(server, before);
      const lake = await p.reopen();
      const state = (await lake.catalog.getState('p', 'api', 'customers')) as {
        pass?: { resume?: Record<string, { params: Record<string, string> }> };
      } | null;
      const resumeAt = Number(state?.pass?.resume?.['']?.params['starting_after'] ?? Number.NaN) / PER_PAGE;
      assert.ok(resumeAt >= 4, `batches were committed before the kill (resume at page index ${resumeAt})`);
      if (disposition === 'merge') {
        assert.equal(await p.count('bronze.customers'), resumeAt * PER_PAGE, 'every committed batch is in the table');
      } else {
        assert.deepEqual(
          [
            await p.count('bronze.customers'),
            await p.num(`select count(*) from bronze.customers where name like 'v1 %'`),
          ],
          [300, 300],
          'no half replacement is visible',
        );
        // Staged batches are listed in the stream state; gc keeps them (and deletes only what the kill left unlisted).
        const listed = (
          (state as { _dip_staged?: { units: { bronze?: { path: string }; raw?: { path: string } }[] } })._dip_staged
            ?.units ?? []
        ).flatMap((u) => [u.bronze?.path, u.raw?.path].filter((x): x is string => x !== undefined));
        assert.equal(listed.length, 2 * (resumeAt / 2), 'one bronze and one raw file per staged batch of two pages');
        const gc = await collectGarbage(lake, { retentionMs: 0, orphanGraceMs: 0 });
        assert.deepEqual(
          gc.deleted.filter((f) => listed.includes(f)),
          [],
          'gc keeps staged files',
        );
      }
      const mark = server.requests.length;
      const rerun = await p.runOk();
      const secondRun = requestsOf(server, mark);
      // The rerun starts where the last committed batch ended: committed pages are never refetched.
      assert.equal(secondRun[0], resumeAt);
      assert.deepEqual(
        secondRun,
        Array.from({ length: PAGES - resumeAt }, (_, i) => resumeAt + i),
      );
      const refetched = secondRun.filter((page) => firstRun.includes(page)).length;
      assert.equal(
        refetched,
        firstRun.filter((page) => page >= resumeAt).length,
        'only pages fetched but not committed before the kill are fetched again',
      );
      assert.ok(refetched < firstRun.length);
      // A run counts the rows its commits land: a merge rerun lands what it fetched; a replace
      // rerun's swap lands the batches the killed run staged too (that run's commits landed none).
      assert.equal(
        rerun.stats.streams['api.customers']?.rows,
        disposition === 'merge' ? (PAGES - resumeAt) * PER_PAGE : PAGES * PER_PAGE,
      );
      const expectedName = disposition === 'replace' ? 'v2 %' : 'v1 %';
      assert.deepEqual(
        [
          await p.count('bronze.customers'),
          await p.num('select count(distinct id) from bronze.customers'),
          await p.num(`select count(*) from bronze.customers where name like '${expectedName}'`),
        ],
        [PAGES * PER_PAGE, PAGES * PER_PAGE, PAGES * PER_PAGE],
      );
      // The raw zone holds each page of the version in force once.
      if (disposition === 'merge') assert.equal(await p.count('raw.customers'), PAGES);
      const finalState = (await lake.catalog.getState('p', 'api', 'customers')) as Record<string, unknown>;
      assert.equal(finalState['_dip_staged'], undefined, 'nothing staged is left in the state');
      console.log(
        `${disposition}: killed after ${firstRun.length} pages, ${resumeAt} committed, rerun fetched ${secondRun.length} (${refetched} refetched)`,
      );
    });
  }

  it('replace: staged batches are never skipped: a changed disposition or a lost staged file fails with what to do', async () => {
    const data = { version: 1, total: PAGES * PER_PAGE };
    const server = await api(slowList(data), { latencyMs: 40 });
    const resource = (disposition: string) => ({
      base_url: `${server.url}/v1`,
      resources: {
        customers: {
          records: '$.data',
          params: { limit: PER_PAGE },
          paginator: { type: 'has_more' },
          primary_key: ['id'],
          write_disposition: disposition,
          batch_records: 50,
        },
      },
    });
    const p = await project(resource('replace'));
    const before = server.requests.length;
    assert.ok((await runAndKill(p.dir, () => server.requests.length - before >= 16)).killed);
    const writeConfig = async (disposition: string) => {
      await p.write(
        'dip.yaml',
        `${JSON.stringify(projectWithSources({ api: { type: 'rest', ...resource(disposition) } }), null, 2)}\n`,
      );
      return p.reopen();
    };
    await writeConfig('merge');
    const switched = await p.run();
    assert.equal(switched.errors[0]?.exitCode, 2);
    assert.match(
      switched.errors[0]?.message ?? '',
      /p\.api\.customers: an interrupted replace run staged \d+ batch\(es\) and the stream is now write_disposition merge; run it once more as replace, or start over with: dip state p --stream customers --reset/,
    );
    const lake = await writeConfig('replace');
    const state = (await lake.catalog.getState('p', 'api', 'customers')) as {
      _dip_staged: { units: { bronze: { path: string } }[] };
    };
    const lost = state._dip_staged.units[0]?.bronze.path as string;
    await rm(join(p.lakeDir, lost));
    const gone = await p.run();
    assert.equal(gone.errors[0]?.exitCode, 3);
    assert.match(
      gone.errors[0]?.message ?? '',
      new RegExp(
        `a batch staged by an interrupted run is gone \\(${lost.replace(/[.]/g, '\\.')}\\); start the stream over with: dip state p --stream customers --reset`,
      ),
    );
  });
});
