/**
 * REST API source, declared by configuration: every resource is a stream whose pages are
 * fetched (in parallel where the API allows), batched into units with the stream state that
 * becomes true once they are committed, and kept whole in the raw zone.
 */
import type { SharedBudgets } from '../../catalog/budgets/types.js';
import { restSpec, type RestSourceConfig } from './spec.js';
import { hasSecretRef, redact, resolveSecrets, resolveSecretsDeep, secretRegistry } from '../../config/secrets.js';
import {
  defineConnector,
  type PlanContext,
  type ReadUnit,
  type SourceInstance,
  type StreamPlan,
  type StreamSpec,
} from '../types.js';
import { createAuthenticator } from './auth.js';
import { HttpClient } from './http/client.js';
import type { HttpClientOptions, HttpEvent } from './http/types.js';
import { durationMs } from '../../core/time.js';
import { resolveResources, type ResolvedResource } from './resource.js';
import { emptyCounters, streamUnits, type ParentFeed, type RestCounters } from './stream.js';

export const restConnector = defineConnector({
  spec: restSpec,
  capabilities: { incremental: true, fileLedger: false, formats: ['json', 'ndjson', 'csv'] },
  create(config, context): SourceInstance {
    return new RestSource(config, context.sourceName, context.baseDir, context.budgets);
  },
});

class RestSource implements SourceInstance {
  private resources: ResolvedResource[];
  private secretsResolved = false;
  private client: HttpClient | undefined;
  private readonly feeds = new Map<string, ParentFeed>();
  private readonly counters = new Map<string, RestCounters>();
  private secrets: () => string[] = () => [];

  constructor(
    private config: RestSourceConfig,
    private readonly name: string,
    private readonly baseDir: string,
    private readonly sharedBudgets?: SharedBudgets,
  ) {
    this.resources = resolveResources(config, name);
  }

  streams(): StreamSpec[] {
    return this.resources.map((r) => r.spec);
  }

  async plan(stream: StreamSpec, ctx: PlanContext): Promise<StreamPlan> {
    if (!this.secretsResolved) {
      // ${env:…}/${file:…} references become values only now, when requests are about to be made.
      const c = this.config;
      const opts = { baseDir: this.baseDir };
      registerSecretNames(c);
      this.config = {
        ...c,
        base_url: resolveSecrets(c.base_url, opts),
        headers: resolveSecretsDeep(c.headers, opts),
        params: resolveSecretsDeep(c.params, opts),
        auth: resolveSecretsDeep(c.auth, opts),
      };
      this.resources = resolveResources(this.config, this.name);
      this.secretsResolved = true;
    }
    const resource = this.resources.find((r) => r.name === stream.name) as ResolvedResource;
    const client = this.http(ctx);
    const counters = this.countersOf(resource.name);
    const units: AsyncIterable<ReadUnit> = streamUnits({
      source: this.config,
      sourceName: this.name,
      resource,
      resources: this.resources,
      client,
      redact: (text) => this.redact(text),
      feeds: this.feeds,
      counters,
      ctx,
    });
    return { units, skipped: 0 };
  }

  /** Resources are fetched concurrently (each within the API's budgets); a child waits for its parent. */
  get streamConcurrency(): number {
    return Math.max(1, Math.min(4, this.config.http.concurrency.max));
  }

  dependsOn(stream: StreamSpec): string[] {
    const parent = this.resources.find((r) => r.name === stream.name)?.parent;
    return parent ? [parent.resource] : [];
  }

  metrics(stream: StreamSpec): Record<string, number> {
    return { ...this.countersOf(stream.name) };
  }

  async close(): Promise<void> {
    await this.client?.close();
  }

  private countersOf(resource: string): RestCounters {
    let c = this.counters.get(resource);
    if (!c) this.counters.set(resource, (c = emptyCounters()));
    return c;
  }

  /** Every encoded form of the source's credentials (rotated tokens too) and of every registered secret; secret query parameters by structure. */
  private redact(text: string): string {
    return secretRegistry.redact(redact(text, this.secrets()));
  }

  /**
   * Keys of this source's budgets in the deployment-wide store: the host budget by the API's
   * origin (every source calling it shares it), a resource's by origin, source and resource.
   */
  private sharedKeys(budgets: SharedBudgets): NonNullable<HttpClientOptions['shared']> {
    let origin: string;
    try {
      origin = new URL(this.config.base_url).origin;
    } catch {
      origin = this.config.base_url;
    }
    return {
      budgets,
      hostKey: origin,
      resourceKeys: Object.fromEntries(this.resources.map((r) => [r.name, `${origin}|${this.name}.${r.name}`])),
    };
  }

  private http(ctx: PlanContext): HttpClient {
    if (this.client) return this.client;
    const h = this.config.http;
    const authenticator = this.config.auth
      ? createAuthenticator(this.config.auth, {
          baseUrl: this.config.base_url,
          state: ctx.sourceState,
          projectDir: this.baseDir,
        })
      : undefined;
    if (authenticator) {
      this.secrets = () => authenticator.secrets();
      // Literal credentials (not ${env:…} references) are secrets too, for every log and error printer.
      for (const s of authenticator.secrets()) secretRegistry.add(s);
    }
    const budgets: Record<string, { requests: number; perMs: number }> = {};
    for (const r of this.resources) if (r.rateLimit) budgets[r.name] = r.rateLimit;
    const onEvent = (e: HttpEvent) => {
      if (e.type === 'retry') this.countersOf(e.resource).retries += 1;
      else if (e.type === 'throttled') this.countersOf(e.resource).throttled_ms += e.waitMs;
      else if (e.type === 'response') this.countersOf(e.resource).requests += 1;
    };
    this.client = new HttpClient({
      retry: {
        attempts: h.retry.attempts,
        initialDelayMs: durationMs(h.retry.initial_delay, 'http.retry.initial_delay'),
        maxDelayMs: durationMs(h.retry.max_delay, 'http.retry.max_delay'),
        multiplier: h.retry.multiplier,
        jitter: h.retry.jitter,
        timeoutMs: durationMs(h.timeout, 'http.timeout'),
      },
      responseActions: h.response_actions,
      resourceResponseActions: Object.fromEntries(this.resources.map((r) => [r.name, r.responseActions])),
      hostBudget: h.rate_limit
        ? { requests: h.rate_limit.requests, perMs: durationMs(h.rate_limit.per, 'http.rate_limit.per') }
        : undefined,
      resourceBudgets: budgets,
      shared: this.sharedBudgets ? this.sharedKeys(this.sharedBudgets) : undefined,
      concurrency: { initial: h.concurrency.initial ?? Math.min(4, h.concurrency.max), max: h.concurrency.max, min: 1 },
      authenticator,
      onEvent,
      redact: (text) => this.redact(text),
    });
    return this.client;
  }
}

/**
 * Names of the query parameters and headers that carry this source's secrets: the api_key
 * parameter or header of the auth config, header templates, and every `params`/`headers` entry
 * whose value is a secret reference. Their values are masked in every URL and header kept.
 */
function registerSecretNames(c: RestSourceConfig): void {
  const auth = c.auth;
  if (auth?.type === 'api_key') secretRegistry.addName(auth.name);
  if (auth?.type === 'headers') for (const h of Object.keys(auth.headers)) secretRegistry.addName(h);
  const refs = (entries: Record<string, unknown> | undefined): void => {
    for (const [name, value] of Object.entries(entries ?? {}))
      if (typeof value === 'string' && hasSecretRef(value)) secretRegistry.addName(name);
  };
  refs(c.params);
  refs(c.headers);
  for (const r of Object.values(c.resources)) {
    refs((r as { params?: Record<string, unknown> }).params);
    refs((r as { headers?: Record<string, unknown> }).headers);
  }
}

export default restConnector;
