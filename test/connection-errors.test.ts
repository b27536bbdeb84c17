/**
 * Connection failures against real servers: what no retry can fix (a wrong password, an unknown
 * user or database) is a config error (exit 2, never retried); a server that is not there is
 * transient (retried, waited out by `dip worker` and `dip serve`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { openCatalog } from '../src/catalog/index.js';
import { connectionSchema } from '../src/config/database.js';
import { DipError } from '../src/core/errors.js';
import { connect as connectMysql, connectionOptions } from '../src/sources/mysql/connection.js';
import { clientConfig, connect as connectPostgres } from '../src/sources/postgres/connection.js';
import { freePort } from './support/service.js';
import { startMariadb, mariadbTestOptions, type MariadbServer } from './support/mariadb.js';
import { startPostgres, postgresTestOptions, type PostgresServer } from './support/postgres.js';

const connection = (url: string) => connectionSchema.parse({ url, connect_timeout: '5s' });

async function kindOf(attempt: Promise<unknown>): Promise<[string, string]> {
  try {
    const opened = await attempt;
    throw new Error(`expected the connection to fail, it opened: ${String(opened)}`);
  } catch (err) {
    assert.ok(err instanceof DipError, String(err));
    return [err.kind, err.message];
  }
}

describe('PostgreSQL connection errors', postgresTestOptions(), () => {
  let server: PostgresServer | undefined;
  before(async () => (server = await startPostgres()));
  after(async () => server?.stop());
  const at = (user: string, db: string) => `postgres://${user}@127.0.0.1:${(server as PostgresServer).port}/${db}`;
  const source = (url: string) => connectPostgres(clientConfig(connection(url), '.', 'src'), 'src');

  it('an unknown role or database is a config error; a closed port is transient', async () => {
    const [roleKind, roleMessage] = await kindOf(source(at('nobody', 'postgres')));
    assert.equal(roleKind, 'config');
    assert.match(roleMessage, /^src: cannot connect to PostgreSQL at .*: role "nobody" does not exist$/);
    assert.deepEqual((await kindOf(source(at('postgres', 'nowhere'))))[0], 'config');
    const closed = `postgres://postgres@127.0.0.1:${await freePort('127.0.0.1')}/postgres`;
    assert.deepEqual((await kindOf(source(closed)))[0], 'transient');
  });

  it('a password-protected role without a password, or TLS the server lacks, is a config error', async () => {
    const admin = new pg.Client({ connectionString: at('postgres', 'postgres') });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE guarded LOGIN PASSWORD 'pw'`);
      const hba = join((server as PostgresServer).dataDir, 'pg_hba.conf');
      await writeFile(hba, `host all guarded 127.0.0.1/32 scram-sha-256\n${await readFile(hba, 'utf8')}`);
      await admin.query('SELECT pg_reload_conf()');
    } finally {
      await admin.end();
    }
    const [noPassword, message] = await kindOf(source(at('guarded', 'postgres')));
    assert.deepEqual([noPassword, /client password must be a string/.test(message)], ['config', true], message);
    assert.equal(
      (await kindOf(source(`postgres://guarded:wrong@127.0.0.1:${(server as PostgresServer).port}/postgres`)))[0],
      'config',
    );
    const [tls, tlsMessage] = await kindOf(source(`${at('postgres', 'postgres')}?sslmode=verify-full`));
    assert.deepEqual(
      [tls, tlsMessage.endsWith('The server does not support SSL connections')],
      ['config', true],
      tlsMessage,
    );
  });

  it('the catalog reports the same kinds', async () => {
    const [kind, message] = await kindOf(
      openCatalog({ kind: 'postgres', url: at('nobody', 'postgres'), schema: 'dip' }, '.'),
    );
    assert.equal(kind, 'config');
    assert.match(
      message,
      /cannot open the PostgreSQL catalog at postgres:\/\/nobody@127\.0\.0\.1:\d+\/postgres \(schema dip\): role "nobody" does not exist/,
    );
    const closed = `postgres://postgres@127.0.0.1:${await freePort('127.0.0.1')}/postgres`;
    assert.equal((await kindOf(openCatalog({ kind: 'postgres', url: closed, schema: 'dip' }, '.')))[0], 'transient');
  });
});

describe('a PostgreSQL catalog whose connections the server drops', postgresTestOptions(), () => {
  let server: PostgresServer | undefined;
  before(async () => (server = await startPostgres()));
  after(async () => server?.stop());

  it('survives losing its idle connections and works on with new ones', async () => {
    const url = (server as PostgresServer).url;
    const catalog = await openCatalog({ kind: 'postgres', url, schema: 'dip_drop' }, '.');
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const terminate = async () =>
      (
        await admin.query(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        )
      ).rows[0].n as number;
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    try {
      assert.equal((await catalog.listTables()).length, 0);
      assert.ok((await terminate()) >= 1, 'the pool had an idle connection');
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(crashes, [], 'no uncaught error');
      // The next statements get fresh connections.
      assert.deepEqual(await catalog.orchestration.countTasks(), {});
      assert.equal((await catalog.listTables()).length, 0);
      assert.deepEqual(await catalog.orchestration.promote(new Date()), [], 'a transaction works too');
    } finally {
      process.off('uncaughtException', onCrash);
      await admin.end();
      await catalog.close();
    }
  });
});

describe('MariaDB connection errors', mariadbTestOptions(), () => {
  let server: MariadbServer | undefined;
  before(async () => (server = await startMariadb()));
  after(async () => server?.stop());
  const source = (url: string) => connectMysql(connectionOptions(connection(url), '.', 'src'), 'src');

  it('a wrong password or unknown database is a config error; a closed port is transient', async () => {
    const port = (server as MariadbServer).port;
    const [kind, message] = await kindOf(source(`mysql://root:wrong@127.0.0.1:${port}/dip`));
    assert.equal(kind, 'config');
    assert.match(
      message,
      /^src: cannot connect to MySQL at 127\.0\.0\.1:\d+: Access denied for user 'root'@'127\.0\.0\.1' \(using password: YES\)$/,
    );
    assert.equal((await kindOf(source(`mysql://root@127.0.0.1:${port}/nowhere`)))[0], 'config');
    const admin = await connectMysql(
      connectionOptions(connection(`mysql://root@127.0.0.1:${port}/dip`), '.', 'admin'),
      'admin',
    );
    try {
      await admin.query(`CREATE USER 'locked'@'%' IDENTIFIED BY 'pw' ACCOUNT LOCK`);
    } finally {
      await admin.end();
    }
    const [locked, lockedMessage] = await kindOf(source(`mysql://locked:pw@127.0.0.1:${port}/dip`));
    assert.deepEqual([locked, /this account is locked/.test(lockedMessage)], ['config', true], lockedMessage);
    assert.equal((await kindOf(source(`mysql://root@127.0.0.1:${await freePort('127.0.0.1')}/dip`)))[0], 'transient');
  });
});
