import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { SocialApiEmulator, type RateLimit } from '../../emulate/social-api.js';
import type { GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';

interface SocialApiFlags {
  port: string;
  seed: string;
  posts: string;
  errorRate: string;
  rateLimit: string;
  latency: string;
  speed?: string;
}

function fraction(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1)
    throw new DipError('input', `${flag} "${text}": expected a number from 0 to 1`);
  return n;
}

/** "600/60s", "100/1m", "10/500ms" or "off"; a window without a unit is in seconds. */
export function parseRateLimit(text: string): RateLimit | null {
  if (text === 'off') return null;
  const m = /^(\d+)\/(\d+)(ms|s|m)?$/.exec(text.trim());
  const unit = m?.[3] === 'ms' ? 1 : m?.[3] === 'm' ? 60_000 : 1000;
  const requests = Number(m?.[1]);
  const windowMs = Number(m?.[2]) * unit;
  if (!m || requests < 1 || windowMs < 1) {
    throw new DipError(
      'input',
      `--rate-limit "${text}": expected <requests>/<window>, e.g. 600/60s, 100/1m, 10/500ms, or off`,
    );
  }
  return { requests, windowMs };
}

export function registerEmulate(program: Command): void {
  const emulate = program
    .command('emulate')
    .description('local emulators of external APIs, for demos, tests and benchmarks');
  emulate
    .command('social-api')
    .description(
      'serve a TikTok/Instagram-style metrics API (OAuth2 client credentials, cursor pages, rate limits) until Ctrl-C',
    )
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', '8787')
    .option('--seed <n>', 'seed of the generated data', '1')
    .option('--posts <n>', 'initial number of posts', '500')
    .option('--error-rate <f>', 'share of data requests that fail with 500', '0.02')
    .option('--rate-limit <n/window>', 'per-token budget, e.g. 600/60s, or off', '600/60s')
    .option('--latency <ms>', 'delay added to every response', '0')
    .option('--speed <factor>', 'let the data clock follow real time at this speed (60: an hour per minute)')
    .action(async (opts: SocialApiFlags, cmd: Command) => {
      const json = Boolean(cmd.optsWithGlobals<GlobalOptions>().json);
      const speed = opts.speed === undefined ? undefined : Number(opts.speed);
      if (speed !== undefined && !(speed > 0))
        throw new DipError('input', `--speed "${opts.speed}": expected a positive number`);
      const port = wholeNumber(opts.port, '--port');
      if (port > 65535) throw new DipError('input', `--port "${opts.port}": expected a port number up to 65535`);
      const api = await SocialApiEmulator.start({
        port,
        seed: wholeNumber(opts.seed, '--seed'),
        posts: wholeNumber(opts.posts, '--posts'),
        errorRate: fraction(opts.errorRate, '--error-rate'),
        rateLimit: parseRateLimit(opts.rateLimit),
        latencyMs: wholeNumber(opts.latency, '--latency'),
        ...(speed ? { clockSpeed: speed } : {}),
      }).catch((err: unknown) => {
        const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        throw new DipError(
          inUse ? 'config' : 'internal',
          inUse
            ? `port ${opts.port} is in use; pick another with --port (0: any free port)`
            : 'the emulator could not start',
          { cause: err },
        );
      });
      const info = {
        url: api.url,
        token_url: api.tokenUrl,
        client_id: api.clientId,
        client_secret: api.clientSecret,
        seed: api.data.seed,
        posts: api.data.postCount,
        accounts: api.data.accounts.length,
        clock: api.clock,
      };
      if (json) {
        process.stdout.write(`${JSON.stringify(info)}\n`);
      } else {
        process.stdout.write(
          [
            `social API emulator on ${api.url}`,
            `  token:          POST ${api.tokenUrl} (grant_type=client_credentials)`,
            `  client_id:      ${api.clientId}`,
            `  client_secret:  ${api.clientSecret}`,
            `  data:           ${info.posts} posts, ${info.accounts} accounts, seed ${info.seed}, clock ${info.clock}`,
            `  try:            curl -s -u ${api.clientId}:${api.clientSecret} -d grant_type=client_credentials ${api.tokenUrl}`,
            'Ctrl-C to stop',
            '',
          ].join('\n'),
        );
      }
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await api.close();
      if (!json) {
        const s = api.stats();
        process.stderr.write(
          `stopped after ${s.requests} requests (${s.tokenRequests} token, ${s.rateLimited} rate-limited, ${s.serverErrors} answered 500)\n`,
        );
      }
    });
  emulate
    .command('posting')
    .description(
      'post Pinterest-style activity (users, pins with geolocation, comments, likes) to a gateway endpoint at a rate',
    )
    .requiredOption('--url <url>', 'the endpoint, e.g. http://127.0.0.1:8430/ingest/<pipeline>/<source>/<endpoint>')
    .option(
      '--header <name:value>',
      'a header for every request (auth), repeatable',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--total <n>', 'events in all', '1000')
    .option('--rate <n>', 'events per second (0: as fast as answered)', '100')
    .option('--batch <n>', 'events per request (more than 1: NDJSON)', '1')
    .option('--concurrency <n>', 'requests in flight', '8')
    .option('--redeliver <f>', 'share of acknowledged requests sent again', '0')
    .option('--event-bytes <n>', 'pad each event to about this many bytes', '0')
    .option('--seed <n>', 'seed of the generated activity', '1')
    .action(
      async (opts: {
        url: string;
        header: string[];
        total: string;
        rate: string;
        batch: string;
        concurrency: string;
        redeliver: string;
        eventBytes: string;
        seed: string;
      }) => {
        const { postActivity } = await import('../../emulate/posting.js');
        const headers: Record<string, string> = {};
        for (const h of opts.header) {
          const i = h.indexOf(':');
          if (i < 1) throw new DipError('input', `--header "${h.split(':')[0]}…": expected <name>: <value>`);
          headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
        }
        const stopped = new AbortController();
        process.once('SIGINT', () => stopped.abort());
        process.once('SIGTERM', () => stopped.abort());
        const s = await postActivity({
          url: opts.url,
          headers,
          total: wholeNumber(opts.total, '--total'),
          rate: wholeNumber(opts.rate, '--rate'),
          batch: wholeNumber(opts.batch, '--batch', 1),
          concurrency: wholeNumber(opts.concurrency, '--concurrency', 1),
          redeliver: fraction(opts.redeliver, '--redeliver'),
          eventBytes: wholeNumber(opts.eventBytes, '--event-bytes'),
          seed: wholeNumber(opts.seed, '--seed'),
          signal: stopped.signal,
        });
        process.stdout.write(
          `${JSON.stringify({ acked: s.acked.size, failed: s.failed.size, requests: s.requests, redelivered: s.redelivered, by_status: s.byStatus, elapsed_ms: s.elapsedMs })}\n`,
        );
        if (s.failed.size > 0) process.exitCode = 1;
      },
    );
}
