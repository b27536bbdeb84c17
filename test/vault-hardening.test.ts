/**
 * Issue 14, items 14 and 15b, through the built CLI as users run it:
 * - detokenize rests on keys, not configuration: a pipeline runner holding dip.yaml, the vault
 *   key and the vault cannot read a value back, even after declaring its own role (with its
 *   own key pair) in a second dip.yaml; the holder of the role's private key can;
 * - key rotation: a new public key applies to new values, old values stay readable with the old
 *   private key, `dip vault rewrap` moves them to the new key (the old one then opens nothing);
 * - legacy (format 1) vaults: refused with a pointer to `dip vault migrate`, which re-encrypts
 *   them and leaves no old ciphertext in the file;
 * - at rest: after runs under umask 000 (files, raw, bronze, silver with a vault, keygen,
 *   `dip init`), no file or directory of the project is group or world accessible.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tokenFor, TokenVault } from '../src/transform/vault.js';
import { CLI, makeTempDir, projectConfig, runCli, type CliResult } from './support/project.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(prefix: string): Promise<string> {
  const d = await makeTempDir(prefix);
  dirs.push(d);
  return d;
}

const VAULT_KEY = 'vault-key-for-hardening-0123456789';
const ENV = { DIP_TEST_VAULT_KEY: VAULT_KEY };
const SALT = 'test-salt-0123456789abcdef';
const EMAILS = ['alice.private@example.com', 'bob.hidden@example.org', 'carol.secret@example.net'];
const LATER = ['dave.rotated@example.com', 'erin.rotated@example.org'];

const ndjson = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;
const users = (emails: readonly string[], from: number) =>
  emails.map((email, i) => ({ id: from + i, email, updated_at: '2026-01-01T00:00:00Z' }));

/** Writes a file 0600 (directories 0700), as a careful user would: the at-rest test stats every file. */
async function put(file: string, content: string): Promise<void> {
  await mkdir(join(file, '..'), { recursive: true, mode: 0o700 });
  await writeFile(file, content, { mode: 0o600 });
}

function config(roles: Record<string, unknown>, extra: { raw?: boolean } = {}): string {
  const c = projectConfig({ users: { path: 'data/*.ndjson', primary_key: ['id'], write_disposition: 'merge' } }, extra);
  const p = (c['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
  p['silver'] = {
    users: { from: 'users', primary_key: ['id'], columns: { email: { pii: 'email', mask: 'tokenize' } } },
  };
  c['privacy'] = { salt: SALT, vault: { key: '${env:DIP_TEST_VAULT_KEY}', roles } };
  return `${JSON.stringify(c, null, 2)}\n`;
}

async function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, cwd, { ...ENV, ...env });
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** A role's key pair written by `dip vault keygen` into `dir`. */
async function keygen(role: string, dir: string): Promise<{ key: string; pub: string; keyId: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const r = ok(await cli(['--json', 'vault', 'keygen', '--role', role, '--out', dir], dir), 'keygen');
  const out = JSON.parse(r.stdout) as { key_id: string; private_key: string; public_key: string };
  return { key: out.private_key, pub: out.public_key, keyId: out.key_id };
}

async function silverTokens(dir: string): Promise<Map<string, string>> {
  const r = ok(
    await cli(['-p', dir, 'query', 'select id, email from silver.users order by id', '--format', 'json'], dir),
    'query',
  );
  const rows = JSON.parse(r.stdout) as { id: number; email: string }[];
  return new Map(rows.map((row) => [String(row.email), String(row.id)]));
}

/** token → clear value lines as detokenize prints them. */
const expectedLines = (pairs: [string, string][]) => pairs.map(([t, v]) => `${t}\t${v}\n`).join('');

describe('vault: detokenize needs the private key of a role', () => {
  it('a runner with dip.yaml, the vault key and the vault cannot detokenize, even declaring its own role in a second dip.yaml; the private key holder can', async () => {
    const project = await tempDir('dip-vault-run-');
    const admin = await tempDir('dip-vault-admin-');
    const attacker = await tempDir('dip-vault-attacker-');
    const pair = await keygen('pii_admin', admin);
    assert.equal(statSync(pair.key).mode & 0o777, 0o600, 'private key written 0600');
    assert.match(pair.keyId, /^[0-9a-f]{16}$/);
    await mkdir(join(project, 'keys'), { mode: 0o700 });
    await copyFile(pair.pub, join(project, 'keys', 'pii_admin.pub'));
    await put(join(project, 'dip.yaml'), config({ pii_admin: { public_key: 'keys/pii_admin.pub' } }));
    await put(join(project, 'data', 'a.ndjson'), ndjson(users(EMAILS, 1)));
    ok(await cli(['-p', project, 'run'], project), 'run');

    const tokens = [...(await silverTokens(project)).keys()];
    assert.equal(tokens.length, 3);
    for (const t of tokens) assert.match(t, /^tok_[0-9a-f]{32}$/);
    const expected = tokens.map((t, i) => [t, EMAILS[i]!] as [string, string]);
    // Tokens stay deterministic: the runner's token key gives the same tokens (joins keep working).
    assert.deepEqual(
      tokens,
      EMAILS.map((e) => tokenFor(TokenVault.deriveTokenKey(VAULT_KEY), e)),
    );

    // The attacker: same vault and key, its own key pair, a second dip.yaml declaring a role of its own
    // and redeclaring pii_admin with its public key; the old role secret mechanism does nothing anymore.
    const own = await keygen('intruder', attacker);
    await put(
      join(project, 'dip2.yaml'),
      config({
        intruder: { public_key: own.pub },
        pii_admin: { public_key: own.pub, private_key: `\${file:${own.key}}`, secret: 'chosen-by-intruder' },
      }),
    );
    // It may even rebuild silver under its config: entries already in the vault get no wrap for its key.
    ok(
      await cli(['-p', join(project, 'dip2.yaml'), 'transform', '--full-refresh'], project),
      'transform under dip2.yaml',
    );
    const refusedAs = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const r = await cli(['-p', join(project, 'dip2.yaml'), 'vault', 'detokenize', ...tokens, ...args], project, env);
      assert.equal(r.code, 2, `detokenize ${args.join(' ')} should be refused: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      for (const e of EMAILS) assert.ok(!r.stderr.includes(e), 'no clear value in the refusal');
      return r.stderr;
    };
    const readableBy = `they are readable with the private key of: pii_admin (key ${pair.keyId})`;
    assert.equal(
      await refusedAs(['--role', 'intruder', '--private-key', own.key]),
      `dip: detokenize refused: 3 of 3 token(s) are not encrypted for the given private key (key ${own.keyId}): ${tokens.join(', ')}; ${readableBy}\n`,
    );
    assert.equal(
      await refusedAs(['--role', 'pii_admin']),
      `dip: detokenize refused: 3 of 3 token(s) are not encrypted for the given private key (key ${own.keyId}): ${tokens.join(', ')}; ${readableBy}\n`,
      'the role name and its private_key setting in a second dip.yaml grant nothing',
    );
    assert.equal(
      await refusedAs(['--role', 'pii_admin'], {
        DIP_ROLE_SECRET: 'chosen-by-intruder',
        DIP_ROLE_PRIVATE_KEY: '',
      }).then((s) => s.startsWith('dip: detokenize refused: 3 of 3')),
      true,
    );
    const runnerOnly = await cli(['-p', project, 'vault', 'detokenize', ...tokens, '--role', 'pii_admin'], project, {
      DIP_ROLE_SECRET: 'anything',
    });
    assert.equal(runnerOnly.code, 2);
    assert.equal(
      runnerOnly.stderr,
      'dip: no private key given: pass --private-key <file> or set DIP_ROLE_PRIVATE_KEY, or set privacy.vault.roles.pii_admin.private_key: ${file:…}\n',
    );
    // Rewrapping with its own key opens nothing that was stored before.
    const rewrap = ok(
      await cli(['-p', join(project, 'dip2.yaml'), 'vault', 'rewrap', '--private-key', own.key], project),
      'attacker rewrap',
    );
    assert.match(
      rewrap.stdout,
      /^rewrapped \d+ data key\(s\): \d+ wrap\(s\) added for the roles' current keys, \d+ old-key wrap\(s\) removed; 1 data key\(s\) not opened by the given key\(s\) were left as they were\n$/,
    );
    assert.match(
      await refusedAs(['--private-key', own.key]),
      /^dip: detokenize refused: 3 of 3 token\(s\) are not encrypted/,
    );

    // The holder of pii_admin's private key: by option, by DIP_ROLE_PRIVATE_KEY, or by its private_key reference.
    const byOption = ok(
      await cli(['-p', project, 'vault', 'detokenize', ...tokens, '--private-key', pair.key], admin),
      'detokenize',
    );
    assert.equal(byOption.stdout, expectedLines(expected));
    const byEnv = ok(
      await cli(['-p', project, 'vault', 'detokenize', tokens[1]!], admin, {
        DIP_ROLE_PRIVATE_KEY: readFileSync(pair.key, 'utf8'),
      }),
      'detokenize (env)',
    );
    assert.equal(byEnv.stdout, expectedLines([expected[1]!]));
    await put(
      join(project, 'dip-admin.yaml'),
      config({ pii_admin: { public_key: 'keys/pii_admin.pub', private_key: `\${file:${pair.key}}` } }),
    );
    // Detokenizing needs neither the vault key nor the runner's environment.
    const byRef = await runCli(
      ['-p', join(project, 'dip-admin.yaml'), 'vault', 'detokenize', tokens[2]!, '--role', 'pii_admin'],
      admin,
      { DIP_TEST_VAULT_KEY: '' },
    );
    assert.equal(byRef.stderr, '');
    assert.equal(byRef.stdout, expectedLines([expected[2]!]));

    // Nothing clear in the vault, and the private key nowhere in the project.
    const vaultBytes = Buffer.concat(
      ['vault.db', 'vault.db-wal']
        .map((f) => join(project, '.dip', f))
        .filter(existsSync)
        .map((f) => readFileSync(f)),
    );
    for (const e of EMAILS) assert.equal(vaultBytes.indexOf(e), -1, `${e} in the vault file`);
    const privatePem = readFileSync(pair.key, 'utf8').trim();
    const body = privatePem.split('\n')[1]!;
    for (const f of walk(project))
      if (f.kind === 'file') assert.equal(readFileSync(f.path).indexOf(body), -1, `private key found in ${f.path}`);
  });

  it('rotation: a new public key applies to new values, old ones stay readable with the old private key, rewrap moves them to the new key', async () => {
    const project = await tempDir('dip-vault-rot-');
    const admin = await tempDir('dip-vault-admin-');
    const oldPair = await keygen('pii_admin', join(admin, 'v1'));
    const newPair = await keygen('pii_admin', join(admin, 'v2'));
    const auditor = await keygen('auditor', join(admin, 'aud'));
    await put(join(project, 'dip.yaml'), config({ pii_admin: { public_key: oldPair.pub } }));
    await put(join(project, 'data', 'a.ndjson'), ndjson(users(EMAILS, 1)));
    ok(await cli(['-p', project, 'run'], project), 'run 1');

    // Rotate: the new public key in dip.yaml; the next run's values are encrypted for it.
    await put(join(project, 'dip.yaml'), config({ pii_admin: { public_key: newPair.pub } }));
    await put(join(project, 'data', 'b.ndjson'), ndjson(users(LATER, 10)));
    ok(await cli(['-p', project, 'run'], project), 'run 2');
    const all = await silverTokens(project);
    const tokens = [...all.keys()];
    assert.equal(tokens.length, 5);
    const values = [...EMAILS, ...LATER];
    const expected = tokens.map((t, i) => [t, values[i]!] as [string, string]);
    const [older, newer] = [tokens.slice(0, 3), tokens.slice(3)];

    const detok = (list: string[], ...keys: string[]) =>
      cli(['-p', project, 'vault', 'detokenize', ...list, ...keys.flatMap((k) => ['--private-key', k])], admin);
    assert.equal(
      ok(await detok(older, oldPair.key), 'old key, old values').stdout,
      expectedLines(expected.slice(0, 3)),
    );
    assert.equal(ok(await detok(newer, newPair.key), 'new key, new values').stdout, expectedLines(expected.slice(3)));
    assert.equal(ok(await detok(tokens, oldPair.key, newPair.key), 'both keys').stdout, expectedLines(expected));
    const notYet = await detok(older, newPair.key);
    assert.equal(notYet.code, 2);
    assert.equal(
      notYet.stderr,
      `dip: detokenize refused: 3 of 3 token(s) are not encrypted for the given private key (key ${newPair.keyId}): ${older.join(', ')}; they are readable with the private key of: pii_admin (key ${oldPair.keyId})\n`,
    );

    // Rewrap with the old private key: the old values' data key gets a wrap for the new key, the old wrap goes.
    const rewrap = ok(await cli(['-p', project, 'vault', 'rewrap', '--private-key', oldPair.key], admin), 'rewrap');
    assert.equal(
      rewrap.stdout,
      `rewrapped 1 data key(s): 1 wrap(s) added for the roles' current keys, 1 old-key wrap(s) removed; 1 data key(s) not opened by the given key(s) were left as they were\n`,
    );
    assert.equal(ok(await detok(tokens, newPair.key), 'new key reads all').stdout, expectedLines(expected));
    const oldNow = await detok(older, oldPair.key);
    assert.equal(oldNow.code, 2, 'the rotated-out key opens nothing');
    assert.match(
      oldNow.stderr,
      new RegExp(
        `^dip: detokenize refused: 3 of 3 token\\(s\\) are not encrypted for the given private key \\(key ${oldPair.keyId}\\)`,
      ),
    );

    // A role added later gets every existing value through a rewrap by a current key holder.
    await put(
      join(project, 'dip.yaml'),
      config({ pii_admin: { public_key: newPair.pub }, auditor: { public_key: auditor.pub } }),
    );
    const added = ok(
      await cli(['-p', project, '--json', 'vault', 'rewrap', '--private-key', newPair.key], admin),
      'rewrap for auditor',
    );
    assert.deepEqual(JSON.parse(added.stdout), { dataKeys: 2, unopened: 0, added: 2, removed: 0 });
    assert.equal(ok(await detok(tokens, auditor.key), 'auditor').stdout, expectedLines(expected));
  });

  it('a legacy vault (values encrypted with privacy.vault.key) is refused with a pointer to `dip vault migrate`, which re-encrypts it for the roles', async () => {
    const project = await tempDir('dip-vault-legacy-');
    const admin = await tempDir('dip-vault-admin-');
    const pair = await keygen('pii_admin', admin);
    await put(join(project, 'dip.yaml'), config({ pii_admin: { public_key: pair.pub } }));
    // The vault as the previous version wrote it (format 1: AES-256-GCM under HKDF(privacy.vault.key)).
    const Database = await (await import('../src/core/sqlite-native.js')).loadSqlite();
    await mkdir(join(project, '.dip'), { mode: 0o700 });
    const file = join(project, '.dip', 'vault.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE vault_tokens (token TEXT PRIMARY KEY, "column" TEXT NOT NULL, ciphertext BLOB NOT NULL, iv BLOB NOT NULL, tag BLOB NOT NULL, created_at TEXT NOT NULL);
      CREATE TABLE vault_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);`);
    const derive = (info: string) =>
      Buffer.from(hkdfSync('sha256', Buffer.from(VAULT_KEY), Buffer.from('dip-token-vault'), Buffer.from(info), 32));
    db.prepare("INSERT INTO vault_meta VALUES ('key_check', ?)").run(derive('dip vault key check v1').toString('hex'));
    const tokenKey = TokenVault.deriveTokenKey(VAULT_KEY);
    const oldCiphertexts: Buffer[] = [];
    for (const email of EMAILS.slice(0, 2)) {
      const token = tokenFor(tokenKey, email);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', derive('dip vault encryption key v1'), iv);
      cipher.setAAD(Buffer.from(token));
      const ct = Buffer.concat([cipher.update(email, 'utf8'), cipher.final()]);
      oldCiphertexts.push(ct);
      db.prepare('INSERT INTO vault_tokens VALUES (?, ?, ?, ?, ?, ?)').run(
        token,
        'email',
        ct,
        iv,
        cipher.getAuthTag(),
        '2026-01-01T00:00:00Z',
      );
    }
    db.close();
    chmodSync(file, 0o600);
    const tokens = EMAILS.slice(0, 2).map((e) => tokenFor(tokenKey, e));

    const before = await cli(['-p', project, 'vault', 'detokenize', ...tokens, '--private-key', pair.key], admin);
    assert.equal(before.code, 2);
    assert.equal(
      before.stderr,
      `dip: detokenize refused: 2 token(s) are in the legacy vault format (encrypted with privacy.vault.key, which every pipeline runner holds): ${tokens.join(', ')}; run \`dip vault migrate\` to encrypt them for the roles' public keys\n`,
    );
    assert.equal(
      ok(await cli(['-p', project, 'vault', 'migrate'], project), 'migrate').stdout,
      `migrated 2 legacy entries of ${file}\n`,
    );
    assert.equal(
      ok(await cli(['-p', project, 'vault', 'migrate'], project), 'migrate again').stdout,
      `migrated 0 legacy entries of ${file}\n`,
    );
    const after = ok(
      await cli(['-p', project, 'vault', 'detokenize', ...tokens, '--private-key', pair.key], admin),
      'detokenize after migrate',
    );
    assert.equal(after.stdout, expectedLines(tokens.map((t, i) => [t, EMAILS[i]!])));
    // The old ciphertexts (which the vault key alone decrypts) are gone from the files.
    const bytes = Buffer.concat([file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f)));
    for (const ct of oldCiphertexts)
      assert.equal(bytes.indexOf(ct), -1, 'a legacy ciphertext is still in the vault file');
  });

  it('names what is missing: no public_key (old `secret` roles), no role at all', async () => {
    const project = await tempDir('dip-vault-cfg-');
    await put(
      join(project, 'dip.yaml'),
      config({ pii_admin: { secret: '${env:DIP_TEST_VAULT_KEY}' } }, { raw: false }),
    );
    await put(join(project, 'data', 'a.ndjson'), ndjson(users(EMAILS, 1)));
    const r = await cli(['-p', project, 'run'], project);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /privacy\.vault\.roles\.pii_admin\.public_key is not set \(`secret` no longer grants detokenize: values are readable only with a private key\); run `dip vault keygen --role pii_admin` and set public_key to the \.pub file it writes/,
    );
    await put(join(project, 'dip.yaml'), config({}, { raw: false }));
    const none = await cli(['-p', project, 'run'], project);
    assert.equal(none.code, 2, none.stderr);
    assert.match(
      none.stderr,
      /token vault: cannot store tokenized values: no role of privacy\.vault\.roles has a public_key, so no one could read the values back/,
    );
    assert.equal(existsSync(join(project, '.dip', 'lake', 'silver')), false, 'nothing of silver committed');
  });
});

// ---------------------------------------------------------------------------------------------

interface Entry {
  path: string;
  kind: 'file' | 'dir';
  mode: number;
}

function walk(root: string): Entry[] {
  const out: Entry[] = [{ path: root, kind: 'dir', mode: statSync(root).mode & 0o777 }];
  for (const e of readdirSync(root, { withFileTypes: true })) {
    const full = join(root, e.name);
    if (e.isDirectory()) out.push(...walk(full));
    else out.push({ path: full, kind: 'file', mode: statSync(full).mode & 0o777 });
  }
  return out;
}

/** The built CLI under `umask 000`: whatever DIP does not set itself would come out world-writable. */
function cliUmask0(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((done, fail) => {
    const child = spawn('/bin/sh', ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, CLI, ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', ...ENV, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function exposed(root: string): { entries: Entry[]; open: string[] } {
  const entries = walk(root);
  const open = entries
    .filter((e) => (e.mode & 0o077) !== 0)
    .map((e) => `${e.path.slice(root.length) || '/'} ${e.mode.toString(8)}`);
  return { entries, open };
}

describe('at rest: files 0600, directories 0700', () => {
  it('after runs under umask 000 (files, raw, bronze, silver with a vault, keygen), nothing in the project is group or world accessible', async () => {
    const project = await tempDir('dip-perm-');
    await put(join(project, 'data', 'a.ndjson'), ndjson(users(EMAILS, 1)));
    const keys = ok(
      await cliUmask0(['--json', 'vault', 'keygen', '--role', 'pii_admin', '--out', join(project, 'keys')], project),
      'keygen',
    );
    const pub = (JSON.parse(keys.stdout) as { public_key: string }).public_key;
    await put(join(project, 'dip.yaml'), config({ pii_admin: { public_key: pub } }));
    ok(await cliUmask0(['-p', project, 'run'], project), 'run 1');
    await put(join(project, 'data', 'b.ndjson'), ndjson(users(LATER, 10)));
    ok(await cliUmask0(['-p', project, 'run'], project), 'run 2');
    ok(await cliUmask0(['-p', project, 'compact'], project), 'compact');
    const { entries, open } = exposed(project);
    const files = entries.filter((e) => e.kind === 'file').map((e) => e.path.slice(project.length));
    for (const expected of ['/.dip/catalog.db', '/.dip/vault.db', '/keys/pii_admin.key', '/keys/pii_admin.pub']) {
      assert.ok(files.includes(expected), `${expected} exists`);
    }
    for (const zone of ['raw', 'bronze', 'silver'])
      assert.ok(
        files.some((f) => f.startsWith(`/.dip/lake/${zone}/`)),
        `${zone} files exist`,
      );
    console.log(`checked ${entries.length} entries (${files.length} files)`);
    assert.deepEqual(open, [], 'group/world-accessible entries');
  });

  it('`dip init` under umask 000 scaffolds a private project', async () => {
    const parent = await tempDir('dip-perm-init-');
    const dir = join(parent, 'proj');
    ok(await cliUmask0(['init', dir], parent), 'init');
    ok(await cliUmask0(['-p', dir, 'run'], dir), 'run');
    const { entries, open } = exposed(dir);
    assert.ok(entries.length > 10);
    assert.deepEqual(open, [], 'group/world-accessible entries');
  });
});
