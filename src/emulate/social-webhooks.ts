/**
 * Webhooks of the social metrics API emulator: on `advance`, one callback per new post
 * (`post.created`) and per post whose metrics grew (`post.updated`), POSTed to a configured URL
 * and signed GitHub style (`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body, hex>`), which
 * the gateway's `github` auth checks. A seeded share is dropped on purpose (never sent) and
 * another share is delivered twice (a redelivery), so reconciliation has real, known work: the
 * dropped event and object ids are recorded.
 */
import { createHmac } from 'node:crypto';
import { mix, mulberry32, type Post } from './social-data.js';

export interface SocialWebhookOptions {
  /** Where callbacks are POSTed. */
  url: string;
  /** HMAC secret of the signature. */
  secret: string;
  /** Share of callbacks never sent (seeded), default 0. */
  dropRate?: number;
  /** Share of sent callbacks sent a second time, default 0. */
  redeliverRate?: number;
  /** Seed of the drop and redelivery choices (default 1). */
  seed?: number;
  /** Which callbacks are sent (default both). */
  types?: SocialWebhookEvent['type'][];
  /** Callbacks sent at once at most (default 8). */
  concurrency?: number;
}

export interface SocialWebhookEvent {
  id: string;
  type: 'post.created' | 'post.updated';
  created_at: string;
  data: Post;
}

export interface SocialWebhookStats {
  /** Callbacks generated (dropped ones included). */
  events: number;
  /** Requests sent, redeliveries included. */
  sent: number;
  redelivered: number;
  /** Answers other than 2xx, and transport errors (each retried up to 5 times). */
  failed: number;
  /** Ids of the dropped callbacks (event ids) and of their posts. */
  dropped: { event: string; post: string; updated_at: string }[];
  /** Per post, the newest updated_at a delivered callback carried. */
  delivered: Map<string, string>;
}

export class SocialWebhooks {
  private readonly rng: () => number;
  private seq = 0;
  private readonly queue: SocialWebhookEvent[] = [];
  private running = 0;
  private idle: (() => void)[] = [];
  readonly stats: SocialWebhookStats = {
    events: 0,
    sent: 0,
    redelivered: 0,
    failed: 0,
    dropped: [],
    delivered: new Map(),
  };

  constructor(private readonly options: SocialWebhookOptions) {
    this.rng = mulberry32(mix(options.seed ?? 1, 11));
  }

  /** Queues the callbacks for one `advance`: created posts first, then updated ones. */
  emit(clock: string, created: Post[], updated: Post[]): void {
    const types = this.options.types ?? ['post.created', 'post.updated'];
    const all = [
      ...(types.includes('post.created') ? created.map((p) => ['post.created', p] as const) : []),
      ...(types.includes('post.updated') ? updated.map((p) => ['post.updated', p] as const) : []),
    ];
    for (const [type, post] of all) {
      const event: SocialWebhookEvent = { id: `evt_${++this.seq}`, type, created_at: clock, data: post };
      this.stats.events++;
      if (this.rng() < (this.options.dropRate ?? 0)) {
        this.stats.dropped.push({ event: event.id, post: post.id, updated_at: post.updated_at });
        continue;
      }
      this.queue.push(event);
      if (this.rng() < (this.options.redeliverRate ?? 0)) {
        this.stats.redelivered++;
        this.queue.push(event);
      }
    }
    this.pump();
  }

  /** Resolves once every queued callback was answered. */
  flush(): Promise<void> {
    if (!this.queue.length && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    const max = this.options.concurrency ?? 8;
    while (this.running < max && this.queue.length) {
      const event = this.queue.shift() as SocialWebhookEvent;
      this.running++;
      void this.deliver(event).finally(() => {
        this.running--;
        this.pump();
        if (!this.running && !this.queue.length) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  private async deliver(event: SocialWebhookEvent): Promise<void> {
    const body = JSON.stringify(event);
    const signature = `sha256=${createHmac('sha256', this.options.secret).update(body).digest('hex')}`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const res = await fetch(this.options.url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
        });
        await res.arrayBuffer();
        this.stats.sent++;
        if (res.ok) {
          const seen = this.stats.delivered.get(event.data.id);
          if (!seen || seen < event.data.updated_at) this.stats.delivered.set(event.data.id, event.data.updated_at);
          return;
        }
      } catch {
        // retried below
      }
      this.stats.failed++;
      await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
    }
  }
}
