/**
 * A local HTTP API for REST source tests: routes are plain functions, every request is
 * logged (with its start time and the number in flight), and latency can be added.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestProject } from './project.js';

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
  inFlight: number;
}

export interface ApiReply {
  status?: number;
  headers?: Record<string, string>;
  /** Objects are sent as JSON, strings as they are. */
  body?: unknown;
}

export type Route = (req: ApiRequest, api: TestApi) => ApiReply | Promise<ApiReply>;

export class TestApi {
  readonly requests: ApiRequest[] = [];
  maxInFlight = 0;
  private inFlight = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(route: Route, options: { latencyMs?: number } = {}): Promise<TestApi> {
    let api: TestApi | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const self = api as TestApi;
        self.inFlight++;
        self.maxInFlight = Math.max(self.maxInFlight, self.inFlight);
        const u = new URL(req.url ?? '/', self.url);
        const request: ApiRequest = {
          method: req.method ?? 'GET',
          path: u.pathname,
          query: u.searchParams,
          headers: req.headers,
          body: Buffer.concat(chunks).toString(),
          at: Date.now(),
          inFlight: self.inFlight,
        };
        self.requests.push(request);
        const reply = async () => {
          if (options.latencyMs) await new Promise((r) => setTimeout(r, options.latencyMs));
          return route(request, self);
        };
        reply()
          .then((r) => {
            const json = typeof r.body !== 'string';
            res.writeHead(r.status ?? 200, { 'content-type': json ? 'application/json' : 'text/plain', ...r.headers });
            res.end(json ? JSON.stringify(r.body ?? null) : r.body);
          })
          .catch((err: Error) => {
            res.writeHead(500);
            res.end(err.message);
          })
          .finally(() => self.inFlight--);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    api = new TestApi(server, `http://127.0.0.1:${port}`);
    return api;
  }

  /** Requests to a path (query ignored). */
  to(path: string): ApiRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Records 1..n with an id, a name, an amount and an update time one minute apart. */
export function items(n: number, from = 1): { id: number; name: string; amount: number; updated_at: string }[] {
  return Array.from({ length: n }, (_, i) => {
    const id = from + i;
    return {
      id,
      name: `item ${id}`,
      amount: id * 3,
      updated_at: new Date(Date.UTC(2026, 0, 1) + id * 60_000).toISOString(),
    };
  });
}

/** Servers and projects a REST test file makes, disposed of together in its `after` hook. */
export class RestFixtures {
  private readonly cleanups: (() => Promise<void>)[] = [];

  readonly api = async (route: Route, options?: { latencyMs?: number }): Promise<TestApi> => {
    const a = await TestApi.start(route, options);
    this.cleanups.push(() => a.close());
    return a;
  };

  /** A project whose pipeline `p` has one REST source `api` with these settings. */
  readonly project = async (source: Record<string, unknown>, extra: { raw?: boolean } = {}): Promise<TestProject> => {
    const p = await TestProject.withSources({ api: { type: 'rest', ...source } }, extra);
    this.cleanups.push(() => p.dispose());
    return p;
  };

  readonly dispose = async (): Promise<void> => {
    for (const c of this.cleanups.reverse()) await c();
  };
}
