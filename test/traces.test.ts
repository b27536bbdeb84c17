/**
 * Traces: a `dip run` with `tracing.endpoint` set exports its spans over OTLP/HTTP (JSON) to a
 * receiver started by the test on loopback: one trace whose root is the run, streams below it,
 * units, source HTTP requests and commits below their stream, run ids as attributes; the
 * run's log lines carry the trace id.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import { runCli, TestProject } from './support/project.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: Record<string, unknown> }[];
  status: { code: number };
}

const attr = (s: OtlpSpan, key: string): unknown => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
};

describe('traces over OTLP/HTTP', () => {
  let receiver: Server;
  let endpoint: string;
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  let emulator: SocialApiEmulator;

  before(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        const parsed = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
        for (const rs of parsed.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    emulator = await SocialApiEmulator.start({ seed: 3, posts: 45, rateLimit: null });
  });
  after(async () => {
    await emulator?.close();
    await new Promise((r) => receiver.close(r));
  });

  it('a run exports one trace: run → stream → units, HTTP requests and commits', async () => {
    const p = await TestProject.withSources(
      {
        social: {
          type: 'rest',
          base_url: emulator.url,
          auth: {
            type: 'oauth2_client_credentials',
            token_url: '/oauth/token',
            client_id: 'dip-demo',
            client_secret: 'dip-demo-secret',
          },
          resources: {
            posts: {
              path: '/posts',
              params: { limit: 20 },
              records: '$.data',
              paginator: {
                type: 'cursor',
                cursor_path: '$.paging.next_cursor',
                param: 'cursor',
                has_more_path: '$.paging.has_more',
              },
              primary_key: ['id'],
              write_disposition: 'append',
            },
          },
        },
      },
      { raw: false },
    );
    try {
      const config = JSON.parse(await readFile(join(p.dir, 'dip.yaml'), 'utf8')) as Record<string, unknown>;
      config['tracing'] = { endpoint, service_name: 'dip-test' };
      await p.write('dip.yaml', JSON.stringify(config));
      const r = await runCli(['run', '--json'], p.dir, { DIP_LOG_LEVEL: 'info' });
      assert.equal(r.code, 0, r.stderr);
      const runId = (JSON.parse(r.stdout) as { runId: string }[])[0]?.runId;
      assert.match(runId ?? '', /^run_/);
      assert.ok(paths.length >= 1 && paths.every((x) => x === 'POST /v1/traces application/json'), paths.join(', '));

      const byId = new Map(spans.map((s) => [s.spanId, s]));
      const ancestors = (s: OtlpSpan): string[] => {
        const out: string[] = [];
        for (let p = s.parentSpanId && byId.get(s.parentSpanId); p; p = p.parentSpanId && byId.get(p.parentSpanId))
          out.push(p.name);
        return out;
      };
      const roots = spans.filter((s) => !s.parentSpanId);
      assert.deepEqual(
        roots.map((s) => s.name),
        ['dip.run'],
      );
      const run = roots[0] as OtlpSpan;
      assert.equal(attr(run, 'dip.run_id'), runId);
      assert.equal(attr(run, 'dip.pipeline'), 'p');
      assert.ok(
        spans.every((s) => s.traceId === run.traceId),
        'one trace',
      );
      assert.ok(spans.every((s) => s.status.code === 1 && BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano)));
      const named = (n: string) => spans.filter((s) => s.name === n);
      const [stream, ...otherStreams] = named('dip.stream');
      assert.equal(otherStreams.length, 0);
      assert.equal(stream?.parentSpanId, run.spanId);
      assert.equal(attr(stream as OtlpSpan, 'dip.stream'), 'social.posts');
      // 45 posts in pages of 20: 3 requests, batched into one unit.
      assert.equal(named('http.request').length, 3);
      assert.equal(named('dip.unit').length, 1);
      for (const n of ['http.request', 'dip.unit', 'dip.commit'])
        for (const s of named(n))
          assert.deepEqual(ancestors(s).slice(-2), ['dip.stream', 'dip.run'], `${n} is below the stream`);
      assert.deepEqual(
        named('http.request').map((s) => attr(s, 'http.response.status_code')),
        ['200', '200', '200'],
      );
      assert.ok(named('dip.commit').length >= 1);
      assert.ok(
        named('dip.commit').every(
          (s) => attr(s, 'dip.run_id') === runId && typeof attr(s, 'dip.commit_id') === 'string',
        ),
      );
      // Log lines carry the trace id of the span they were written in.
      const logged = r.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { trace_id?: string });
      assert.ok(logged.length > 0, `log lines: ${r.stderr}`);
      assert.ok(
        logged.every((l) => l.trace_id === run.traceId),
        r.stderr,
      );
    } finally {
      await p.dispose();
    }
  });
});
