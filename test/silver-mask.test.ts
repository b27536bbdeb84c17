/**
 * PII masks and the token vault against a real DuckDB and SQLite: the exact output of every
 * mask policy, hashes that still join across tables, tokens that SQL and TypeScript compute
 * alike, and a vault that keeps values encrypted outside the lake and gives them back only to
 * the holder of a role's private key (also through `dip vault detokenize`).
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
import {
  generateRoleKeyPair,
  keyIdOf,
  loadPrivateKey,
  loadPublicKey,
  runnerVaultOptions,
  tokenFor,
  TokenVault,
  type RoleKey,
  type VaultOptions,
  type VaultRecipient,
} from '../src/transform/vault.js';

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
async function mask(
  policy: MaskPolicy,
  values: readonly (string | null)[],
  ctx: MaskContext = CTX,
): Promise<(string | null)[]> {
  const rows = values.map((v, i) => `(${i}, ${v === null ? 'NULL' : lit(v)})`).join(', ');
  const result = await engine.all(
    `SELECT ${maskExpression(policy, 'v', ctx, 'v')} AS m, typeof(${maskExpression(policy, 'v', ctx, 'v')}) AS t FROM (VALUES ${rows}) AS x(i, v) ORDER BY i`,
  );
  for (const r of result) assert.equal(r['t'], 'VARCHAR');
  return result.map((r) => (r['m'] === null ? null : String(r['m'])));
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('mask policies', () => {
  const VALUES = [
    null,
    '',
    'a',
    '12',
    '12345',
    '+1 (555) 123-4567',
    '4111 1111 1111 1111',
    'john.doe@example.com',
    'José Ñúñez 42',
    '日本語',
    'ǅemal',
  ];

  it('hash: salted SHA-256 hex of the value', async () => {
    assert.deepEqual(
      await mask('hash', VALUES),
      VALUES.map((v) => (v === null ? null : sha256(SALT + v))),
    );
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
    assert.deepEqual(await mask({ partial: { keep_first: 0, keep_last: 4, char: '*' } }, ['123456789', '1234']), [
      '*****6789',
      '****',
    ]);
  });

  it('tokenize: deterministic tokens equal to tokenFor()', async () => {
    const values = ['john.doe@example.com', 'José', '', '4111 1111 1111 1111'];
    const tokens = await mask('tokenize', [...values, null]);
    assert.deepEqual(tokens, [...values.map((v) => tokenFor(CTX.tokenKey ?? '', v)), null]);
    for (const t of tokens.slice(0, 4)) assert.match(t ?? '', /^tok_[0-9a-f]{32}$/);
    assert.throws(
      () => maskExpression('tokenize', 'v', { salt: SALT }, 'customer_email'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^column customer_email: mask tokenize needs privacy\.vault in dip\.yaml/.test(err.message),
    );
  });

  it('null: always NULL', async () => {
    assert.deepEqual(
      await mask('null', VALUES),
      VALUES.map(() => null),
    );
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
    await engine.run(
      `CREATE OR REPLACE TABLE customers AS SELECT 'user' || i || '@example.com' AS email FROM range(1, 101) r(i)`,
    );
    // Orders of users 51..150, two orders each: 50 customers in common, 100 joined rows.
    await engine.run(
      `CREATE OR REPLACE TABLE orders AS SELECT 'user' || (50 + (i + 1) // 2) || '@example.com' AS email FROM range(1, 201) r(i)`,
    );
    const masked = (table: string, ctx: MaskContext) =>
      `(SELECT ${maskExpression('hash', 'email', ctx, 'email')} AS h FROM ${table})`;
    const joined = await engine.all(
      `SELECT count(*) AS n, count(DISTINCT c.h) AS d FROM ${masked('customers', CTX)} c JOIN ${masked('orders', CTX)} o ON c.h = o.h`,
    );
    assert.deepEqual(joined, [{ n: '100', d: '50' }]);
    const clear = await engine.all('SELECT count(*) AS n FROM customers c JOIN orders o ON c.email = o.email');
    assert.deepEqual(clear, [{ n: '100' }]);
    const other = { salt: 'another-salt-of-16-chars' };
    const crossSalt = await engine.all(
      `SELECT count(*) AS n FROM ${masked('customers', CTX)} c JOIN ${masked('orders', other)} o ON c.h = o.h`,
    );
    assert.deepEqual(crossSalt, [{ n: '0' }]);
    const [a, b] = [await mask('hash', ['user1@example.com']), await mask('hash', ['user1@example.com'], other)];
    assert.notEqual(a[0], b[0]);
  });
});

describe('token vault', () => {
  const ADMIN = roleKeys('pii_admin');
  const AUDITOR = roleKeys('auditor');
  const options = (path = '.dip/vault.db', key = VAULT_KEY): VaultOptions => ({
    path,
    key,
    recipients: [ADMIN.recipient, AUDITOR.recipient],
  });
  const VALUES = ['alice.secret@example.com', 'bob.hidden@example.org', 'Zoë Ünïcode-Ñame', '+1 (555) 987-6543'];

  async function sqlTokens(values: readonly string[]): Promise<{ token: string; value: string }[]> {
    const rows = await engine.all(
      `SELECT v AS value, ${maskExpression('tokenize', 'v', CTX, 'v')} AS token FROM (VALUES ${values.map((v, i) => `(${i}, ${lit(v)})`).join(', ')}) AS x(i, v) ORDER BY i`,
    );
    return rows.map((r) => ({ token: String(r['token']), value: String(r['value']) }));
  }

  it('stores values encrypted outside the lake and gives them back to the holder of a role private key', async () => {
    const dir = await tempDir();
    const lakeDir = join(dir, '.dip', 'lake');
    const vault = await TokenVault.open(options(), dir);
    try {
      assert.equal(vault.tokenKey, CTX.tokenKey);
      assert.match(vault.tokenKey, /^[A-Za-z0-9_-]{22}$/, '128 bits, base64url');
      assert.ok(
        !VAULT_KEY.includes(vault.tokenKey) && !vault.tokenKey.includes(VAULT_KEY),
        'the token key is derived, not the raw key',
      );
      assert.equal(vault.path, join(dir, '.dip', 'vault.db'));
      assert.ok(relative(lakeDir, vault.path).startsWith('..'), 'the vault file is not inside the lake');

      const entries = await sqlTokens(VALUES);
      assert.equal(vault.store('email', entries), 4);
      assert.equal(vault.store('email', entries), 0, 'idempotent');
      assert.equal(vault.store('email', [...entries, ...entries]), 0);

      const tokens = [...entries.map((e) => e.token), 'tok_00000000000000000000000000000000'];
      const clear = vault.detokenize(tokens, [ADMIN.key]);
      assert.deepEqual(
        [...clear],
        [...VALUES.map((v, i) => [tokens[i], v]), ['tok_00000000000000000000000000000000', undefined]],
      );
      assert.deepEqual([...vault.detokenize(tokens.slice(0, 1), [AUDITOR.key])], [[tokens[0], VALUES[0]]]);

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
    for (const v of VALUES)
      assert.equal(bytes.indexOf(Buffer.from(v, 'utf8')), -1, `clear value ${v} found in the vault file`);
    assert.equal(bytes.indexOf(Buffer.from(VAULT_KEY, 'utf8')), -1, 'the key is not stored');
  });

  it('refuses to detokenize without a private key the entries are encrypted for', async () => {
    const dir = await tempDir();
    const vault = await TokenVault.open(options(), dir);
    const other = roleKeys('pii_admin');
    try {
      const [entry] = await sqlTokens(['alice.secret@example.com']);
      vault.store('email', [entry!]);
      const refused = (keys: RoleKey[], message: string) =>
        assert.throws(
          () => vault.detokenize([entry!.token], keys),
          (err: unknown) => {
            assert.ok(err instanceof DipError);
            assert.equal(err.kind, 'config');
            assert.equal(err.message, message);
            assert.ok(!err.message.includes('alice.secret'));
            return true;
          },
        );
      refused(
        [],
        'detokenize refused: no private key given (pass --private-key <file> of a role of privacy.vault.roles)',
      );
      refused(
        [other.key],
        `detokenize refused: 1 of 1 token(s) are not encrypted for the given private key (key ${other.key.keyId}): ${entry!.token}; they are readable with the private key of: auditor (key ${AUDITOR.key.keyId}), pii_admin (key ${ADMIN.key.keyId})`,
      );
    } finally {
      vault.close();
    }
    const noRoles = await TokenVault.open({ ...options(), recipients: [] }, dir);
    try {
      assert.throws(() => noRoles.store('email', []), {
        message:
          'token vault: cannot store tokenized values: no role of privacy.vault.roles has a public_key, so no one could read the values back; run `dip vault keygen --role <name>` and add the role with its public_key',
      });
    } finally {
      noRoles.close();
    }
  });

  it('a reopened vault with the same key has the same token key and reads old tokens; another key is refused', async () => {
    const dir = await tempDir();
    const first = await TokenVault.open(options('secrets/tokens.db'), dir);
    const entries = await sqlTokens(VALUES);
    first.store('name', entries);
    const tokenKey = first.tokenKey;
    first.close();

    const second = await TokenVault.open(options('secrets/tokens.db'), dir);
    try {
      assert.equal(second.tokenKey, tokenKey);
      assert.equal(second.path, join(dir, 'secrets', 'tokens.db'));
      const clear = second.detokenize(
        entries.map((e) => e.token),
        [ADMIN.key],
      );
      assert.deepEqual([...clear.values()], VALUES);
      assert.equal(second.store('name', entries), 0);
    } finally {
      second.close();
    }
    await assert.rejects(
      TokenVault.open(options('secrets/tokens.db', 'another-key-0123456789'), dir),
      (err: unknown) => err instanceof ConfigError && /created with another key/.test(err.message),
    );
    assert.notEqual(TokenVault.deriveTokenKey('another-key-0123456789'), tokenKey);
  });

  it('runnerVaultOptions resolves the key and the public keys, never a private key', async () => {
    const dir = await tempDir();
    const env = 'DIP_TEST_VAULT_KEY_MASK';
    process.env[env] = VAULT_KEY;
    await writeFile(join(dir, 'admin.pub'), ADMIN.publicPem);
    try {
      const raw: VaultConfig = {
        path: '.dip/vault.db',
        key: `\${env:${env}}`,
        roles: {
          pii_admin: { public_key: 'admin.pub', private_key: '${env:DIP_TEST_UNSET_PRIVATE_KEY_MASK}' },
          auditor: { public_key: AUDITOR.publicPem },
        },
      };
      const resolved = runnerVaultOptions(raw, dir);
      assert.equal(resolved.key, VAULT_KEY);
      assert.deepEqual(
        resolved.recipients?.map((r) => [r.role, r.keyId]),
        [
          ['pii_admin', ADMIN.key.keyId],
          ['auditor', AUDITOR.key.keyId],
        ],
      );
      assert.throws(
        () => runnerVaultOptions({ ...raw, roles: { pii_admin: { secret: 'x' } } }, dir),
        /privacy\.vault\.roles\.pii_admin\.public_key is not set/,
      );
    } finally {
      delete process.env[env];
    }
  });
});

describe('dip vault detokenize', () => {
  /** Runs the command in a child process (a commander program with the global options main.ts has). */
  function runVault(
    args: string[],
    cwd: string,
    env: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
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
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args], {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', fail);
      child.on('close', (code) => done({ code: code ?? 1, stdout, stderr }));
    });
  }

  it('prints token and value for the holder of a role private key; refuses other keys; role secrets grant nothing', async () => {
    const dir = await tempDir();
    const admin = roleKeys('pii_admin');
    const auditor = roleKeys('auditor');
    await writeFile(join(dir, 'admin.key'), admin.privatePem, { mode: 0o600 });
    await writeFile(join(dir, 'auditor.key'), auditor.privatePem, { mode: 0o600 });
    const project = {
      version: 1,
      project: 'mask-test',
      storage: { kind: 'local', path: '.dip/lake' },
      catalog: { kind: 'sqlite', path: '.dip/catalog.db' },
      pipelines: { p: { sources: { src: { type: 'files', streams: { s: { path: 'data/*.csv' } } } } } },
      privacy: {
        salt: '${env:DIP_TEST_SALT}',
        vault: {
          key: '${env:DIP_TEST_VAULT_KEY}',
          roles: {
            pii_admin: { public_key: admin.publicPem, private_key: '${file:admin.key}' },
            auditor: { public_key: auditor.publicPem, secret: 'auditor-secret-2' },
          },
        },
      },
    };
    await writeFile(join(dir, 'dip.yaml'), JSON.stringify(project, null, 2));
    const vault = await TokenVault.open({ path: '.dip/vault.db', key: VAULT_KEY, recipients: [admin.recipient] }, dir);
    const values = ['alice.secret@example.com', 'tab\there'];
    const tokens = values.map((v) => tokenFor(vault.tokenKey, v));
    vault.store(
      'email',
      values.map((value, i) => ({ token: tokens[i]!, value })),
    );
    vault.close();

    // Neither the vault key nor any role secret is needed: only the private key.
    const ok = await runVault(['-p', dir, 'vault', 'detokenize', ...tokens, '--role', 'pii_admin'], dir, {});
    assert.equal(ok.stderr, '');
    assert.equal(ok.code, 0);
    assert.equal(ok.stdout, `${tokens[0]}\talice.secret@example.com\n${tokens[1]}\ttab\\there\n`);

    const json = await runVault(
      ['-p', dir, '--json', 'vault', 'detokenize', tokens[0]!, 'tok_unknown', '--private-key', join(dir, 'admin.key')],
      dir,
      {},
    );
    assert.equal(json.code, 6, 'a token not in the vault: not_found');
    assert.deepEqual(JSON.parse(json.stdout), [
      { token: tokens[0], found: true, value: 'alice.secret@example.com' },
      { token: 'tok_unknown', found: false, value: null },
    ]);

    // The auditor was added after these values were stored: its key opens nothing yet, its secret nothing ever.
    const other = await runVault(
      ['-p', dir, 'vault', 'detokenize', tokens[0]!, '--private-key', join(dir, 'auditor.key')],
      dir,
      { DIP_ROLE_SECRET: 'auditor-secret-2' },
    );
    assert.equal(other.code, 2);
    assert.equal(other.stdout, '');
    assert.equal(
      other.stderr,
      `dip: detokenize refused: 1 of 1 token(s) are not encrypted for the given private key (key ${auditor.key.keyId}): ${tokens[0]}; they are readable with the private key of: pii_admin (key ${admin.key.keyId})\n`,
    );

    const noKey = await runVault(['-p', dir, 'vault', 'detokenize', tokens[0]!, '--role', 'auditor'], dir, {
      DIP_ROLE_SECRET: 'auditor-secret-2',
    });
    assert.equal(noKey.code, 2);
    assert.equal(
      noKey.stderr,
      'dip: no private key given: pass --private-key <file> or set DIP_ROLE_PRIVATE_KEY, or set privacy.vault.roles.auditor.private_key: ${file:…}\n',
    );

    const noSecretOption = await runVault(
      ['-p', dir, 'vault', 'detokenize', tokens[0]!, '--role', 'pii_admin', '--secret', 'admin-secret-1'],
      dir,
      {},
    );
    assert.notEqual(noSecretOption.code, 0, 'there is no --secret option');
    assert.equal(noSecretOption.stdout, '');
  });

  it('names the missing vault configuration', async () => {
    const dir = await tempDir();
    await writeFile(
      join(dir, 'dip.yaml'),
      JSON.stringify({
        version: 1,
        project: 'mask-test',
        pipelines: { p: { sources: { src: { type: 'files', streams: { s: { path: 'data/*.csv' } } } } } },
      }),
    );
    const r = await runVault(['-p', dir, 'vault', 'detokenize', 'tok_x', '--role', 'pii_admin'], dir, {
      DIP_ROLE_SECRET: 'x',
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^dip: no token vault configured: add privacy\.vault \(key, roles\) to .*dip\.yaml\n$/);
  });
});

/** A role's key pair as the vault uses it. */
function roleKeys(role: string): { recipient: VaultRecipient; key: RoleKey; privatePem: string; publicPem: string } {
  const pair = generateRoleKeyPair();
  const key = loadPrivateKey(pair.privatePem, '/', `${role} key`);
  const publicKey = loadPublicKey(pair.publicPem, '/', `${role} public key`);
  return {
    recipient: { role, publicKey, keyId: keyIdOf(publicKey) },
    key,
    privatePem: pair.privatePem,
    publicPem: pair.publicPem,
  };
}
