/**
 * Over 400 lines: the envelope format, key wrapping, rotation and migration must agree byte for byte.
 *
 * The token vault of the `tokenize` mask: a SQLite file outside the lake (privacy.vault.path,
 * default .dip/vault.db) mapping each token to its clear value, encrypted so that only the
 * holders of a role's PRIVATE key can read it back.
 *
 * Tokens are deterministic (`tok_` + 32 hex of SHA-256(tokenKey ‖ value), the token key derived
 * from privacy.vault.key with HKDF), so tokenized columns still join across tables. Every
 * pipeline runner holds that key; it lets a runner make tokens, never read values.
 *
 * Values (envelope encryption, node:crypto only):
 * - each `store` call draws a random 256-bit data key and encrypts each new value with it
 *   (AES-256-GCM, random IV, the token and data key id as associated data);
 * - the data key is wrapped for each role of privacy.vault.roles: an ephemeral X25519 key pair,
 *   ECDH with the role's public key, HKDF-SHA256 over the shared secret (salted with both public
 *   keys) → a key-encryption key, AES-256-GCM over the data key. The data key itself is never
 *   written; the ephemeral private key is dropped at once.
 * So a runner (vault key + config + public keys) can add values but not read any, and a role
 * declared in another dip.yaml gets wraps only for values stored under that config — values the
 * runner read in clear anyway — never for entries already in the vault.
 *
 * Rotation: a role's new public key applies to values stored from then on; entries wrapped for
 * the old key stay readable with the old private key, and `rewrap` (given a private key that
 * opens them) wraps their data keys for every role's current key and drops the stale wraps.
 *
 * Legacy (format 1) entries were encrypted with a key derived from privacy.vault.key alone;
 * `migrateLegacy` re-encrypts them as above, and detokenize refuses them until then.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { VaultConfig } from '../config/silver.js';
import { hasSecretRef, resolveSecrets, SecretRegistry, secretRegistry } from '../config/secrets.js';
import { aeadOpen, aeadSeal, type Sealed } from '../core/aead.js';
import { ConfigError, DipError } from '../core/errors.js';
import { ensurePrivateFileSync } from '../core/private-files.js';
import { loadSqlite } from '../core/sqlite-native.js';
import { TOKEN_HEX_CHARS } from './mask.js';

/** The token of `value`: what the tokenize mask computes in SQL (`tokenSql` in mask.ts). */
export function tokenFor(tokenKey: string, value: string): string {
  return `tok_${createHash('sha256')
    .update(tokenKey + value, 'utf8')
    .digest('hex')
    .slice(0, TOKEN_HEX_CHARS)}`;
}

const HKDF_SALT = 'dip-token-vault';
const TOKEN_KEY_INFO = 'dip vault token key v1';
/** Format 1 only: the key legacy entries were encrypted with (derived from privacy.vault.key). */
const LEGACY_ENCRYPTION_KEY_INFO = 'dip vault encryption key v1';
const CHECK_INFO = 'dip vault key check v1';
const WRAP_INFO = 'dip vault data key wrap v2';

function derive(key: string, info: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', Buffer.from(key, 'utf8'), Buffer.from(HKDF_SALT, 'utf8'), Buffer.from(info, 'utf8'), 32),
  );
}

// ---------------------------------------------------------------------------------------------
// Role keys

/** A role's public key values are encrypted for. */
export interface VaultRecipient {
  role: string;
  publicKey: KeyObject;
  /** First 16 hex of SHA-256 over the public key (SPKI DER): names the key in the vault and in messages. */
  keyId: string;
}

/** A private key presented to detokenize or rewrap. */
export interface RoleKey {
  privateKey: KeyObject;
  keyId: string;
  /** Where it came from (a file, a reference), for messages; never the key. */
  label: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

/** A new X25519 key pair for a role, as PEM (private: PKCS#8, public: SPKI). */
export function generateRoleKeyPair(): { privatePem: string; publicPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/**
 * The PEM text a key setting gives: a `${file:…}`/`${env:…}` reference (resolved; a private
 * key's text is registered for redaction), PEM text itself, or a file path relative to `baseDir`.
 */
function keyText(value: string, baseDir: string, field: string, secret: boolean): string {
  const trimmed = value.trim();
  if (hasSecretRef(trimmed))
    return resolveSecrets(trimmed, { baseDir, registry: secret ? secretRegistry : new SecretRegistry() });
  if (trimmed.startsWith('-----BEGIN')) {
    if (secret) secretRegistry.add(trimmed);
    return trimmed;
  }
  const file = path.resolve(baseDir, trimmed);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(
      `${field}: cannot read the key file ${file} (${code}); expected a PEM file path, \${file:…}, \${env:…} or PEM text`,
    );
  }
  if (secret) secretRegistry.add(text.trim());
  return text;
}

function requireX25519(key: KeyObject, field: string, what: string): void {
  if (key.asymmetricKeyType !== 'x25519') {
    throw new ConfigError(
      `${field}: expected an X25519 ${what} key (as \`dip vault keygen\` writes), got ${key.asymmetricKeyType ?? 'an unknown'} key`,
    );
  }
}

/** The public key of a `public_key` setting. `field` names the setting in messages. */
export function loadPublicKey(value: string, baseDir: string, field: string): KeyObject {
  const text = keyText(value, baseDir, field, false);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw new ConfigError(`${field}: not a PEM public key; expected the .pub file \`dip vault keygen\` writes`);
  }
  requireX25519(key, field, 'public');
  return key;
}

/** The private key of a `--private-key` option or `private_key` setting (never echoed in messages). */
export function loadPrivateKey(value: string, baseDir: string, field: string): RoleKey {
  const text = keyText(value, baseDir, field, true);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw new ConfigError(`${field}: not a PEM private key; expected the .key file \`dip vault keygen\` writes`);
  }
  requireX25519(key, field, 'private');
  return {
    privateKey: key,
    keyId: keyIdOf(createPublicKey(key)),
    label: hasSecretRef(value)
      ? value.trim()
      : value.trim().startsWith('-----BEGIN')
        ? field
        : path.resolve(baseDir, value.trim()),
  };
}

/** The roles of privacy.vault.roles with their public keys; a role without one is a configuration error. */
export function vaultRecipients(vault: VaultConfig, projectDir: string): VaultRecipient[] {
  const recipients: VaultRecipient[] = [];
  for (const [role, cfg] of Object.entries(vault.roles)) {
    const field = `privacy.vault.roles.${role}.public_key`;
    if (!cfg.public_key) {
      const legacy = cfg.secret
        ? ' (`secret` no longer grants detokenize: values are readable only with a private key)'
        : '';
      throw new ConfigError(
        `${field} is not set${legacy}; run \`dip vault keygen --role ${role}\` and set public_key to the .pub file it writes`,
      );
    }
    const publicKey = loadPublicKey(cfg.public_key, projectDir, field);
    recipients.push({ role, publicKey, keyId: keyIdOf(publicKey) });
  }
  return recipients;
}

// ---------------------------------------------------------------------------------------------
// Envelope

function seal(key: Buffer, plain: Buffer, aad: string): Sealed {
  return aeadSeal(key, plain, Buffer.from(aad, 'utf8'));
}

function unseal(key: Buffer, sealed: Sealed, aad: string): Buffer {
  return aeadOpen(key, sealed, Buffer.from(aad, 'utf8'));
}

function wrapKeyFor(shared: Buffer, epk: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, recipient]), Buffer.from(WRAP_INFO, 'utf8'), 32));
}

const wrapAad = (dataKey: string, keyId: string) => `dip-vault-dek:${dataKey}:${keyId}`;
const valueAad = (token: string, dataKey: string) => `${token}:${dataKey}`;

interface WrapRow {
  data_key: string;
  role: string;
  key_id: string;
  epk: Buffer;
  iv: Buffer;
  wrapped: Buffer;
  tag: Buffer;
}

function wrapDataKey(
  dataKey: string,
  dek: Buffer,
  recipient: VaultRecipient,
): Omit<WrapRow, 'data_key' | 'role' | 'key_id'> {
  const ephemeral = generateKeyPairSync('x25519');
  const epk = ephemeral.publicKey.export({ type: 'spki', format: 'der' });
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient.publicKey });
  const kek = wrapKeyFor(shared, epk, recipient.publicKey.export({ type: 'spki', format: 'der' }));
  const sealed = seal(kek, dek, wrapAad(dataKey, recipient.keyId));
  return { epk, iv: sealed.iv, wrapped: sealed.ciphertext, tag: sealed.tag };
}

function unwrapDataKey(row: WrapRow, key: RoleKey): Buffer {
  const publicKey = createPublicKey(key.privateKey);
  const shared = diffieHellman({
    privateKey: key.privateKey,
    publicKey: createPublicKey({ key: row.epk, format: 'der', type: 'spki' }),
  });
  const kek = wrapKeyFor(shared, row.epk, publicKey.export({ type: 'spki', format: 'der' }));
  return unseal(kek, { iv: row.iv, ciphertext: row.wrapped, tag: row.tag }, wrapAad(row.data_key, row.key_id));
}

// ---------------------------------------------------------------------------------------------
// The vault

export interface VaultOptions {
  /** The vault file, relative to the project directory. */
  path: string;
  /** privacy.vault.key, resolved: needed to store values (tokens) and to migrate legacy entries; not to detokenize or rewrap. */
  key?: string | undefined;
  /** Roles values are encrypted for (their current public keys): needed to store, rewrap and migrate. */
  recipients?: readonly VaultRecipient[] | undefined;
}

export interface RewrapResult {
  /** Data keys the given private keys opened (and that now have a wrap for every role's current key). */
  dataKeys: number;
  /** Data keys none of the given private keys opened (left as they were). */
  unopened: number;
  added: number;
  /** Wraps for a role's previous keys, removed (those keys no longer open anything rewrapped). */
  removed: number;
}

interface EntryRow {
  ciphertext: Buffer;
  iv: Buffer;
  tag: Buffer;
  data_key: string | null;
}

export class TokenVault {
  private readonly insert: BetterSqlite3.Statement<[string, string, Buffer, Buffer, Buffer, string, string]>;
  private readonly select: BetterSqlite3.Statement<[string], EntryRow>;
  private readonly insertWrap: BetterSqlite3.Statement<
    [string, string, string, Buffer, Buffer, Buffer, Buffer, string]
  >;
  private readonly selectWraps: BetterSqlite3.Statement<[string], WrapRow>;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly key: string | undefined,
    private readonly recipients: readonly VaultRecipient[],
    /** Absolute path of the vault file. */
    readonly path: string,
  ) {
    this.insert = db.prepare(
      'INSERT OR IGNORE INTO vault_tokens (token, "column", ciphertext, iv, tag, created_at, data_key) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.select = db.prepare('SELECT ciphertext, iv, tag, data_key FROM vault_tokens WHERE token = ?');
    this.insertWrap = db.prepare(
      'INSERT OR REPLACE INTO vault_key_wraps (data_key, role, key_id, epk, iv, wrapped, tag, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.selectWraps = db.prepare(
      'SELECT data_key, role, key_id, epk, iv, wrapped, tag FROM vault_key_wraps WHERE data_key = ?',
    );
  }

  /** The token key `key` gives (what `tokenKey` of a vault opened with it returns), without opening the vault. */
  static deriveTokenKey(key: string): string {
    if (!key)
      throw new ConfigError('privacy.vault.key is empty; set it to a secret reference such as ${env:DIP_VAULT_KEY}');
    // 16 bytes (128 bits) as 22 base64url characters: short, so that SHA-256(tokenKey ‖ value)
    // stays within one 64-byte block for values up to 33 bytes (each extra block costs as much).
    return derive(key, TOKEN_KEY_INFO).subarray(0, 16).toString('base64url');
  }

  /** The token key (for stores); only a vault opened with privacy.vault.key has it. */
  get tokenKey(): string {
    if (!this.key)
      throw new ConfigError('token vault opened without privacy.vault.key: it can detokenize and rewrap, not store');
    return TokenVault.deriveTokenKey(this.key);
  }

  /** Opens (creating if needed, 0600) the vault at `options.path`, relative to `projectDir`. */
  static async open(options: VaultOptions, projectDir: string): Promise<TokenVault> {
    if (options.key !== undefined && !options.key)
      throw new ConfigError('privacy.vault.key is empty; set it to a secret reference such as ${env:DIP_VAULT_KEY}');
    const file = path.resolve(projectDir, options.path);
    // 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
    ensurePrivateFileSync(file, [`${file}-wal`, `${file}-shm`, `${file}-journal`]);
    const Database = await loadSqlite();
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 15000');
      // Rewritten and migrated entries are overwritten on disk, not left in free pages.
      db.pragma('secure_delete = ON');
      db.exec(`CREATE TABLE IF NOT EXISTS vault_tokens (
        token TEXT PRIMARY KEY,
        "column" TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        iv BLOB NOT NULL,
        tag BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS vault_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS vault_key_wraps (
        data_key TEXT NOT NULL,
        role TEXT NOT NULL,
        key_id TEXT NOT NULL,
        epk BLOB NOT NULL,
        iv BLOB NOT NULL,
        wrapped BLOB NOT NULL,
        tag BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (data_key, role, key_id)
      );`);
      const columns = db.prepare<[], { name: string }>('PRAGMA table_info(vault_tokens)').all();
      // Format 2: entries name the data key they are encrypted with; NULL marks a legacy (format 1) entry.
      if (!columns.some((c) => c.name === 'data_key')) db.exec('ALTER TABLE vault_tokens ADD COLUMN data_key TEXT');
      if (options.key) {
        const check = derive(options.key, CHECK_INFO).toString('hex');
        db.prepare("INSERT OR IGNORE INTO vault_meta (name, value) VALUES ('key_check', ?)").run(check);
        const stored = db.prepare<[], { value: string }>("SELECT value FROM vault_meta WHERE name = 'key_check'").get();
        if (stored?.value !== check) {
          throw new ConfigError(
            `token vault ${file} was created with another key: privacy.vault.key does not match (its tokens would not match the stored ones)`,
          );
        }
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return new TokenVault(db, options.key || undefined, options.recipients ?? [], file);
  }

  /** How many entries are still in the legacy format (readable with privacy.vault.key alone); `migrateLegacy` converts them. */
  legacyEntries(): number {
    return (
      this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM vault_tokens WHERE data_key IS NULL').get()?.n ?? 0
    );
  }

  /**
   * Keeps the value of each token, encrypted for every role's public key; tokens already in the
   * vault are left alone. Each token must be `tokenFor(tokenKey, value)`. Returns how many were new.
   */
  store(column: string, entries: Iterable<{ token: string; value: string }>): number {
    const tokenKey = this.tokenKey;
    this.requireRecipients('store tokenized values');
    const now = new Date().toISOString();
    const write = this.db.transaction((items: Iterable<{ token: string; value: string }>) => {
      let batch: { id: string; dek: Buffer } | undefined;
      let added = 0;
      for (const { token, value } of items) {
        if (tokenFor(tokenKey, value) !== token) {
          throw new DipError(
            'internal',
            `token vault: token ${token} of column ${column} is not the token of its value (was it computed with another key?)`,
          );
        }
        if (this.select.get(token)) continue;
        batch ??= this.newDataKey(now);
        const sealed = seal(batch.dek, Buffer.from(value, 'utf8'), valueAad(token, batch.id));
        added += this.insert.run(token, column, sealed.ciphertext, sealed.iv, sealed.tag, now, batch.id).changes;
      }
      batch?.dek.fill(0);
      return added;
    });
    return write(entries);
  }

  /**
   * The clear values of `tokens` (undefined for tokens not in the vault), decrypted with the
   * given private keys. Refused, naming the tokens, when an entry is not encrypted for any of
   * them or is still in the legacy format.
   */
  detokenize(tokens: readonly string[], keys: readonly RoleKey[]): Map<string, string | undefined> {
    if (keys.length === 0)
      throw new ConfigError(
        'detokenize refused: no private key given (pass --private-key <file> of a role of privacy.vault.roles)',
      );
    const dataKeys = new Map<string, Buffer | undefined>();
    const out = new Map<string, string | undefined>();
    const legacy: string[] = [];
    const unreadable: { token: string; dataKey: string }[] = [];
    for (const token of tokens) {
      const row = this.select.get(token);
      if (!row) {
        out.set(token, undefined);
        continue;
      }
      if (row.data_key === null) {
        legacy.push(token);
        continue;
      }
      if (!dataKeys.has(row.data_key)) dataKeys.set(row.data_key, this.openDataKey(row.data_key, keys));
      const dek = dataKeys.get(row.data_key);
      if (!dek) {
        unreadable.push({ token, dataKey: row.data_key });
        continue;
      }
      out.set(token, this.decrypt(token, row, dek, row.data_key).toString('utf8'));
    }
    for (const dek of dataKeys.values()) dek?.fill(0);
    if (legacy.length) {
      throw new ConfigError(
        `detokenize refused: ${legacy.length} token(s) are in the legacy vault format (encrypted with privacy.vault.key, which every pipeline runner holds): ${legacy.join(', ')}; run \`dip vault migrate\` to encrypt them for the roles' public keys`,
      );
    }
    if (unreadable.length) {
      const holders = new Set<string>();
      for (const { dataKey } of unreadable)
        for (const w of this.selectWraps.all(dataKey)) holders.add(`${w.role} (key ${w.key_id})`);
      const given = keys.map((k) => `key ${k.keyId}`).join(', ');
      throw new ConfigError(
        `detokenize refused: ${unreadable.length} of ${tokens.length} token(s) are not encrypted for the given private key (${given}): ${unreadable.map((u) => u.token).join(', ')}; ` +
          `they are readable with the private key of: ${[...holders].sort().join(', ') || 'no role'}`,
      );
    }
    return out;
  }

  /**
   * Wraps every data key the given private keys open for each role's current public key and
   * removes those roles' wraps under other keys (a rotated-out key then opens none of them).
   * Values are not re-encrypted: their data keys stay, only who can open them changes.
   */
  rewrap(keys: readonly RoleKey[]): RewrapResult {
    if (keys.length === 0)
      throw new ConfigError(
        'rewrap refused: no private key given (pass --private-key <file> of a key the entries are encrypted for)',
      );
    this.requireRecipients('rewrap');
    const now = new Date().toISOString();
    const run = this.db.transaction(() => {
      const result: RewrapResult = { dataKeys: 0, unopened: 0, added: 0, removed: 0 };
      const ids = this.db
        .prepare<[], { data_key: string }>('SELECT DISTINCT data_key FROM vault_key_wraps ORDER BY data_key')
        .all();
      const remove = this.db.prepare<[string, string, string]>(
        'DELETE FROM vault_key_wraps WHERE data_key = ? AND role = ? AND key_id <> ?',
      );
      for (const { data_key: id } of ids) {
        const dek = this.openDataKey(id, keys);
        if (!dek) {
          result.unopened++;
          continue;
        }
        result.dataKeys++;
        const existing = this.selectWraps.all(id);
        for (const r of this.recipients) {
          if (!existing.some((w) => w.role === r.role && w.key_id === r.keyId)) {
            this.putWrap(id, dek, r, now);
            result.added++;
          }
          result.removed += remove.run(id, r.role, r.keyId).changes;
        }
        dek.fill(0);
      }
      return result;
    });
    const result = run();
    this.purge();
    return result;
  }

  /**
   * Re-encrypts legacy (format 1) entries for the roles' public keys; needs privacy.vault.key
   * (their old key derives from it). Returns how many entries were migrated. The old
   * ciphertexts are overwritten on disk (secure_delete, checkpoint, VACUUM).
   */
  migrateLegacy(): number {
    if (!this.key)
      throw new ConfigError(
        'dip vault migrate needs privacy.vault.key (legacy entries were encrypted with a key derived from it)',
      );
    this.requireRecipients('migrate legacy entries');
    const legacyKey = derive(this.key, LEGACY_ENCRYPTION_KEY_INFO);
    const now = new Date().toISOString();
    const run = this.db.transaction(() => {
      const rows = this.db
        .prepare<[], EntryRow & { token: string }>(
          'SELECT token, ciphertext, iv, tag, data_key FROM vault_tokens WHERE data_key IS NULL',
        )
        .all();
      if (rows.length === 0) return 0;
      const batch = this.newDataKey(now);
      const update = this.db.prepare<[Buffer, Buffer, Buffer, string, string]>(
        'UPDATE vault_tokens SET ciphertext = ?, iv = ?, tag = ?, data_key = ? WHERE token = ?',
      );
      for (const row of rows) {
        let clear: Buffer;
        try {
          clear = unseal(legacyKey, row, row.token);
        } catch (err) {
          throw new DipError(
            'internal',
            `token vault ${this.path}: the legacy entry ${row.token} cannot be decrypted (the vault entry is damaged)`,
            { cause: err },
          );
        }
        const sealed = seal(batch.dek, clear, valueAad(row.token, batch.id));
        clear.fill(0);
        update.run(sealed.ciphertext, sealed.iv, sealed.tag, batch.id, row.token);
      }
      batch.dek.fill(0);
      return rows.length;
    });
    const migrated = run();
    if (migrated) this.purge();
    return migrated;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private requireRecipients(what: string): void {
    if (this.recipients.length === 0) {
      throw new ConfigError(
        `token vault: cannot ${what}: no role of privacy.vault.roles has a public_key, so no one could read the values back; run \`dip vault keygen --role <name>\` and add the role with its public_key`,
      );
    }
  }

  private newDataKey(now: string): { id: string; dek: Buffer } {
    const batch = { id: randomBytes(16).toString('hex'), dek: randomBytes(32) };
    for (const r of this.recipients) this.putWrap(batch.id, batch.dek, r, now);
    return batch;
  }

  private putWrap(dataKey: string, dek: Buffer, recipient: VaultRecipient, now: string): void {
    const w = wrapDataKey(dataKey, dek, recipient);
    this.insertWrap.run(dataKey, recipient.role, recipient.keyId, w.epk, w.iv, w.wrapped, w.tag, now);
  }

  /** The data key `id`, unwrapped with the first of `keys` it is wrapped for; undefined if none. */
  private openDataKey(id: string, keys: readonly RoleKey[]): Buffer | undefined {
    const wraps = this.selectWraps.all(id);
    for (const key of keys) {
      for (const w of wraps) {
        if (w.key_id !== key.keyId) continue;
        try {
          return unwrapDataKey(w, key);
        } catch (err) {
          throw new DipError(
            'internal',
            `token vault ${this.path}: data key ${id} cannot be unwrapped with key ${key.keyId} (the vault entry is damaged)`,
            { cause: err },
          );
        }
      }
    }
    return undefined;
  }

  private decrypt(token: string, row: EntryRow, dek: Buffer, dataKey: string): Buffer {
    try {
      return unseal(dek, row, valueAad(token, dataKey));
    } catch (err) {
      throw new DipError(
        'internal',
        `token vault ${this.path}: the value of ${token} cannot be decrypted (the vault entry is damaged)`,
        { cause: err },
      );
    }
  }

  /** Flushes the WAL into the file and rewrites it, so replaced ciphertexts and wraps are gone from disk. */
  private purge(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.exec('VACUUM');
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }
}

/**
 * What a pipeline runner opens the vault with: privacy.vault.key resolved and, when `recipients`
 * is set, every role's public key (the vault needs them to store values). No private key, no
 * role secret is resolved.
 */
export function runnerVaultOptions(
  vault: VaultConfig,
  projectDir: string,
  options: { recipients?: boolean } = {},
): VaultOptions {
  return {
    path: vault.path,
    key: resolveSecrets(vault.key, { baseDir: projectDir }),
    recipients: options.recipients === false ? [] : vaultRecipients(vault, projectDir),
  };
}
