/** The console's only way to the server: the JSON API with the bearer token kept in sessionStorage. */
const KEY = 'dip.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, value);
}

async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers['authorization'] = `Bearer ${t}`;
  if (method === 'POST') headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
  });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const j = (await res.json()) as { error?: { message?: string } };
      if (j.error?.message) message = j.error.message;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

export async function get<T>(path: string): Promise<T> {
  return (await (await request('GET', path)).json()) as T;
}

export async function text(path: string): Promise<string> {
  return (await request('GET', path)).text();
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  return (await (await request('POST', path, body)).json()) as T;
}

export const enc = encodeURIComponent;

export interface Run {
  id: string;
  pipeline: string;
  status: string;
  trigger: string;
  created_at: string | null;
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
  [k: string]: unknown;
}

export interface Attempt {
  attempt: number;
  status: string;
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
  [k: string]: unknown;
}

export interface Task {
  task: string;
  status: string;
  deps: string[];
  attempt: number;
  started_at: string | null;
  ended_at: string | null;
  error: string | null;
  rows: number | null;
  attempts?: Attempt[];
  [k: string]: unknown;
}

export interface Table {
  name: string;
  zone: string;
  rows: number;
  files: number;
  bytes: number;
  schema_version: number | null;
  primary_key: string[] | null;
  last_commit_at: string | null;
  freshness_seconds: number | null;
  pending_changes: number;
}

export interface Column {
  name: string;
  type: string;
  [k: string]: unknown;
}
