/**
 * PII masks and the token vault against a real DuckDB and SQLite: the exact output of every
 * mask policy, hashes that still join across tables, tokens that SQL and TypeScript compute
 * alike, and a vault that keeps values encrypted outside the lake and gives them back only to
 * an allowed role proving its secret (also through `dip vault detokenize`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { MaskPolicy, VaultConfig } from '../src/config/silver.js';
import { ConfigError, DipError } from '../src/core/errors.js';
import { Engine } from '../src/lake/engine.js';
import { lit } from '../src/lake/sql.js';
import { maskExpression, maskMacrosSql, type MaskContext } from '../src/transform/mask.js';
import { resolveVaultConfig, tokenFor, TokenVault } from '../src/transform/vault.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SALT = 'a-salt-of-at-least-16-chars';
const VAULT_KEY = 'vault-key-0123456789abcdef';
const CTX: MaskContext = { salt: SALT, tokenKey: TokenVault.deriveTokenKey(VAULT_KEY) };

let engine: Engine;
const dirs: string[] = [];
before(async () => {
  engine = Engine.start({ threads: 2 });
  for (const sql of maskMacrosSql()) await engine.run(sql);
});
after(async () => {
  await engine.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dip-mask-'));
  dirs.push(d);
  return d;
}

/** The mask of each value, computed by DuckDB. */
async function mask(policy: MaskPolicy, values: readonly (string | null)[], ctx: MaskContext = CTX): Promise<(string | null)[]> {
  const rows = values.map((v, i) => `(${i}, ${v === null ? 'NULL' : lit(v)})`).join(', ');
  const result = await engine.all(`SELECT ${maskExpression(policy, 'v', ctx, 'v')} AS m, typeof(${maskExpression(policy, 'v', ctx, 'v')}) AS t FROM (VALUES ${rows}) AS x(i, v) ORDER BY i`);
  for (const r of result) assert.equal(r['t'], 'VARCHAR');
  return result.map((r) => (r['m'] === null ? null : String(r['m'])));
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('mask policies', () => {
  const VALUES = [null, '', 'a', '12', '12345', '+1 (555) 123-4567', '4111 1111 1111 1111', 'john.doe@example.com', 'José Ñúñez 42', '日本語', 'ǅemal'];

  it('hash: salted SHA-256 hex of the value', async () => {
    assert.deepEqual(await mask('hash', VALUES), VALUES.map((v) => (v === null ? null : sha256(SALT + v))));
    assert.match((await mask('hash', ['x']))[0] ?? '', /^[0-9a-f]{64}$/);
  });

  it('last4: digits before the last four become *', async () => {
    assert.deepEqual(await mask('last4', [...VALUES, '1234', 'abc', 'ab12cd34ef56gh78', '555-123-4567 ext. 89']), [
      null,
      '',
      'a',
      '12',
      '*2345',
      '+* (***) ***-4567',
      '**** **** **** 1111',
      'john.doe@example.com',
      'José Ñúñez 42',
      '日本語',
      'ǅemal',
      '1234',
      'abc',
      'ab**cd**ef56gh78',
      '***-***-**67 ext. 89',
    ]);
  });

  it('email: the local part keeps its first character', async () => {
    assert.deepEqual(await mask('email', [...VALUES, 'x@y.io', '@y.io', 'a@b@example.com', 'Zoë.Ñ@exämple.de']), [
      null,
      '',
      '*',
      '**',
      '*****',
      '*****************',
      '*******************',
      'j*******@example.com',
      '*************',
      '***',
      '*****',
      '*@y.io',
      '@y.io',
      'a**@example.com',
      'Z****@exämple.de',
    ]);
  });

  it('redact: letters → x/X, digits → 9, the rest kept, same length', async () => {
    assert.deepEqual(await mask('redact', [...VALUES, 'Ab-9_ü/Ç']), [
      null,
      '',
      'x',
      '99',
      '99999',
      '+9 (999) 999-9999',
      '9999 9999 9999 9999',
      'xxxx.xxx@xxxxxxx.xxx',
      'Xxxx Xxxxx 99',
      'xxx',
      'Xxxxx',
      'Xx-9_x/X',
    ]);
  });

  it('partial: keeps the ends, replaces the middle; short values are replaced whole', async () => {
    const policy: MaskPolicy = { partial: { keep_first: 2, keep_last: 3, char: '#' } };
    assert.deepEqual(await mask(policy, [...VALUES, 'abcde', 'abcdef']), [
      null,
      '',
      '#',
      '##',
      '#####',
      '+1############567',
      '41##############111',
      'jo###############com',
      'Jo######## 42',
      '###',
      '#####',
      '#####',
      'ab#def',
    ]);
    assert.deepEqual(await mask({ partial: { keep_first: 0, keep_last: 4, char: '*' } }, ['123456789', '1234']), ['*****6789', '****']);
  });

  it('tokenize: deterministic tokens equal to tokenFor()', async () => {
    const values = ['john.doe@example.com', 'José', '', '4111 1111 1111 1111'];
    const tokens = await mask('tokenize', [...values, null]);
    assert.deepEqual(tokens, [...values.map((v) => tokenFor(CTX.tokenKey ?? '', v)), null]);
    for (const t of tokens.slice(0, 4)) assert.match(t ?? '', /^tok_[0-9a-f]{32}$/);
    assert.throws(
      () => maskExpression('tokenize', 'v', { salt: SALT }, 'customer_email'),
      (err: unknown) => err instanceof ConfigError && /^column customer_email: mask tokenize needs privacy\.vault in dip\.yaml/.test(err.message),
    );
  });

  it('null: always NULL', async () => {
    assert.deepEqual(await mask('null', VALUES), VALUES.map(() => null));
  });

  it('masks non-text values through their VARCHAR form', async () => {
    const rows = await engine.all(
      `SELECT ${maskExpression('last4', '5551234567::BIGINT', CTX, 'n')} AS a, ${maskExpression('redact', "DATE '2024-03-01'", CTX, 'd')} AS b, ${maskExpression('hash', '42', CTX, 'i')} AS c`,
    );
    assert.deepEqual(rows, [{ a: '******4567', b: '9999-99-99', c: sha256(`${SALT}42`) }]);
  });
});

describe('hash masks join across tables', () => {
  it('equal values hash alike with one salt, differently with another', async () => {
    await engine.run(`CREATE OR REPLACE TABLE customers AS SELECT 'user' || i || '@example.com' AS email FROM range(1, 101) r(i)`);
    // Orders of users 51..150, two orders each: 50 customers in common, 100 joined rows.
    await engine.run(`CREATE OR REPLACE TABLE orders AS SELECT 'user' || (50 + (i + 1) // 2) || '@example.com' AS email FROM range(1, 201) r(i)`);
    const masked = (table: string, ctx: MaskContext) => `(SELECT ${maskExpression('hash', 'email', ctx, 'email')} AS h FROM ${table})`;
    const joined = await engine.all(`SELECT count(*) AS n, count(DISTINCT c.h) AS d FROM ${masked('customers', CTX)} c JOIN ${masked('orders', CTX)} o ON c.h = o.h`);
    assert.deepEqual(joined, [{ n: '100', d: '50' }]);
    const clear = await engine.all('SELECT count(*) AS n FROM customers c JOIN orders o ON c.email = o.email');
    assert.deepEqual(clear, [{ n: '100' }]);
    const other = { salt: 'another-salt-of-16-chars' };
    const crossSalt = await engine.all(`SELECT count(*) AS n FROM ${masked('customers', CTX)} c JOIN ${masked('orders', other)} o ON c.h = o.h`);
    assert.deepEqual(crossSalt, [{ n: '0' }]);
    const [a, b] = [await mask('hash', ['user1@example.com']), await mask('hash', ['user1@example.com'], other)];
    assert.notEqual(a[0], b[0]);
  });
});

describe('token vault', () => {
  const config = (path = '.dip/vault.db', key = VAULT_KEY): VaultConfig => ({ path, key, roles: { pii_admin: { secret: 'admin-secret-1' }, auditor: { secret: 'auditor-secret-2' } } });
  const VALUES = ['alice.secret@example.com', 'bob.hidden@example.org', 'Zoë Ünïcode-Ñame', '+1 (555) 987-6543'];

  async function sqlTokens(values: readonly string[]): Promise<{ token: string; value: string }[]> {
    const rows = await engine.all(
      `SELECT v AS value, ${maskExpression('tokenize', 'v', CTX, 'v')} AS token FROM (VALUES ${values.map((v, i) => `(${i}, ${lit(v)})`).join(', ')}) AS x(i, v) ORDER BY i`,
    );
    return rows.map((r) => ({ token: String(r['token']), value: String(r['value']) }));
  }

  it('stores values encrypted outside the lake and gives them back to an allowed role', async () => {
    const dir = await tempDir();
    const lakeDir = join(dir, '.dip', 'lake');
    const vault = await TokenVault.open(config(), dir);
    try {
      assert.equal(vault.tokenKey, CTX.tokenKey);
      assert.match(vault.tokenKey, /^[A-Za-z0-9_-]{22}$/, '128 bits, base64url');
      assert.ok(!VAULT_KEY.includes(vault.tokenKey) && !vault.tokenKey.includes(VAULT_KEY), 'the token key is derived, not the raw key');
      assert.equal(vault.path, join(dir, '.dip', 'vault.db'));
      assert.ok(relative(lakeDir, vault.path).startsWith('..'), 'the vault file is not inside the lake');

      const entries = await sqlTokens(VALUES);
      assert.equal(vault.store('email', entries), 4);
      assert.equal(vault.store('email', entries), 0, 'idempotent');
      assert.equal(vault.store('email', [...entries, ...entries]), 0);

      const tokens = [...entries.map((e) => e.token), 'tok_00000000000000000000000000000000'];
      const clear = vault.detokenize(tokens, { role: 'pii_admin', secret: 'admin-secret-1' });
      assert.deepEqual([...clear], [...VALUES.map((v, i) => [tokens[i], v]), ['tok_00000000000000000000000000000000', undefined]]);
      assert.deepEqual([...vault.detokenize(tokens.slice(0, 1), { role: 'auditor', secret: 'auditor-secret-2' })], [[tokens[0], VALUES[0]]]);

      assert.throws(
        () => vault.store('email', [{ token: 'tok_00000000000000000000000000000000', value: 'x' }]),
        (err: unknown) => err instanceof DipError && /not the token of its value/.test(err.message),
      );
    } finally {
      vault.close();
    }

    // No clear value bytes anywhere in the vault files (database, WAL).
    const files = ['vault.db', 'vault.db-wal'].map((f) => join(dir, '.dip', f)).filter((f) => existsSync(f));
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    assert.ok(bytes.length > 0);
    for (const v of VALUES) assert.equal(bytes.indexOf(Buffer.from(v, 'utf8')), -1, `clear value ${v} found in the vault file`);
    assert.equal(bytes.indexOf(Buffer.from(VAULT_KEY, 'utf8')), -1, 'the key is not stored');
  });

  it('refuses to detokenize without an allowed role and its secret', async () => {
    const dir = await tempDir();
    const vault = await TokenVault.open(config(), dir);
    try {
      const [entry] = await sqlTokens(['alice.secret@example.com']);
      vault.store('email', [entry!]);
      const refused = (credentials: { role: string | undefined; secret: string | undefined }, message: string) =>
        assert.throws(
          () => vault.detokenize([entry!.token], credentials),
          (err: unknown) => {
            assert.ok(err instanceof DipError);
            assert.equal(err.kind, 'config');
            assert.equal(err.message, message);
            assert.ok(!err.message.includes('admin-secret-1') && !err.message.includes('auditor-secret-2'));
            return true;
          },
        );
      refused({ role: undefined, secret: undefined }, 'detokenize refused: no role given (set --role and DIP_ROLE_SECRET); allowed roles: pii_admin, auditor');
      refused({ role: undefined, secret: 'admin-secret-1' }, 'detokenize refused: no role given (set --role and DIP_ROLE_SECRET); allowed roles: pii_admin, auditor');
      refused({ role: 'analyst', secret: 'admin-secret-1' }, 'detokenize refused: role "analyst" may not detokenize (allowed roles: pii_admin, auditor)');
      refused({ role: 'constructor', secret: 'x' }, 'detokenize refused: role "constructor" may not detokenize (allowed roles: pii_admin, auditor)');
      refused({ role: 'pii_admin', secret: undefined }, 'detokenize refused: no secret given for role "pii_admin" (set DIP_ROLE_SECRET)');
      refused({ role: 'pii_admin', secret: 'admin-secret-1x' }, 'detokenize refused: wrong secret for role "pii_admin"');
      refused({ role: 'pii_admin', secret: 'auditor-secret-2' }, 'detokenize refused: wrong secret for role "pii_admin"');
    } finally {
      vault.close();
    }
    const noRoles = await TokenVault.open({ ...config(), roles: {} }, dir);
    try {
      assert.throws(() => noRoles.detokenize([], { role: 'pii_admin', secret: 'admin-secret-1' }), {
        message: 'detokenize refused: role "pii_admin" may not detokenize (allowed roles: none; add privacy.vault.roles to dip.yaml)',
      });
    } finally {
      noRoles.close();
    }
  });

  it('a reopened vault with the same key has the same token key and reads old tokens; another key is refused', async () => {
    const dir = await tempDir();
    const first = await TokenVault.open(config('secrets/tokens.db'), dir);
    const entries = await sqlTokens(VALUES);
    first.store('name', entries);
    const tokenKey = first.tokenKey;
    first.close();

    const second = await TokenVault.open(config('secrets/tokens.db'), dir);
    try {
      assert.equal(second.tokenKey, tokenKey);
      assert.equal(second.path, join(dir, 'secrets', 'tokens.db'));
      const clear = second.detokenize(entries.map((e) => e.token), { role: 'pii_admin', secret: 'admin-secret-1' });
      assert.deepEqual([...clear.values()], VALUES);
      assert.equal(second.store('name', entries), 0);
    } finally {
      second.close();
    }
    await assert.rejects(TokenVault.open(config('secrets/tokens.db', 'another-key-0123456789'), dir), (err: unknown) => err instanceof ConfigError && /created with another key/.test(err.message));
    assert.notEqual(TokenVault.deriveTokenKey('another-key-0123456789'), tokenKey);
  });

  it('resolveVaultConfig resolves the key and only the requested roles', () => {
    const env = 'DIP_TEST_VAULT_KEY_MASK';
    process.env[env] = VAULT_KEY;
    process.env['DIP_TEST_ADMIN_SECRET_MASK'] = 'admin-secret-1';
    try {
      const raw: VaultConfig = { path: '.dip/vault.db', key: `\${env:${env}}`, roles: { pii_admin: { secret: '${env:DIP_TEST_ADMIN_SECRET_MASK}' }, auditor: { secret: '${env:DIP_TEST_UNSET_SECRET_MASK}' } } };
      const only = resolveVaultConfig(raw, '/tmp', { roles: ['pii_admin'] });
      assert.equal(only.key, VAULT_KEY);
      assert.equal(only.roles['pii_admin']?.secret, 'admin-secret-1');
      assert.match(only.roles['auditor']?.secret ?? '', /^[0-9a-f]{64}$/, 'unrequested roles get an unguessable secret');
      assert.throws(() => resolveVaultConfig(raw, '/tmp'), /DIP_TEST_UNSET_SECRET_MASK is not set/);
    } finally {
      delete process.env[env];
      delete process.env['DIP_TEST_ADMIN_SECRET_MASK'];
    }
  });
});

describe('dip vault detokenize', () => {
  /** Runs the command in a child process (a commander program with the global options main.ts has). */
  function runVault(args: string[], cwd: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
    const script = `
      import { Command } from 'commander';
      import { registerVaultCommands } from ${JSON.stringify(join(REPO_ROOT, 'src/cli/commands/vault.ts'))};
      const program = new Command('dip').option('-p, --project <path>').option('--json').exitOverride();
      registerVaultCommands(program);
      try {
        await program.parseAsync(process.argv.slice(1), { from: 'user' });
      } catch (err) {
        process.stderr.write('dip: ' + err.message + '\\n');
        process.exitCode = typeof err.exitCode === 'number' ? err.exitCode : 1;
      }`;
    return new Promise((done, fail) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', fail);
      child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    });
  }

  it('prints token and value for an allowed role; refuses others; reads the secret from DIP_ROLE_SECRET only', async () => {
    const dir = await tempDir();
    const project = {
      version: 1,
      project: 'mask-test',
      storage: { kind: 'local', path: '.dip/lake' },
      catalog: { kind: 'sqlite', path: '.dip/catalog.db' },
      pipelines: { p: { sources: { src: { type: 'files', streams: { s: { path: 'data/*.csv' } } } } } },
      privacy: {
        salt: '${env:DIP_TEST_SALT}',
        vault: { key: '${env:DIP_TEST_VAULT_KEY}', roles: { pii_admin: { secret: '${env:DIP_TEST_ADMIN_SECRET}' }, auditor: { secret: '${env:DIP_TEST_AUDITOR_SECRET}' } } },
      },
    };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify(project, null, 2));
    const vault = await TokenVault.open({ path: '.dip/vault.db', key: VAULT_KEY, roles: {} }, dir);
    const values = ['alice.secret@example.com', 'tab\there'];
    const tokens = values.map((v) => tokenFor(vault.tokenKey, v));
    vault.store('email', values.map((value, i) => ({ token: tokens[i]!, value })));
    vault.close();

    // The auditor's secret variable is not set: only the requested role's secret is resolved.
    const env = { DIP_TEST_VAULT_KEY: VAULT_KEY, DIP_TEST_ADMIN_SECRET: 'admin-secret-1' };
    const ok = await runVault(['-p', dir, 'vault', 'detokenize', ...tokens, '--role', 'pii_admin'], dir, { ...env, DIP_ROLE_SECRET: 'admin-secret-1' });
    assert.equal(ok.stderr, '');
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, `${tokens[0]}\talice.secret@example.com\n${tokens[1]}\ttab\\there\n`);

    const json = await runVault(['-p', dir, '--json', 'vault', 'detokenize', tokens[0]!, 'tok_unknown', '--role', 'pii_admin'], dir, { ...env, DIP_ROLE_SECRET: 'admin-secret-1' });
    assert.equal(json.code, 6, 'a token not in the vault: not_found');
    assert.deepEqual(JSON.parse(json.stdout), [
      { token: tokens[0], found: true, value: 'alice.secret@example.com' },
      { token: 'tok_unknown', found: false, value: null },
    ]);

    const wrong = await runVault(['-p', dir, 'vault', 'detokenize', tokens[0]!, '--role', 'pii_admin'], dir, { ...env, DIP_ROLE_SECRET: 'nope' });
    assert.equal(wrong.code, 2);
    assert.equal(wrong.stdout, '');
    assert.equal(wrong.stderr, 'dip: detokenize refused: wrong secret for role "pii_admin"\n');

    const analyst = await runVault(['-p', dir, 'vault', 'detokenize', tokens[0]!, '--role', 'analyst'], dir, { ...env, DIP_ROLE_SECRET: 'admin-secret-1' });
    assert.equal(analyst.code, 2);
    assert.equal(analyst.stderr, 'dip: detokenize refused: role "analyst" may not detokenize (allowed roles: pii_admin, auditor)\n');

    const noRole = await runVault(['-p', dir, 'vault', 'detokenize', tokens[0]!], dir, env);
    assert.equal(noRole.code, 2);
    assert.equal(noRole.stderr, 'dip: detokenize refused: no role given (set --role and DIP_ROLE_SECRET); allowed roles: pii_admin, auditor\n');

    const noSecretOption = await runVault(['-p', dir, 'vault', 'detokenize', tokens[0]!, '--role', 'pii_admin', '--secret', 'admin-secret-1'], dir, env);
    assert.notEqual(noSecretOption.code, 0, 'there is no --secret option');
    assert.equal(noSecretOption.stdout, '');
  });

  it('names the missing vault configuration', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'dip.yaml'),
      JSON.stringify({ version: 1, project: 'mask-test', pipelines: { p: { sources: { src: { type: 'files', streams: { s: { path: 'data/*.csv' } } } } } } }),
    );
    const r = await runVault(['-p', dir, 'vault', 'detokenize', 'tok_x', '--role', 'pii_admin'], dir, { DIP_ROLE_SECRET: 'x' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^dip: no token vault configured: add privacy\.vault \(key, roles\) to .*dip\.yaml\n$/);
  });
});
