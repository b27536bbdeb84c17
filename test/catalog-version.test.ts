/** A dip older than its catalog refuses it instead of writing rows newer code would misread. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openCatalog } from '../src/catalog/index.js';
import { DipError } from '../src/core/errors.js';
import { postgresTestOptions, startPostgres } from './support/postgres.js';

const newer = (err: unknown) => {
  assert.ok(err instanceof DipError, String(err));
  assert.equal(err.kind, 'config');
  assert.match(err.message, /^the catalog's schema is version 99, newer than this dip knows \(version \d+\): a newer dip upgraded it; upgrade this installation/);
  return true;
};

describe('catalog schema versions', () => {
  it('SQLite: a catalog upgraded by a newer dip is refused with a config error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dip-version-'));
    try {
      const path = join(dir, 'catalog.db');
      await (await openCatalog({ kind: 'sqlite', path }, dir)).close();
      const db = new Database(path);
      db.prepare(`UPDATE dip_meta SET value = '99' WHERE key = 'schema_version'`).run();
      db.close();
      await assert.rejects(openCatalog({ kind: 'sqlite', path }, dir), newer);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('PostgreSQL: the same', postgresTestOptions(), async () => {
    const server = await startPostgres();
    try {
      await (await openCatalog({ kind: 'postgres', url: server.url, schema: 'dip_v' }, '.')).close();
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      await c.query(`UPDATE dip_v.dip_meta SET value = '99' WHERE key = 'schema_version'`);
      await c.end();
      await assert.rejects(openCatalog({ kind: 'postgres', url: server.url, schema: 'dip_v' }, '.'), newer);
    } finally {
      await server.stop();
    }
  });
});
