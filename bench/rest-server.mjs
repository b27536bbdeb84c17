/**
 * The local API of the REST benchmark (bench/rest.ts), run as its own plain `node` process so
 * that serving pages never competes with the client's event loop.
 *
 *   node bench/rest-server.mjs [--pages 200] [--page-size 500] [--latency-ms 20] [--port 0]
 *   (or the env vars BENCH_REST_PAGES, BENCH_REST_PAGE_SIZE, BENCH_REST_LATENCY_MS, BENCH_REST_PORT)
 *
 * Endpoints (every response waits `latency-ms` on a timer before it is sent):
 *   GET /cursor?cursor=&limit=500   → {"data":[…], "next_cursor": "<opaque>" | null}
 *   GET /offset?offset=0&limit=500  → {"data":[…], "total": N}
 *   GET /stats                      → requests served, max in flight, first/last request times, CPU (no latency)
 *   POST /reset                     → zeroes the counters (no latency)
 *
 * Records (pages × page-size of them, ~15 fields: ids, strings, numbers, a boolean, a nested
 * object, ISO timestamps) are generated once at start-up from a fixed seed, and the bodies of
 * the page-aligned pages are serialised once too, so a request costs a timer and a socket write.
 * Unaligned offsets/limits are served too (serialised per request).
 *
 * Prints one line `{"ready":true,"port":…,"records":…,"bytes":…}` on stdout when listening,
 * and sends the same object over IPC when forked.
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    pages: { type: 'string', default: process.env.BENCH_REST_PAGES ?? '200' },
    'page-size': { type: 'string', default: process.env.BENCH_REST_PAGE_SIZE ?? '500' },
    'latency-ms': { type: 'string', default: process.env.BENCH_REST_LATENCY_MS ?? '20' },
    port: { type: 'string', default: process.env.BENCH_REST_PORT ?? '0' },
  },
});
const PAGES = Number(values.pages);
const PAGE_SIZE = Number(values['page-size']);
const LATENCY_MS = Number(values['latency-ms']);
const TOTAL = PAGES * PAGE_SIZE;
for (const [name, n] of [
  ['pages', PAGES],
  ['page-size', PAGE_SIZE],
  ['latency-ms', LATENCY_MS],
]) {
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected a whole number, got ${n}`);
}

// ─── data ────────────────────────────────────────────────────────────────────────────────

/** mulberry32: a small deterministic PRNG. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATUSES = ['active', 'pending', 'suspended', 'closed'];
const CATEGORIES = ['north', 'south', 'east', 'west', 'central', 'online', 'partner'];
const CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'JPY'];
const CITIES = ['Berlin', 'Lisbon', 'Oslo', 'Porto', 'Lyon', 'Graz', 'Turin', 'Ghent'];
const COUNTRIES = ['DE', 'PT', 'NO', 'PT', 'FR', 'AT', 'IT', 'BE'];
const T0 = Date.UTC(2024, 0, 1);

function makeRecords(n) {
  const r = rng(42);
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    const id = i + 1;
    const city = Math.floor(r() * CITIES.length);
    const created = T0 + Math.floor(r() * 60 * 86_400_000);
    out[i] = {
      id,
      external_id: `ext_${id.toString(36).padStart(8, '0')}_${Math.floor(r() * 0xffffff)
        .toString(16)
        .padStart(6, '0')}`,
      account_id: 1 + Math.floor(r() * 5000),
      name: `customer ${Math.floor(r() * 1_000_000)}`,
      email: `user${Math.floor(r() * 10_000_000)}@example.com`,
      status: STATUSES[Math.floor(r() * STATUSES.length)],
      category: CATEGORIES[id % CATEGORIES.length],
      amount: Math.round((r() * 20_000 - 5_000) * 100) / 100,
      quantity: Math.floor(r() * 1000),
      score: Math.round(r() * 1e6) / 1e6,
      currency: CURRENCIES[Math.floor(r() * CURRENCIES.length)],
      active: r() < 0.8,
      created_at: new Date(created).toISOString(),
      updated_at: new Date(created + Math.floor(r() * 30 * 86_400_000)).toISOString(),
      address: {
        street: `${1 + Math.floor(r() * 300)} Main Street`,
        city: CITIES[city],
        postal_code: String(10000 + Math.floor(r() * 89999)),
        country: COUNTRIES[city],
      },
      note: r() < 0.3 ? `note for ${id}: "quoted", with comma` : `note ${id % 997}`,
    };
  }
  return out;
}

const records = makeRecords(TOTAL);
const recordJson = records.map((x) => JSON.stringify(x));

const encodeCursor = (offset) => Buffer.from(`o:${offset}`).toString('base64url');
function decodeCursor(cursor) {
  const m = /^o:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  return m ? Number(m[1]) : undefined;
}

const dataJson = (offset, limit) => `[${recordJson.slice(offset, offset + limit).join(',')}]`;
const cursorBody = (offset, limit) => {
  const end = Math.min(TOTAL, offset + limit);
  return Buffer.from(
    `{"data":${dataJson(offset, limit)},"next_cursor":${end < TOTAL ? JSON.stringify(encodeCursor(end)) : 'null'}}`,
  );
};
const offsetBody = (offset, limit) => Buffer.from(`{"data":${dataJson(offset, limit)},"total":${TOTAL}}`);

// The page-aligned bodies, serialised once.
const cursorPages = new Map();
const offsetPages = new Map();
let bytes = 0;
for (let p = 0; p < PAGES; p++) {
  const offset = p * PAGE_SIZE;
  cursorPages.set(offset, cursorBody(offset, PAGE_SIZE));
  const body = offsetBody(offset, PAGE_SIZE);
  offsetPages.set(offset, body);
  bytes += body.length;
}

// ─── server ──────────────────────────────────────────────────────────────────────────────

const stats = {
  requests: 0,
  inFlight: 0,
  maxInFlight: 0,
  firstAt: null,
  lastAt: null,
  bytes: 0,
  cpu: process.cpuUsage(),
};

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

function intParam(q, name, fallback) {
  const v = q.get(name);
  if (v === null || v === '') return fallback;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://bench');
  if (url.pathname === '/stats') {
    const cpu = process.cpuUsage(stats.cpu);
    return reply(
      res,
      200,
      Buffer.from(JSON.stringify({ ...stats, cpu: undefined, cpuMs: (cpu.user + cpu.system) / 1000 })),
    );
  }
  if (url.pathname === '/reset') {
    Object.assign(stats, {
      requests: 0,
      inFlight: 0,
      maxInFlight: 0,
      firstAt: null,
      lastAt: null,
      bytes: 0,
      cpu: process.cpuUsage(),
    });
    return reply(res, 200, Buffer.from('{"ok":true}'));
  }
  const now = performance.timeOrigin + performance.now();
  stats.requests++;
  stats.firstAt ??= now;
  stats.inFlight++;
  if (stats.inFlight > stats.maxInFlight) stats.maxInFlight = stats.inFlight;
  let body;
  let status = 200;
  const limit = intParam(url.searchParams, 'limit', PAGE_SIZE);
  if (limit === undefined || limit === 0) {
    status = 400;
    body = Buffer.from('{"error":"bad limit"}');
  } else if (url.pathname === '/cursor') {
    const cursor = url.searchParams.get('cursor');
    const offset = cursor ? decodeCursor(cursor) : 0;
    if (offset === undefined) {
      status = 400;
      body = Buffer.from('{"error":"bad cursor"}');
    } else body = (limit === PAGE_SIZE && cursorPages.get(offset)) || cursorBody(offset, limit);
  } else if (url.pathname === '/offset') {
    const offset = intParam(url.searchParams, 'offset', 0);
    if (offset === undefined) {
      status = 400;
      body = Buffer.from('{"error":"bad offset"}');
    } else body = (limit === PAGE_SIZE && offsetPages.get(offset)) || offsetBody(offset, limit);
  } else {
    status = 404;
    body = Buffer.from('{"error":"not found"}');
  }
  const send = () => {
    stats.inFlight--;
    stats.bytes += body.length;
    stats.lastAt = performance.timeOrigin + performance.now();
    reply(res, status, body);
  };
  if (LATENCY_MS > 0) setTimeout(send, LATENCY_MS);
  else send();
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen(Number(values.port), '127.0.0.1', () => {
  const ready = {
    ready: true,
    port: server.address().port,
    pages: PAGES,
    pageSize: PAGE_SIZE,
    latencyMs: LATENCY_MS,
    records: TOTAL,
    bytes,
  };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  process.send?.(ready);
});

const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
