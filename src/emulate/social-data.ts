/**
 * Over 400 lines: deterministic fixture generators for the emulator; long, not complex.
 *
 * Deterministic data behind the social API emulator: accounts, posts with metrics, comments and
 * audience insights. Everything derives from the seed; entity `n` gets its own PRNG stream
 * (`mix(seed, n, …)`) so it does not depend on the order in which things are generated.
 *
 * Time moves in one-minute ticks of a logical clock. Each tick has its own PRNG stream too, so
 * `advance(2h)` and two `advance(1h)` calls end in the same state.
 */

export interface Account {
  id: string;
  handle: string;
  display_name: string;
  followers: number;
  verified: boolean;
  created_at: string;
}

export interface Media {
  type: 'video' | 'image';
  url: string;
  /** Seconds for videos, null for images. */
  duration_s: number | null;
}

export interface PostMetrics {
  views: number;
  likes: number;
  comments: number;
  shares: number;
}

export interface Post {
  id: string;
  account_id: string;
  created_at: string;
  updated_at: string;
  caption: string;
  hashtags: string[];
  media: Media[];
  author: { id: string; handle: string; followers: number };
  metrics: PostMetrics;
}

export interface Comment {
  id: string;
  post_id: string;
  author_handle: string;
  text: string;
  created_at: string;
}

export interface Insights {
  post_id: string;
  by_country: Record<string, number>;
  by_age: Record<string, number>;
  by_gender: Record<string, number>;
}

export interface SocialDataOptions {
  seed?: number;
  /** Initial number of posts (default 500). */
  posts?: number;
  /** Number of accounts (default 50). */
  accounts?: number;
  /** Logical clock start (default 2026-11-01T00:00:00Z). */
  start?: Date | string;
  /** Expected new posts per hour of logical time (default 6). */
  newPostsPerHour?: number;
  /** Expected metric updates of existing posts per hour of logical time (default 60). */
  updatesPerHour?: number;
}

/** What one `advance` changed: ids of posts created, and of older posts whose metrics grew. */
export interface AdvanceResult {
  clock: string;
  created: string[];
  updated: string[];
}

/** Keyset position in the (updated_at, id) order of posts. */
export interface PostKey {
  updatedMs: number;
  id: string;
}

export const DEFAULT_START = '2026-11-01T00:00:00Z';
export const TICK_MS = 60_000;
const DAY_MS = 86_400_000;
const HISTORY_MS = 90 * DAY_MS;

export const COUNTRIES = ['US', 'GB', 'CA', 'DE', 'FR', 'BR', 'IN', 'JP', 'MX', 'AU'] as const;
export const AGE_BUCKETS = ['13-17', '18-24', '25-34', '35-44', '45-54', '55+'] as const;
export const GENDERS = ['female', 'male', 'other'] as const;

const ADJECTIVES = [
  'sunny',
  'urban',
  'wild',
  'cozy',
  'retro',
  'lazy',
  'daily',
  'tiny',
  'bold',
  'quiet',
  'happy',
  'salty',
  'neon',
  'golden',
  'misty',
];
const NOUNS = [
  'fox',
  'chef',
  'nomad',
  'lens',
  'kitchen',
  'trail',
  'studio',
  'garden',
  'beats',
  'pixel',
  'coder',
  'wave',
  'rider',
  'atlas',
  'bakery',
];
const TAGS = [
  'fyp',
  'travel',
  'food',
  'recipe',
  'fitness',
  'diy',
  'music',
  'dance',
  'tech',
  'coding',
  'fashion',
  'beauty',
  'pets',
  'dogs',
  'cats',
  'nature',
  'hiking',
  'comedy',
  'art',
  'books',
  'gaming',
  'coffee',
  'vegan',
  'summer',
  'tutorial',
  'lifehack',
  'photography',
  'cars',
  'football',
  'asmr',
];
const OPENERS = [
  'POV: you finally tried',
  'Day 3 of learning',
  'Nobody talks about',
  'My honest review of',
  'Quick guide to',
  'Trying the viral',
  'Behind the scenes of',
  'Rating every',
  'How I fixed',
  'You need to see',
];
const SUBJECTS = [
  'this ramen spot',
  'sourdough',
  'the new update',
  'a sunrise hike',
  'my tiny apartment',
  'street food in Lisbon',
  'a 5-minute workout',
  'vintage cameras',
  'our puppy',
  'a budget setup',
];
const ENDINGS = ['', ' 🔥', ' 😂', ' ✨', '!', '…', ' (part 2)', ' — thoughts?'];
const COMMENT_TEXTS = [
  'this is so good',
  'need part 2',
  'where is this??',
  'saving this',
  'obsessed 😍',
  'tried it, works!',
  'first',
  'lol same',
  'underrated',
  'the ending 💀',
  'how long did this take?',
  'link please',
  'can confirm',
  'not me watching this at 3am',
  'love the vibe',
];

/** mulberry32: a tiny, fast 32-bit PRNG; values in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Combines integers into one 32-bit seed (murmur3-style finalising per part). */
export function mix(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

function pick<T>(rng: () => number, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)] as T;
}

function int(rng: () => number, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** Log-uniform integer in [min, max]: many small values, a long tail of big ones. */
function logUniform(rng: () => number, min: number, max: number): number {
  return Math.floor(Math.exp(Math.log(min) + rng() * (Math.log(max) - Math.log(min))));
}

/** Integer count for an expected (possibly fractional) value: floor plus a Bernoulli remainder. */
function countFor(rng: () => number, expected: number): number {
  const whole = Math.floor(expected);
  return whole + (rng() < expected - whole ? 1 : 0);
}

/** Splits `total` over weights into integers that add up to exactly `total` (largest remainder). */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const raw = weights.map((w) => (w / sum) * total);
  const out = raw.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const byFraction = raw.map((r, i) => ({ i, f: r - Math.floor(r) })).sort((a, b) => b.f - a.f || a.i - b.i);
  for (const { i } of byFraction) {
    if (left <= 0) break;
    out[i] = (out[i] ?? 0) + 1;
    left--;
  }
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** Comments arrive in batches: the initial ones, then some with each metric update. */
interface CommentBatch {
  /** Cumulative comment count at the end of this batch. */
  end: number;
  fromMs: number;
  toMs: number;
}

interface PostRecord {
  num: number;
  id: string;
  account: Account;
  createdMs: number;
  updatedMs: number;
  caption: string;
  hashtags: string[];
  media: Media[];
  metrics: PostMetrics;
  commentBatches: CommentBatch[];
  /** The post as served, serialised up front so pages are a join of strings. */
  json: string;
}

export function compareKeys(a: PostKey, b: PostKey): number {
  if (a.updatedMs !== b.updatedMs) return a.updatedMs - b.updatedMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export class SocialDataset {
  readonly seed: number;
  readonly startMs: number;
  readonly accounts: readonly Account[];
  private readonly accountsJson: string[];
  private readonly byNum: PostRecord[] = [];
  private readonly byId = new Map<string, PostRecord>();
  /** Posts in (updatedMs, id) order: what `GET /posts` pages through. */
  private ordered: PostRecord[];
  private clock: number;
  private readonly newPerTick: number;
  private readonly updatesPerTick: number;

  constructor(options: SocialDataOptions = {}) {
    this.seed = (options.seed ?? 1) >>> 0;
    this.startMs = new Date(options.start ?? DEFAULT_START).getTime();
    if (!Number.isFinite(this.startMs)) throw new Error(`social data: invalid start time ${String(options.start)}`);
    this.clock = this.startMs;
    this.newPerTick = (options.newPostsPerHour ?? 6) / 60;
    this.updatesPerTick = (options.updatesPerHour ?? 60) / 60;
    const accountCount = Math.max(1, options.accounts ?? 50);
    this.accounts = Array.from({ length: accountCount }, (_, i) => this.makeAccount(i + 1));
    this.accountsJson = this.accounts.map((a) => JSON.stringify(a));
    const posts = Math.max(0, options.posts ?? 500);
    for (let n = 1; n <= posts; n++) this.addPost(this.makeInitialPost(n, posts));
    for (const p of this.byNum) p.json = JSON.stringify(this.toPost(p));
    this.ordered = [...this.byNum].sort(compareKeys);
  }

  get clockMs(): number {
    return this.clock;
  }

  get postCount(): number {
    return this.byNum.length;
  }

  /** Moves the logical clock forward, applying every tick on the way. */
  advance(ms: number): AdvanceResult {
    if (!(ms >= 0)) throw new Error(`social data: advance(${ms}): expected a non-negative number of milliseconds`);
    const target = this.clock + Math.floor(ms);
    const firstTick = Math.floor((this.clock - this.startMs) / TICK_MS) + 1;
    const lastTick = Math.floor((target - this.startMs) / TICK_MS);
    const before = this.byNum.length;
    const changed = new Set<PostRecord>();
    for (let tick = firstTick; tick <= lastTick; tick++) this.applyTick(tick, changed);
    this.clock = target;
    for (const p of changed) p.json = JSON.stringify(this.toPost(p));
    if (changed.size) {
      // Changed posts now carry the newest updated_at values, so they move to the end in order.
      const moved = [...changed].sort(compareKeys);
      this.ordered = this.ordered.filter((p) => !changed.has(p)).concat(moved);
    }
    const created: string[] = [];
    const updated: string[] = [];
    for (const p of changed) (p.num > before ? created : updated).push(p.id);
    return { clock: iso(this.clock), created: created.sort(), updated: updated.sort() };
  }

  /** Every post as the API serves it, in (updated_at, id) order. */
  allPosts(): Post[] {
    return this.ordered.map((p) => this.toPost(p));
  }

  getPost(id: string): Post | undefined {
    const p = this.byId.get(id);
    return p && this.toPost(p);
  }

  /** One page of serialised posts after `after` (exclusive) with updated_at >= `sinceMs`. */
  pagePosts(
    after: PostKey | undefined,
    sinceMs: number | undefined,
    limit: number,
  ): { json: string[]; last: PostKey | undefined; hasMore: boolean } {
    let start = sinceMs === undefined ? 0 : this.firstIndex((p) => p.updatedMs >= sinceMs);
    if (after)
      start = Math.max(
        start,
        this.firstIndex((p) => compareKeys(p, after) > 0),
      );
    const page = this.ordered.slice(start, start + limit);
    const lastRecord = page[page.length - 1];
    return {
      json: page.map((p) => p.json),
      last: lastRecord && { updatedMs: lastRecord.updatedMs, id: lastRecord.id },
      hasMore: start + page.length < this.ordered.length,
    };
  }

  pageAccounts(offset: number, limit: number): string[] {
    return this.accountsJson.slice(offset, offset + limit);
  }

  /** Comments of a post from index `offset`, oldest first; undefined when there is no such post. */
  comments(postId: string, offset: number, limit: number): { data: Comment[]; total: number } | undefined {
    const p = this.byId.get(postId);
    if (!p) return undefined;
    const total = p.metrics.comments;
    const data: Comment[] = [];
    let batch = 0;
    for (let i = offset; i < Math.min(total, offset + limit); i++) {
      while ((p.commentBatches[batch]?.end ?? Infinity) <= i) batch++;
      data.push(this.makeComment(p, i, p.commentBatches, batch));
    }
    return { data, total };
  }

  /** Audience breakdown; each dimension adds up to the post's current views. */
  insights(postId: string): Insights | undefined {
    const p = this.byId.get(postId);
    if (!p) return undefined;
    const rng = mulberry32(mix(this.seed, 11, p.num));
    const dimension = (keys: readonly string[], skew: number) => {
      const weights = keys.map((_, i) => (rng() + 0.05) * skew ** -i);
      const counts = apportion(p.metrics.views, weights);
      return Object.fromEntries(keys.map((k, i) => [k, counts[i] ?? 0]));
    };
    return {
      post_id: p.id,
      by_country: dimension(COUNTRIES, 1.4),
      by_age: dimension(AGE_BUCKETS, 1.1),
      by_gender: dimension(GENDERS, 3),
    };
  }

  private firstIndex(pred: (p: PostRecord) => boolean): number {
    let lo = 0;
    let hi = this.ordered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pred(this.ordered[mid] as PostRecord)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private toPost(p: PostRecord): Post {
    return {
      id: p.id,
      account_id: p.account.id,
      created_at: iso(p.createdMs),
      updated_at: iso(p.updatedMs),
      caption: p.caption,
      hashtags: p.hashtags,
      media: p.media,
      author: { id: p.account.id, handle: p.account.handle, followers: p.account.followers },
      metrics: { ...p.metrics },
    };
  }

  private addPost(p: PostRecord): void {
    this.byNum.push(p);
    this.byId.set(p.id, p);
  }

  private makeAccount(n: number): Account {
    const rng = mulberry32(mix(this.seed, 1, n));
    const adjective = pick(rng, ADJECTIVES);
    const noun = pick(rng, NOUNS);
    const followers = logUniform(rng, 100, 5_000_000);
    return {
      id: `a_${pad(n, 4)}`,
      handle: `${adjective}_${noun}${n}`,
      display_name: `${adjective[0]?.toUpperCase()}${adjective.slice(1)} ${noun[0]?.toUpperCase()}${noun.slice(1)}`,
      followers,
      verified: followers > 1_000_000 && rng() < 0.7,
      created_at: iso(this.startMs - HISTORY_MS - int(rng, 30, 2000) * DAY_MS),
    };
  }

  /** Post content (caption, hashtags, media) shared by initial and later posts. */
  private makeContent(rng: () => number, id: string): Pick<PostRecord, 'caption' | 'hashtags' | 'media'> {
    const hashtags: string[] = [];
    for (let k = int(rng, 1, 4); hashtags.length < k; ) {
      const tag = pick(rng, TAGS);
      if (!hashtags.includes(tag)) hashtags.push(tag);
    }
    const tagText = hashtags.map((t) => `#${t}`).join(' ');
    const sentence = `${pick(rng, OPENERS)} ${pick(rng, SUBJECTS)}${pick(rng, ENDINGS)}`;
    const caption = rng() < 0.3 ? `${tagText} ${sentence}` : `${sentence} ${tagText}`;
    const media = Array.from({ length: rng() < 0.8 ? 1 : int(rng, 2, 3) }, (_, i): Media => {
      const video = rng() < 0.7;
      return {
        type: video ? 'video' : 'image',
        url: `https://cdn.social.example/${id}/${i}.${video ? 'mp4' : 'jpg'}`,
        duration_s: video ? int(rng, 5, 180) : null,
      };
    });
    return { caption, hashtags, media };
  }

  private makeInitialPost(n: number, total: number): PostRecord {
    const rng = mulberry32(mix(this.seed, 2, n));
    const id = `p_${pad(n, 6)}`;
    // Creation times rise with n over the 90 days before the start; updates land strictly before it.
    const createdMs = Math.floor((this.startMs - HISTORY_MS + (HISTORY_MS * (n - 1 + rng())) / total) / 1000) * 1000;
    const updatedMs = createdMs + Math.floor((rng() ** 2 * Math.max(0, this.startMs - 1000 - createdMs)) / 1000) * 1000;
    const views = logUniform(rng, 50, 2_000_000);
    const likes = Math.floor(views * (0.02 + 0.1 * rng()));
    const metrics = {
      views,
      likes,
      comments: Math.min(2000, Math.floor(likes * (0.005 + 0.03 * rng()))),
      shares: Math.floor(likes * (0.01 + 0.1 * rng())),
    };
    return {
      num: n,
      id,
      account: pick(rng, this.accounts),
      createdMs,
      updatedMs,
      ...this.makeContent(rng, id),
      metrics,
      commentBatches: [{ end: metrics.comments, fromMs: createdMs, toMs: updatedMs }],
      json: '',
    };
  }

  private applyTick(tick: number, changed: Set<PostRecord>): void {
    const at = this.startMs + tick * TICK_MS;
    const rng = mulberry32(mix(this.seed, 3, tick));
    for (let k = countFor(rng, this.newPerTick); k > 0; k--) {
      const n = this.byNum.length + 1;
      const id = `p_${pad(n, 6)}`;
      const p: PostRecord = {
        num: n,
        id,
        account: pick(rng, this.accounts),
        createdMs: at,
        updatedMs: at,
        ...this.makeContent(rng, id),
        metrics: { views: int(rng, 0, 500), likes: 0, comments: 0, shares: 0 },
        commentBatches: [],
        json: '',
      };
      this.addPost(p);
      changed.add(p);
    }
    const count = this.byNum.length;
    if (count === 0) return;
    for (let k = countFor(rng, this.updatesPerTick); k > 0; k--) {
      // Skewed towards recent posts: the newest get most of the engagement.
      const p = this.byNum[Math.min(count - 1, Math.floor(count * (1 - rng() ** 3)))] as PostRecord;
      this.grow(p, rng, at);
      changed.add(p);
    }
  }

  private grow(p: PostRecord, rng: () => number, at: number): void {
    const m = p.metrics;
    const views = int(rng, 1, 200) + Math.floor(m.views * 0.05 * rng());
    const likes = Math.floor(views * (0.02 + 0.1 * rng()));
    const comments = Math.floor(likes * 0.05 * rng()) + (rng() < 0.3 ? 1 : 0);
    m.views += views;
    m.likes += likes;
    m.shares += Math.floor(likes * 0.1 * rng());
    if (comments > 0) {
      m.comments += comments;
      p.commentBatches.push({ end: m.comments, fromMs: p.updatedMs, toMs: at });
    }
    p.updatedMs = at;
  }

  private makeComment(p: PostRecord, i: number, batches: CommentBatch[], batchIndex: number): Comment {
    const batch = batches[batchIndex] as CommentBatch;
    const begin = batches[batchIndex - 1]?.end ?? 0;
    const span = batch.toMs - batch.fromMs;
    // Spread evenly inside the batch's time range, so created_at never decreases with the index.
    const createdMs = batch.fromMs + Math.floor((span * (i - begin + 1)) / (batch.end - begin + 1) / 1000) * 1000;
    const rng = mulberry32(mix(this.seed, 4, p.num, i));
    return {
      id: `c_${pad(p.num, 6)}_${pad(i + 1, 5)}`,
      post_id: p.id,
      author_handle: `${pick(rng, ADJECTIVES)}${pick(rng, NOUNS)}${int(rng, 1, 999)}`,
      text: pick(rng, COMMENT_TEXTS),
      created_at: iso(createdMs),
    };
  }
}
