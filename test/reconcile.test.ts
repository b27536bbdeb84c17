/**
 * Reconciliation of a callback stream (issue 16): the social API emulator calls back a gateway
 * endpoint on new and updated posts (GitHub-style signatures, redeliveries) and drops a seeded
 * 3% of the callbacks; `reconcile` lists the posts through the pipeline's REST source, finds
 * exactly the posts whose newest version no callback brought, lands them into the stream's raw
 * and bronze (marked `dip_filled_by`), and its report's counts are exact. A second reconcile
 * finds nothing; nothing lands twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadProject } from '../src/config/load.js';
import { pipelineDag } from '../src/config/task-graph.js';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import type { SocialWebhooks } from '../src/emulate/social-webhooks.js';
import { type GatewayServer, startGateway } from '../src/gateway/server.js';
import { reconcile, reconcileReports } from '../src/ops/reconcile.js';
import { startRuntime } from '../src/orchestrate/runtime.js';
import { DipMetrics } from '../src/serve/metrics.js';
import { createServer } from '../src/serve/server.js';
import { runCli, TestProject } from './support/project.js';

const SECRET = 'hook-secret';

for (const types of [['post.created'], ['post.created', 'post.updated']] as const)
  describe(`reconcile (${types.join(' + ')} callbacks): dropped ones are found, filled once, counted exactly`, () => {
    let emu: SocialApiEmulator;
    let p: TestProject;
    let gw: GatewayServer;
    let hooks: SocialWebhooks;
    let from: string;
    const field = types.length === 1 ? 'created_at' : 'updated_at';

    before(async () => {
      emu = await SocialApiEmulator.start({ seed: 21, posts: 30, rateLimit: null });
      p = await TestProject.withSources({
        social: {
          type: 'rest',
          base_url: emu.url,
          auth: {
            type: 'oauth2_client_credentials',
            token_url: '/oauth/token',
            client_id: emu.clientId,
            client_secret: emu.clientSecret,
          },
          resources: {
            posts: {
              params: { limit: 200 },
              records: '$.data',
              paginator: {
                type: 'cursor',
                cursor_path: '$.paging.next_cursor',
                param: 'cursor',
                has_more_path: '$.paging.has_more',
              },
              primary_key: ['id'],
              write_disposition: 'merge',
            },
          },
        },
        hooks: {
          type: 'gateway',
          endpoints: {
            post_events: {
              path: '/hooks/social',
              auth: { type: 'github', secret: SECRET },
              event_id: 'id',
              reconcile: {
                source: 'social',
                resource: 'posts',
                // A feed of creations is compared by creation time, one of updates by update time.
                updated: field,
                callback_updated: `data.${field}`,
                max_miss_rate: 0.01,
              },
            },
          },
        },
      });
      gw = await startGateway(await loadProject(p.dir), { host: '127.0.0.1', port: 0 });
      from = emu.clock;
      hooks = emu.enableWebhooks({
        url: `${gw.url}/hooks/social`,
        secret: SECRET,
        dropRate: 0.03,
        redeliverRate: 0.05,
        seed: 4,
        types: [...types],
      });
      while (hooks.stats.events < (types.length === 1 ? 800 : 1500)) {
        emu.advance(10 * 60_000);
        await hooks.flush();
      }
    });
    after(async () => {
      await gw?.close();
      await p?.dispose();
      await emu?.close();
    });

    it('is a scheduled task: reconcile.hooks runs before ingest.hooks', async () => {
      const dag = pipelineDag((await loadProject(p.dir)).config, 'p');
      const task = (name: string) => dag.tasks.find((t) => t.name === name);
      assert.deepEqual(task('reconcile.hooks')?.run, { kind: 'reconcile', source: 'hooks' });
      assert.ok(task('ingest.hooks')?.deps.includes('reconcile.hooks'));
      assert.equal(task('reconcile.social'), undefined);
    });

    it('finds exactly the dropped posts, lands them once, and a second reconcile finds none', async () => {
      const s = hooks.stats;
      assert.equal(s.failed, 0);
      assert.ok(s.dropped.length > 0 && s.redelivered > 0, `dropped ${s.dropped.length}, redelivered ${s.redelivered}`);
      const to = emu.clock;
      const inWindow = emu.data.allPosts().filter((post) => post[field] >= from && post[field] <= to);
      const missing = inWindow.filter((post) => !s.delivered.has(post.id)).map((post) => post.id);
      // With created-only callbacks a dropped one is a missing post; with updates too, a dropped
      // update leaves a stale version (late) unless a later one arrived.
      const late =
        field === 'created_at'
          ? []
          : inWindow
              .filter((post) => (s.delivered.get(post.id) ?? post.updated_at) < post.updated_at)
              .map((post) => post.id);
      if (field === 'created_at') assert.deepEqual([...missing].sort(), s.dropped.map((d) => d.post).sort());
      else {
        assert.ok(late.length > 0, `late ${late.length}`);
        // Exactly the posts whose newest version's callback was dropped on purpose.
        const newestDropped = inWindow.filter((post) =>
          s.dropped.some((d) => d.post === post.id && d.updated_at === post.updated_at),
        );
        assert.deepEqual(newestDropped.map((post) => post.id).sort(), [...missing, ...late].sort());
      }
      assert.ok(missing.length + late.length > 0);

      const lake = await p.lake();
      const [report] = await reconcile(lake, 'p', 'post_events', { from, to });
      assert.ok(report);
      assert.equal(report.expected, inWindow.length);
      assert.equal(report.missing, missing.length);
      assert.equal(report.late, late.length);
      assert.equal(report.received, inWindow.length - missing.length);
      assert.equal(report.filled, missing.length + late.length);
      assert.deepEqual(report.missing_ids, [...missing].sort());
      assert.deepEqual(report.late_ids, [...late].sort());
      assert.equal(report.alert, (missing.length + late.length) / inWindow.length > 0.01);

      await p.runOk();
      const delivered = s.events - s.dropped.length;
      const table = 'bronze.post_events';
      assert.equal(await p.num(`select count(*) from ${table} where dip_filled_by is null`), delivered);
      assert.equal(await p.num(`select count(distinct id) from ${table} where dip_filled_by is null`), delivered);
      assert.equal(await p.num(`select count(*) from ${table} where dip_filled_by = 'reconcile'`), report.filled);
      assert.deepEqual(
        (await p.rows(`select data.id as id from ${table} where dip_filled_by = 'reconcile' order by 1`)).map(
          (r) => r['id'],
        ),
        [...missing, ...late].sort(),
      );

      const [second] = await reconcile(lake, 'p', 'post_events', { from, to });
      assert.ok(second);
      assert.deepEqual(
        { expected: second.expected, missing: second.missing, late: second.late, filled: second.filled },
        { expected: inWindow.length, missing: 0, late: 0, filled: 0 },
      );
      await p.runOk();
      assert.equal(await p.count(table), delivered + report.filled);
      const kept = await reconcileReports(lake, 'p', 'post_events');
      assert.deepEqual(
        kept.map((r) => r.id),
        [second.id, report.id],
      );

      // The same operation from the CLI (a third reconcile: nothing missing, exit 0), the reports
      // it keeps, and the /metrics gauges of the newest one.
      const cli = await runCli(['reconcile', 'p', 'post_events', '--from', from, '--to', to, '--json'], p.dir);
      assert.equal(cli.code, 0, cli.stderr);
      const third = JSON.parse(cli.stdout) as { missing: number; filled: number; expected: number }[];
      assert.deepEqual(
        third.map((r) => [r.expected, r.missing, r.filled]),
        [[inWindow.length, 0, 0]],
      );
      const listed = await runCli(['reconcile', 'p', '--reports', '--json'], p.dir);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(
        (JSON.parse(listed.stdout) as { missing: number }[]).map((r) => r.missing),
        [0, 0, missing.length],
      );
      // The API: the reports, and a reconcile run (nothing missing).
      const served = await p.reopen();
      const runtime = startRuntime(served, { concurrency: 0 });
      const app = await createServer(served, runtime);
      try {
        const got = await app.inject({ method: 'GET', url: '/pipelines/p/reconcile?stream=post_events' });
        assert.equal(got.statusCode, 200);
        assert.deepEqual(
          (got.json() as { reports: { missing: number }[] }).reports.map((r) => r.missing),
          [0, 0, missing.length],
        );
        const ran = await app.inject({
          method: 'POST',
          url: '/pipelines/p/reconcile',
          payload: { stream: 'post_events', from, to },
        });
        assert.equal(ran.statusCode, 200, ran.body);
        assert.deepEqual(
          (ran.json() as { reports: { expected: number; missing: number; filled: number }[] }).reports.map((r) => [
            r.expected,
            r.missing,
            r.filled,
          ]),
          [[inWindow.length, 0, 0]],
        );
      } finally {
        await app.close();
        await runtime.stop();
      }
      const metrics = await (await DipMetrics.create(await p.reopen(), { defaultMetrics: false })).render();
      assert.match(metrics, /dip_reconcile_objects\{pipeline="p",stream="hooks.post_events",count="missing"\} 0\n/);
      assert.match(
        metrics,
        new RegExp(
          `dip_reconcile_objects\\{pipeline="p",stream="hooks.post_events",count="over_threshold"\\} ${report.alert ? 1 : 0}\\n`,
        ),
      );
    });
  });
