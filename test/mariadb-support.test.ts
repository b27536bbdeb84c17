/**
 * The throwaway MariaDB harness (test/support/mariadb.ts): starts, serves data over TCP as
 * passwordless root, has the ROW binary log on, and leaves nothing behind on stop().
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { type MariadbServer, mariadbTestOptions, startMariadb, withMariadb } from './support/mariadb.js';

describe('throwaway MariaDB server', mariadbTestOptions(), () => {
  let server: MariadbServer | undefined;

  before(async () => {
    const started = Date.now();
    server = await startMariadb();
    console.log(`# MariaDB started on port ${server.port} in ${((Date.now() - started) / 1000).toFixed(2)} s`);
  });

  after(async () => {
    await server?.stop();
  });

  it('describes itself', () => {
    const s = server as MariadbServer;
    assert.equal(s.host, '127.0.0.1');
    assert.equal(s.user, 'root');
    assert.equal(s.database, 'dip');
    assert.ok(Number.isInteger(s.port) && s.port > 0);
    assert.equal(s.url, `mysql://root@127.0.0.1:${s.port}/dip`);
    assert.ok(existsSync(s.dataDir), `data dir ${s.dataDir} exists`);
  });

  it('stores and returns rows in the dip database', async () => {
    const s = server as MariadbServer;
    await withMariadb(s.url, async (conn) => {
      const [[current]] = await conn.query<RowDataPacket[]>(
        'SELECT DATABASE() AS db, CURRENT_USER() AS user, @@character_set_database AS charset',
      );
      assert.deepEqual({ ...current }, { db: 'dip', user: 'root@127.0.0.1', charset: 'utf8mb4' });

      await conn.query(
        'CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, price DECIMAL(10,2) NULL) ENGINE=InnoDB',
      );
      await conn.query('INSERT INTO items (id, name, price) VALUES ?', [
        [
          [1, 'apple', '1.50'],
          [2, 'Ünïcödé ☃', null],
          [3, "o'brien", '1000.00'],
        ],
      ]);
      const [rows] = await conn.query<RowDataPacket[]>('SELECT id, name, price FROM items ORDER BY id');
      assert.deepEqual(
        rows.map((r) => ({ ...r })),
        [
          { id: 1, name: 'apple', price: '1.50' },
          { id: 2, name: 'Ünïcödé ☃', price: null },
          { id: 3, name: "o'brien", price: '1000.00' },
        ],
      );
    });
  });

  it('has the ROW binary log on', async () => {
    const s = server as MariadbServer;
    const conn = await mysql.createConnection({ host: s.host, port: s.port, user: s.user, database: s.database });
    try {
      const [logBin] = await conn.query<RowDataPacket[]>("SHOW VARIABLES LIKE 'log_bin'");
      assert.deepEqual(
        logBin.map((r) => ({ ...r })),
        [{ Variable_name: 'log_bin', Value: 'ON' }],
      );
      const [format] = await conn.query<RowDataPacket[]>("SHOW VARIABLES LIKE 'binlog_format'");
      assert.deepEqual(
        format.map((r) => ({ ...r })),
        [{ Variable_name: 'binlog_format', Value: 'ROW' }],
      );
      const [image] = await conn.query<RowDataPacket[]>("SHOW VARIABLES LIKE 'binlog_row_image'");
      assert.deepEqual(
        image.map((r) => ({ ...r })),
        [{ Variable_name: 'binlog_row_image', Value: 'FULL' }],
      );
      const [serverId] = await conn.query<RowDataPacket[]>('SELECT @@server_id AS id');
      assert.equal(serverId[0]?.id, 1);
      const [logs] = await conn.query<RowDataPacket[]>('SHOW BINARY LOGS');
      assert.ok(logs.length >= 1, 'at least one binary log file');
    } finally {
      await conn.end();
    }
  });

  it('stop() kills the server and removes the temp dir, and is idempotent', async () => {
    const s = server as MariadbServer;
    await s.stop();
    assert.equal(existsSync(s.dataDir), false, `data dir ${s.dataDir} removed`);
    assert.equal(existsSync(dirname(s.dataDir)), false, `temp dir ${dirname(s.dataDir)} removed`);
    await s.stop();
    await assert.rejects(mysql.createConnection({ host: s.host, port: s.port, user: s.user, connectTimeout: 2_000 }));
  });
});
