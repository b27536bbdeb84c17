/**
 * Broker → bronze benchmark (issue 16): messages/s of 1 KB JSON landed by `dip run` from
 * JetStream (3 partition subjects) against a bare in-process read of the same messages (ordered
 * consumers, no landing) measured in the same run; then ack-to-queryable lag under a steady
 * publish rate with `dip run --follow` (p50/p99 of bronze `_dip_ingested_at` − the broker's
 * store time `_broker_timestamp`; the ingest time is taken just before the commit, so the figure
 * is short of the commit by the commit's own duration). Kafka: the same against DIP_KAFKA_BROKERS
 * when set; the librdkafka mock cluster on this machine refuses the client's protocol (see
 * bench/README.md), so without it Kafka is reported as not measured.
 *
 *   npm run bench -- kafka [--messages N] [--rate R] [--seconds S] [--json]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNats } from '../test/support/nats.js';
import { projectWithSources } from '../test/support/project.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const PAD = 'x'.repeat(960);
const SUBJECTS = ['bench.0', 'bench.1', 'bench.2'];

function runDip(args: string[], cwd: string): { child: ChildProcess; done: Promise<number> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', DIP_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { child, done: new Promise((r) => child.on('exit', (code) => r(code ?? 1))) };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] ?? Number.NaN;
};

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '100000' },
      rate: { type: 'string', default: '5000' },
      seconds: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
    },
  });
  const total = Number(values.messages);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), 'dip-bench-broker-'));
  const results: Record<string, unknown> = { messages: total };
  try {
    const { connect } = await import('@nats-io/transport-node');
    const js = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats.url });
    const jsm = await js.jetstreamManager(nc);
    const client = js.jetstream(nc);
    const enc = new TextEncoder();
    await jsm.streams.add({ name: 'BENCH', subjects: ['bench.*'] });
    await jsm.streams.add({ name: 'LAG', subjects: ['lag.*'] });
    for (let i = 0; i < total; i += 2000) {
      const pubs: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(total, i + 2000); j++)
        pubs.push(client.publish(SUBJECTS[j % 3] as string, enc.encode(JSON.stringify({ id: j, pad: PAD }))));
      await Promise.all(pubs);
    }

    // Baseline: read every message with three ordered consumers in this process, no landing.
    let t0 = performance.now();
    await Promise.all(
      SUBJECTS.map(async (subject) => {
        const c = await client.consumers.get('BENCH', { filter_subjects: subject });
        let left = (await c.info(true)).num_pending;
        const it = await c.consume({ max_messages: 10_000 });
        for await (const _m of it) if (--left <= 0) break;
        it.stop();
      }),
    );
    const bareS = (performance.now() - t0) / 1000;

    const batch = { max_events: 20_000, max_age: '500ms' };
    const config = projectWithSources({
      bus: {
        type: 'jetstream',
        url: nats.url,
        stream: 'BENCH',
        batch,
        streams: { events: { subjects: SUBJECTS } },
      },
    });
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify(config));
    t0 = performance.now();
    const code = await runDip(['run'], dir).done;
    const dipS = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`dip run exited ${code}`);
    results['jetstream'] = {
      dip_msgs_per_s: Math.round(total / dipS),
      bare_read_msgs_per_s: Math.round(total / bareS),
      ratio: Number((bareS / dipS).toFixed(3)),
      target_msgs_per_s: 50_000,
    };

    // Lag: publish at `rate`/s for `seconds` while `dip run --follow` lands.
    const lagDir = await mkdtemp(join(tmpdir(), 'dip-bench-lag-'));
    const lagSubjects = ['lag.0', 'lag.1', 'lag.2'];
    await writeFile(
      join(lagDir, 'dip.yaml'),
      JSON.stringify(
        projectWithSources({
          bus: {
            type: 'jetstream',
            url: nats.url,
            stream: 'LAG',
            batch: { max_events: 10_000, max_age: '250ms' },
            streams: { events: { subjects: lagSubjects } },
          },
        }),
      ),
    );
    const follower = runDip(['run', '--follow'], lagDir);
    await new Promise((r) => setTimeout(r, 3000));
    const n = rate * seconds;
    const start = performance.now();
    for (let j = 0; j < n; j += rate / 20) {
      const due = start + (j / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const pubs: Promise<unknown>[] = [];
      for (let k = j; k < Math.min(n, j + rate / 20); k++)
        pubs.push(client.publish(lagSubjects[k % 3] as string, enc.encode(JSON.stringify({ id: k, pad: PAD }))));
      await Promise.all(pubs);
    }
    await new Promise((r) => setTimeout(r, 3000));
    follower.child.kill('SIGINT');
    await follower.done;
    const { Lake } = await import('../src/lake/lake.js');
    const { loadProject } = await import('../src/config/load.js');
    const { query } = await import('../src/lake/query.js');
    const lake = await Lake.open(await loadProject(lagDir));
    const rows = (
      await query(lake, 'select epoch_ms(_dip_ingested_at) - _broker_timestamp as lag from bronze.events')
    ).rows.map((r) => Number(r['lag']));
    await lake.close();
    results['lag'] = {
      rate,
      seconds,
      landed: rows.length,
      published: n,
      p50_ms: pct(rows, 0.5),
      p99_ms: pct(rows, 0.99),
      max_ms: Math.max(...rows),
    };
    await rm(lagDir, { recursive: true, force: true });
    results['kafka'] = process.env['DIP_KAFKA_BROKERS']
      ? 'not measured in this version of the benchmark'
      : 'not measured: no Kafka ≥ 3.5 here (set DIP_KAFKA_BROKERS); the librdkafka 2.0.2 mock refuses ApiVersions v3';
    await nc.close();
  } finally {
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(values.json ? `${JSON.stringify(results)}\n` : `${JSON.stringify(results, null, 2)}\n`);
  return 0;
}
