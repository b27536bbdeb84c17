/**
 * A posting emulator (`dip emulate posting`): Pinterest-style user activity — users, pins (with
 * a geolocation), comments, likes — generated from a seed and POSTed to a gateway endpoint at a
 * given rate, one JSON object per request or NDJSON batches. Every event has a unique `id`
 * (`<run>-<n>`). Like a webhook provider, a request that fails (refused connection, 429, 5xx)
 * is retried with a pause, up to `attempts`; a share of acknowledged requests is sent again
 * (`redeliver`), as providers do. The result lists which ids were acknowledged, so tests can
 * check what landed. Also the load generator of `npm run bench -- gateway`.
 *
 *   const stats = await postActivity({ url: 'http://127.0.0.1:8430/ingest/p/app/events', total: 1000 });
 */

export type ActivityKind = 'user' | 'pin' | 'comment' | 'like' | 'geolocation';

export interface ActivityEvent {
  id: string;
  type: ActivityKind;
  ts: string;
  user_id: number;
  [field: string]: unknown;
}

export interface PostingOptions {
  /** The endpoint's full URL. */
  url: string;
  /** Headers sent with every request (auth). */
  headers?: Record<string, string>;
  /** How many events in all (default 1000). */
  total?: number;
  /** Events per second over all requests; 0 (default): as fast as the gateway answers. */
  rate?: number;
  /** Events per request: 1 sends a JSON object, more an NDJSON batch (default 1). */
  batch?: number;
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** Share of acknowledged requests sent a second time (default 0). */
  redeliver?: number;
  /** Tries per request before it is given up (default 5). */
  attempts?: number;
  /** Pause between tries of a request, in ms (default 200; a 429's Retry-After wins). */
  retryDelayMs?: number;
  /** Pad every event to about this many bytes of JSON (default: no padding). */
  eventBytes?: number;
  seed?: number;
  /** Prefix of the event ids (default `e<seed>`). */
  idPrefix?: string;
  signal?: AbortSignal;
}

export interface PostingStats {
  /** Events whose request got a 2xx (at least once). */
  acked: Set<string>;
  /** Events whose request was given up (never acknowledged). */
  failed: Set<string>;
  requests: number;
  redelivered: number;
  byStatus: Record<string, number>;
  elapsedMs: number;
}

/** A seeded PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BOARDS = ['recipes', 'travel', 'diy', 'fashion', 'garden', 'fitness', 'art', 'cars'];
const WORDS = ['sunny', 'cozy', 'minimal', 'vintage', 'easy', 'quick', 'bold', 'rustic', 'green', 'tiny'];
const CITIES: [string, number, number][] = [
  ['Lisbon', 38.72, -9.14],
  ['Denver', 39.74, -104.99],
  ['Osaka', 34.69, 135.5],
  ['Nairobi', -1.29, 36.82],
  ['Lyon', 45.76, 4.84],
];

/** The `n`-th event of a seeded stream (deterministic: same seed and n, same event). */
export function activityEvent(seed: number, n: number, idPrefix = `e${seed}`, eventBytes = 0): ActivityEvent {
  const rnd = prng(seed * 1_000_003 + n);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const r = rnd();
  const type: ActivityKind =
    r < 0.05 ? 'user' : r < 0.3 ? 'pin' : r < 0.5 ? 'comment' : r < 0.9 ? 'like' : 'geolocation';
  const userId = 1 + Math.floor(rnd() * 10_000);
  const pinId = 1 + Math.floor(rnd() * 100_000);
  const base: ActivityEvent = { id: `${idPrefix}-${n}`, type, ts: new Date().toISOString(), user_id: userId };
  const [city, lat, lon] = pick(CITIES);
  switch (type) {
    case 'user':
      Object.assign(base, {
        username: `user${userId}`,
        country: pick(['PT', 'US', 'JP', 'KE', 'FR']),
        followers: Math.floor(rnd() * 5000),
      });
      break;
    case 'pin':
      Object.assign(base, {
        pin_id: pinId,
        board: pick(BOARDS),
        title: `${pick(WORDS)} ${pick(BOARDS)} idea`,
        image_url: `https://img.example/p/${pinId}.jpg`,
        lat: Math.round((lat + rnd() - 0.5) * 1e5) / 1e5,
        lon: Math.round((lon + rnd() - 0.5) * 1e5) / 1e5,
      });
      break;
    case 'comment':
      Object.assign(base, { pin_id: pinId, text: `${pick(WORDS)} and ${pick(WORDS)}!` });
      break;
    case 'like':
      Object.assign(base, { pin_id: pinId });
      break;
    case 'geolocation':
      Object.assign(base, {
        city,
        lat: Math.round((lat + rnd() - 0.5) * 1e5) / 1e5,
        lon: Math.round((lon + rnd() - 0.5) * 1e5) / 1e5,
      });
      break;
  }
  if (eventBytes > 0) {
    const size = JSON.stringify(base).length + 10;
    if (size < eventBytes) base['pad'] = 'x'.repeat(eventBytes - size);
  }
  return base;
}

export async function postActivity(o: PostingOptions): Promise<PostingStats> {
  const total = o.total ?? 1000;
  const batch = Math.max(1, o.batch ?? 1);
  const concurrency = Math.max(1, o.concurrency ?? 8);
  const seed = o.seed ?? 1;
  const attempts = Math.max(1, o.attempts ?? 5);
  const retryDelayMs = o.retryDelayMs ?? 200;
  const rnd = prng(seed ^ 0x5eed);
  const stats: PostingStats = {
    acked: new Set(),
    failed: new Set(),
    requests: 0,
    redelivered: 0,
    byStatus: {},
    elapsedMs: 0,
  };
  const started = Date.now();
  let next = 0;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      o.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });

  const send = async (body: string): Promise<{ status: number; retryAfter: number | undefined }> => {
    stats.requests += 1;
    try {
      const res = await fetch(o.url, {
        method: 'POST',
        body,
        headers: { 'content-type': batch > 1 ? 'application/x-ndjson' : 'application/json', ...o.headers },
        ...(o.signal ? { signal: o.signal } : {}),
      });
      await res.arrayBuffer();
      const ra = Number(res.headers.get('retry-after'));
      return { status: res.status, retryAfter: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined };
    } catch {
      return { status: 0, retryAfter: undefined };
    }
  };

  const worker = async (): Promise<void> => {
    while (next < total && !o.signal?.aborted) {
      const from = next;
      const n = Math.min(batch, total - from);
      next += n;
      if (o.rate && o.rate > 0) {
        // Pace by the schedule of the first event of this request.
        const due = started + (from / o.rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      }
      const events = Array.from({ length: n }, (_, i) => activityEvent(seed, from + i, o.idPrefix, o.eventBytes ?? 0));
      const body = batch > 1 ? `${events.map((e) => JSON.stringify(e)).join('\n')}\n` : JSON.stringify(events[0]);
      let ok = false;
      for (let attempt = 0; attempt < attempts && !o.signal?.aborted; attempt++) {
        const r = await send(body);
        stats.byStatus[r.status] = (stats.byStatus[r.status] ?? 0) + 1;
        if (r.status >= 200 && r.status < 300) {
          ok = true;
          break;
        }
        if (r.status >= 400 && r.status < 500 && r.status !== 429) break; // refused for good
        await sleep(r.retryAfter ?? retryDelayMs);
      }
      for (const e of events) (ok ? stats.acked : stats.failed).add(e.id);
      if (ok) for (const e of events) stats.failed.delete(e.id);
      if (ok && o.redeliver && rnd() < o.redeliver) {
        stats.redelivered += 1;
        const r = await send(body);
        stats.byStatus[r.status] = (stats.byStatus[r.status] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  stats.elapsedMs = Date.now() - started;
  return stats;
}
