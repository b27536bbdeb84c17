/**
 * Publishing a bronze table's changes to a destination (e.g. CDC to Kafka): every row a commit
 * added, in commit order, as a Debezium-style envelope `{before, after, op, source, ts_ms}` (a
 * CDC change log's `_cdc_op`/`_cdc_before` give op and before; other tables publish op "c").
 *
 * Exactly once on DIP's side: the last lake commit published is recorded in the catalog (state
 * `_publish/<name>/<table>`) once the destination acknowledged every message of that commit, and
 * a publish starts after it; each message's id is `<table>:<commit>:<file id>:<row>`, the same on
 * every attempt. A publish interrupted between the acknowledgement and the record sends that
 * commit's messages again: JetStream drops them (Nats-Msg-Id, within its duplicate window);
 * Kafka's idempotent producer does not span sessions, so a consumer needing exactly once
 * dedups on the `dip-event-id` header (only the one commit in flight can repeat).
 */
import type { Lake } from '../lake/lake.js';
import { parquetScan } from '../lake/scan.js';
import { CDC_COLUMNS } from '../lake/zone-schemas.js';
import { type DestinationInput, openDestination } from './destinations.js';
import type { OutMessage } from './types.js';

export const PUBLISH_PIPELINE = '_publish';

export interface PublishResult {
  commits: number;
  messages: number;
  /** The last lake commit published (recorded in the catalog). */
  lastCommit: number | null;
}

export async function publishChanges(
  lake: Lake,
  opts: { name: string; table: string; destination: DestinationInput; signal?: AbortSignal },
): Promise<PublishResult> {
  const table = `bronze.${opts.table}`;
  const saved = (await lake.catalog.getState(PUBLISH_PIPELINE, opts.name, opts.table)) as { commit?: number } | null;
  const after = saved?.commit ?? 0;
  const files = (await lake.catalog.liveFiles(table)).filter((f) => f.addedCommit > after);
  const byCommit = new Map<number, typeof files>();
  for (const f of files.sort((a, b) => a.addedCommit - b.addedCommit || a.id - b.id)) {
    const list = byCommit.get(f.addedCommit) ?? [];
    list.push(f);
    byCommit.set(f.addedCommit, list);
  }
  const result: PublishResult = { commits: 0, messages: 0, lastCommit: saved?.commit ?? null };
  if (!byCommit.size) return result;
  const dest = await openDestination(opts.destination, lake.project.dir);
  try {
    for (const [commit, list] of byCommit) {
      if (opts.signal?.aborted) break;
      const info = await lake.catalog.getCommit(commit);
      const tsMs = info?.committedAt.getTime() ?? Date.now();
      const messages: OutMessage[] = [];
      for (const f of list) {
        // DuckDB's JSON keeps numbers numbers (BIGINT too), as the envelope needs them.
        const rows = (
          await lake.engine.all(`SELECT to_json(t)::VARCHAR AS j FROM ${parquetScan([lake.storage.uri(f.path)])} AS t`)
        ).map((r) => JSON.parse(String(r['j'])) as Record<string, unknown>);
        rows.forEach((row, i) => {
          const data: Record<string, unknown> = {};
          for (const [k, v] of Object.entries(row)) if (!k.startsWith('_dip_') && !k.startsWith('_cdc_')) data[k] = v;
          const op = typeof row[CDC_COLUMNS.op] === 'string' ? (row[CDC_COLUMNS.op] as string) : 'c';
          const beforeRaw = row[CDC_COLUMNS.before];
          const before = typeof beforeRaw === 'string' ? (JSON.parse(beforeRaw) as unknown) : (beforeRaw ?? null);
          const envelope = {
            before: op === 'd' ? (before ?? data) : before,
            after: op === 'd' ? null : data,
            op,
            source: { name: 'dip', table: opts.table, commit, file: f.path, row: i },
            ts_ms: tsMs,
          };
          messages.push({ id: `${opts.table}:${commit}:${f.id}:${i}`, key: null, value: JSON.stringify(envelope) });
        });
      }
      await dest.publish(messages);
      await lake.catalog.commit({
        operation: 'state',
        tables: [],
        state: [{ pipeline: PUBLISH_PIPELINE, source: opts.name, stream: opts.table, value: { commit } }],
      });
      result.commits += 1;
      result.messages += messages.length;
      result.lastCommit = commit;
    }
  } finally {
    await dest.close();
  }
  return result;
}
