/**
 * S3 lake benchmark: a generated CSV of 5M rows landed by `dip run` (a) into the local lake and
 * (b) into an S3 lake on an S3-compatible server (s3rver on loopback, in its own process, data
 * in a temp dir), and (c) the same bytes — the lake files run (a) wrote — uploaded with the AWS
 * SDK alone (PutObject, or lib-storage's multipart Upload beyond 16 MB, as dip does), in the
 * same run. Reported: b/a, and b against a + c (the target: b ≤ 1.3 × (a + c)).
 *
 *   npm run bench -- s3 [--rows N] [--reps N] [--raw] [--json]
 */
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { count, machineInfo, median, parseOrExit, renderTable } from './common.js';
import { BenchFailure, failIfBad, spawnMeasured } from './measure.js';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const WORK = join(BENCH_DIR, '.work', 's3');
const DIP_CLI = join(ROOT, 'dist', 'cli', 'main.js');
const BUCKET = 'dip-bench';
const PART = 16 * 1024 * 1024;
const TARGET = 1.3;

const HELP = `npm run bench -- s3 [options]

  --rows N     rows of the CSV (default 5000000)
  --reps N     timed runs per variant, median reported (default 1)
  --raw        keep the raw zone on (default off: the storage's cost, not the envelope writer's)
  --json       print one JSON document instead of tables
  --markdown   tables as Markdown (for bench/README.md)
`;

interface Options {
  rows: number;
  reps: number;
  raw: boolean;
  json: boolean;
  markdown: boolean;
}

function parse(args: string[]): Options | undefined {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: 'string', default: '5000000' },
      reps: { type: 'string', default: '1' },
      raw: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return undefined;
  }
  return {
    rows: count(values.rows, 'rows'),
    reps: count(values.reps, 'reps'),
    raw: values.raw,
    json: values.json,
    markdown: values.markdown,
  };
}

async function generate(file: string, rows: number): Promise<void> {
  if (existsSync(file)) return;
  await mkdir(dirname(file), { recursive: true });
  const out = createWriteStream(`${file}.tmp`);
  const write = (s: string) => (out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', r)));
  await write('id,customer,amount,created_at,status,note,ref\n');
  const statuses = ['paid', 'refunded', 'pending'];
  let chunk = '';
  for (let i = 1; i <= rows; i++) {
    const day = String(1 + (i % 28)).padStart(2, '0');
    chunk += `${i},C-${i % 5000},${((i * 7919) % 100000) / 100},2026-11-${day} ${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00,${statuses[i % 3]},note ${i % 1000},${(Math.imul(i, 2654435761) >>> 0).toString(16)}${(Math.imul(i ^ 0x5bd1e995, 40503) >>> 0).toString(36)}\n`;
    if (chunk.length > 1 << 20) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(chunk);
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  const { rename } = await import('node:fs/promises');
  await rename(`${file}.tmp`, file);
}

const S3RVER = `
import S3rver from 's3rver';
const [dir, bucket] = process.argv.slice(1);
const server = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
const { port } = await server.run();
process.stdout.write(JSON.stringify({ port }) + '\\n');
`;

async function startS3rver(dir: string): Promise<{ endpoint: string; stop(): void }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', S3RVER, dir, BUCKET], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) res((JSON.parse(out) as { port: number }).port);
    });
    child.on('exit', (code) => rej(new BenchFailure(`s3rver exited ${code}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

function projectYaml(storage: Record<string, unknown>, raw: boolean): string {
  return JSON.stringify({
    version: 1,
    project: 'bench-s3',
    storage,
    catalog: { kind: 'sqlite', path: '.dip/catalog.db' },
    engine: { threads: 2, memory_limit: '1GB' },
    pipelines: {
      p: { raw: { enabled: raw }, sources: { src: { type: 'files', streams: { events: { path: 'data/*.csv' } } } } },
    },
  });
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

/** The SDK alone: every file under `lakeDir` uploaded to `prefix`, files in parallel as dip's streams would not be (one at a time). */
async function sdkUpload(endpoint: string, lakeDir: string, prefix: string): Promise<number> {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const { Upload } = await import('@aws-sdk/lib-storage');
  const { readFile } = await import('node:fs/promises');
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const started = performance.now();
  for (const f of await files(lakeDir)) {
    const key = `${prefix}/${relative(lakeDir, f)}`;
    const size = (await stat(f)).size;
    if (size <= PART)
      await client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: await readFile(f), ContentLength: size }),
      );
    else
      await new Upload({
        client,
        params: { Bucket: BUCKET, Key: key, Body: createReadStream(f) },
        partSize: PART,
        queueSize: 4,
      }).done();
  }
  const ms = performance.now() - started;
  client.destroy();
  return ms;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseOrExit(() => parse(args), HELP);
  if ('exit' in parsed) return parsed.exit;
  const o = parsed.opts;
  const machine = machineInfo(ROOT);
  const csv = join(WORK, `events-v2-${o.rows}.csv`);
  await generate(csv, o.rows);
  const csvBytes = (await stat(csv)).size;
  const serverDir = join(WORK, 'server');
  await rm(serverDir, { recursive: true, force: true });
  await mkdir(serverDir, { recursive: true });
  const server = await startS3rver(serverDir);
  process.env['DIP_BENCH_S3_KEY'] = 'S3RVER';
  const times = { local: [] as number[], s3: [] as number[], sdk: [] as number[] };
  let lakeBytes = 0;
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      for (const variant of ['local', 's3'] as const) {
        const dir = join(WORK, `project-${variant}`);
        await rm(dir, { recursive: true, force: true });
        await mkdir(join(dir, 'data'), { recursive: true });
        const { link } = await import('node:fs/promises');
        await link(csv, join(dir, 'data', 'events.csv'));
        const storage =
          variant === 'local'
            ? { kind: 'local', path: '.dip/lake' }
            : {
                kind: 's3',
                bucket: BUCKET,
                prefix: `dip-${rep}`,
                endpoint: server.endpoint,
                credentials: { access_key_id: '${env:DIP_BENCH_S3_KEY}', secret_access_key: '${env:DIP_BENCH_S3_KEY}' },
              };
        await writeFile(join(dir, 'dip.yaml'), projectYaml(storage, o.raw));
        const m = await spawnMeasured(process.execPath, [DIP_CLI, '-p', dir, 'run', '--quiet'], ROOT);
        failIfBad(`dip run (${variant})`, m);
        const q = await spawnMeasured(
          process.execPath,
          [DIP_CLI, '-p', dir, 'query', '--json', 'select count(*)::BIGINT as n from bronze.events'],
          ROOT,
        );
        failIfBad(`dip query (${variant})`, q);
        const n = Number((JSON.parse(q.stdout) as { n: string }[])[0]?.n);
        if (n !== o.rows) throw new BenchFailure(`${variant}: bronze.events has ${n} rows, expected ${o.rows}`);
        times[variant].push(m.wallMs);
        if (variant === 'local') {
          const lake = join(dir, '.dip', 'lake');
          lakeBytes = 0;
          for (const f of await files(lake)) lakeBytes += (await stat(f)).size;
          times.sdk.push(await sdkUpload(server.endpoint, lake, `sdk-${rep}`));
        }
      }
    }
  } finally {
    server.stop();
  }
  const a = median(times.local) / 1000;
  const b = median(times.s3) / 1000;
  const c = median(times.sdk) / 1000;
  const result = {
    machine: {
      ...machine,
      loadAverageAtEnd: (await import('node:os')).loadavg().map((x) => Math.round(x * 100) / 100),
    },
    rows: o.rows,
    csvMB: Math.round(csvBytes / 1e5) / 10,
    lakeMB: Math.round(lakeBytes / 1e5) / 10,
    raw: o.raw,
    seconds: { local: a, s3: b, sdkUpload: c },
    ratios: { s3OverLocal: b / a, s3OverLocalPlusUpload: b / (a + c) },
    target: `s3 ≤ ${TARGET} × (local + upload)`,
    pass: b <= TARGET * (a + c),
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  const f = (x: number) => x.toFixed(2);
  process.stdout.write(
    `${o.rows.toLocaleString('en-US')} CSV rows (${result.csvMB} MB; lake files ${result.lakeMB} MB), raw zone ${o.raw ? 'on' : 'off'}, ${o.reps} rep(s), load ${machine.loadAverageAtStart.join(' ')} → ${result.machine.loadAverageAtEnd.join(' ')}\n\n`,
  );
  process.stdout.write(
    `${renderTable(
      ['variant', 'seconds', 'ratio'],
      [
        ['a) dip run, local lake', f(a), '1.00'],
        ['b) dip run, S3 lake (s3rver)', f(b), `${f(b / a)} of a`],
        ['c) the same bytes, AWS SDK upload alone', f(c), `${f(c / a)} of a`],
        ['b vs a + c', f(a + c), `${f(b / (a + c))} (target ≤ ${TARGET}: ${result.pass ? 'PASS' : 'FAIL'})`],
      ],
      o.markdown,
      [false, true, false],
    )}\n`,
  );
  return 0;
}
