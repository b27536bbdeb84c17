/**
 * The server side of change data capture: logical WAL, a publication naming the tables, their
 * replica identity, and the replication slot whose creation exports the snapshot the initial
 * copy reads (so the copy and the stream meet at one LSN: no gap, no overlap).
 */
import pg from 'pg';
import { ConfigError, DipError, errorMessage } from '../../../core/errors.js';
import type { DbTable } from '../../database/types.js';
import { ident, qualified } from '../../../lake/sql.js';

export async function checkWalLevel(client: pg.Client, label: string): Promise<void> {
  const level = (await client.query<{ wal_level: string }>('SHOW wal_level')).rows[0]?.wal_level;
  if (level !== 'logical') {
    throw new ConfigError(
      `${label}: change data capture needs wal_level = logical on the server (it is ${level}). Set it in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart the server; also make sure max_replication_slots and max_wal_senders are at least 1 more than in use`,
    );
  }
}

/** Every CDC table must say which row an update or delete is about. */
export async function checkReplicaIdentity(
  client: pg.Client,
  label: string,
  tables: readonly DbTable[],
): Promise<void> {
  for (const t of tables) {
    const r = await client.query<{ ident: string }>(
      `SELECT relreplident AS ident FROM pg_class WHERE oid = $1::regclass`,
      [qualified(t.schema, t.name)],
    );
    const identity = r.rows[0]?.ident;
    if (identity === 'n' || (identity === 'd' && t.primaryKey.length === 0)) {
      throw new ConfigError(
        `${label}: ${t.schema}.${t.name} has REPLICA IDENTITY ${identity === 'n' ? 'NOTHING' : 'DEFAULT but no primary key'}, so its updates and deletes do not say which row they change. Run: ALTER TABLE ${qualified(t.schema, t.name)} REPLICA IDENTITY FULL (or add a primary key)`,
      );
    }
  }
}

/** Creates the publication for the tables, or adds the ones it lacks. */
export async function ensurePublication(
  client: pg.Client,
  label: string,
  name: string,
  tables: readonly DbTable[],
): Promise<void> {
  const wanted = tables.map((t) => qualified(t.schema, t.name));
  const exists = await client.query<{ all: boolean }>(
    'SELECT puballtables AS all FROM pg_publication WHERE pubname = $1',
    [name],
  );
  try {
    if (!exists.rows[0]) {
      await client.query(`CREATE PUBLICATION ${ident(name)} FOR TABLE ${wanted.join(', ')}`);
      return;
    }
    if (exists.rows[0].all) return;
    const have = await client.query<{ schemaname: string; tablename: string }>(
      'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
      [name],
    );
    const known = new Set(have.rows.map((r) => `${r.schemaname}.${r.tablename}`));
    const missing = tables.filter((t) => !known.has(`${t.schema}.${t.name}`)).map((t) => qualified(t.schema, t.name));
    if (missing.length) await client.query(`ALTER PUBLICATION ${ident(name)} ADD TABLE ${missing.join(', ')}`);
  } catch (err) {
    throw new DipError(
      'config',
      `${label}: cannot create or extend publication ${name} for ${wanted.join(', ')}: ${errorMessage(err)}. Create it as the table owner (CREATE PUBLICATION ${name} FOR TABLE ${wanted.join(', ')}) or grant ownership`,
      { cause: err },
    );
  }
}

export async function slotExists(
  client: pg.Client,
  slot: string,
): Promise<{ plugin: string; active: boolean; activePid: number | null } | undefined> {
  const r = await client.query<{ plugin: string; active: boolean; active_pid: number | null }>(
    'SELECT plugin, active, active_pid FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  const row = r.rows[0];
  return row ? { plugin: row.plugin, active: row.active, activePid: row.active_pid } : undefined;
}

const SLOT_BUSY_WAIT_MS = 15_000;

/** Whether the slot exists; a slot still held by a killed run's connection is released by the server shortly. */
export async function waitForSlot(client: pg.Client, label: string, name: string): Promise<boolean> {
  const deadline = Date.now() + SLOT_BUSY_WAIT_MS;
  for (;;) {
    const slot = await slotExists(client, name);
    if (!slot) return false;
    if (slot.plugin !== 'pgoutput') {
      throw new ConfigError(
        `${label}: replication slot ${name} exists with plugin ${slot.plugin}, not pgoutput; drop it or set cdc.slot to another name`,
      );
    }
    if (!slot.active) return true;
    if (Date.now() > deadline) {
      throw new DipError(
        'conflict',
        `${label}: replication slot ${name} is in use by server process ${slot.activePid} (another dip run of this pipeline?)`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function dropSlot(client: pg.Client, slot: string): Promise<void> {
  await client.query(
    'SELECT pg_drop_replication_slot($1) WHERE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)',
    [slot],
  );
}

/**
 * A slot created on a replication connection, with its exported snapshot. The snapshot stays
 * importable only while that connection is open and idle: copy first, then `release()`.
 */
export interface CreatedSlot {
  consistentPoint: string;
  snapshot: string;
  release(): Promise<void>;
}

export async function createSlotWithSnapshot(
  config: pg.ClientConfig,
  label: string,
  slot: string,
  /** Dropped by the server once the snapshot is released: only its snapshot and consistent point are wanted. */
  temporary = false,
): Promise<CreatedSlot> {
  const client = new pg.Client({ ...config, replication: 'database' } as pg.ClientConfig);
  await client.connect();
  client.on('error', () => undefined);
  try {
    const r = await client.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${ident(slot)}${temporary ? ' TEMPORARY' : ''} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = r.rows[0];
    if (!row) throw new Error('CREATE_REPLICATION_SLOT returned no row');
    return {
      consistentPoint: row.consistent_point,
      snapshot: row.snapshot_name,
      release: () => client.end().catch(() => undefined),
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new DipError(
      'config',
      `${label}: cannot create replication slot ${slot}: ${errorMessage(err)} (the user needs the REPLICATION attribute, and max_replication_slots a free slot)`,
      { cause: err },
    );
  }
}

/** The server's WAL position now, as a non-transactional logical message the stream will carry. */
export async function emitWatermark(client: pg.Client, token: string): Promise<string | undefined> {
  try {
    const r = await client.query<{ lsn: string }>(`SELECT pg_logical_emit_message(false, 'dip', $1)::text AS lsn`, [
      token,
    ]);
    return r.rows[0]?.lsn;
  } catch {
    return undefined; // not permitted: the stream stops on idleness instead
  }
}
