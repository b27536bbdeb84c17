/**
 * The token vault of the `tokenize` mask: a SQLite file outside the lake (privacy.vault.path,
 * default .dip/vault.db) mapping each token to its clear value, encrypted with AES-256-GCM.
 * Tokens are deterministic (`tok_` + 32 hex of SHA-256(tokenKey ‖ value)), so tokenized
 * columns still join across tables; the clear values come back only through `detokenize`, for
 * a role listed in privacy.vault.roles that proves its secret.
 *
 * Keys: the configured key is never used directly. HKDF-SHA256 derives, with different `info`
 * labels, the token key (usable in SQL), the encryption key and a verification value kept in
 * the vault so that opening it with another key fails instead of writing undecryptable rows.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { VaultConfig } from '../config/silver.js';
import { resolveSecrets } from '../config/secrets.js';
import { ConfigError, DipError } from '../core/errors.js';
import { TOKEN_HEX_CHARS } from './mask.js';

/** The token of `value`: what the tokenize mask computes in SQL (`tokenSql` in mask.ts). */
export function tokenFor(tokenKey: string, value: string): string {
  return `tok_${createHash('sha256').update(tokenKey + value, 'utf8').digest('hex').slice(0, TOKEN_HEX_CHARS)}`;
}

const HKDF_SALT = 'dip-token-vault';
const TOKEN_KEY_INFO = 'dip vault token key v1';
const ENCRYPTION_KEY_INFO = 'dip vault encryption key v1';
const CHECK_INFO = 'dip vault key check v1';

function derive(key: string, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(key, 'utf8'), Buffer.from(HKDF_SALT, 'utf8'), Buffer.from(info, 'utf8'), 32));
}

export interface DetokenizeCredentials {
  role: string | undefined;
  secret: string | undefined;
}

export class TokenVault {
  private readonly insert: BetterSqlite3.Statement<[string, string, Buffer, Buffer, Buffer, string]>;
  private readonly select: BetterSqlite3.Statement<[string], { ciphertext: Buffer; iv: Buffer; tag: Buffer }>;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly config: VaultConfig,
    private readonly encryptionKey: Buffer,
    readonly tokenKey: string,
    /** Absolute path of the vault file. */
    readonly path: string,
  ) {
    this.insert = db.prepare('INSERT OR IGNORE INTO vault_tokens (token, "column", ciphertext, iv, tag, created_at) VALUES (?, ?, ?, ?, ?, ?)');
    this.select = db.prepare('SELECT ciphertext, iv, tag FROM vault_tokens WHERE token = ?');
  }

  /** The token key `key` gives (what `tokenKey` of a vault opened with it returns), without opening the vault. */
  static deriveTokenKey(key: string): string {
    if (!key) throw new ConfigError('privacy.vault.key is empty; set it to a secret reference such as ${env:DIP_VAULT_KEY}');
    // 16 bytes (128 bits) as 22 base64url characters: short, so that SHA-256(tokenKey ‖ value)
    // stays within one 64-byte block for values up to 33 bytes (each extra block costs as much).
    return derive(key, TOKEN_KEY_INFO).subarray(0, 16).toString('base64url');
  }

  /** Opens (creating if needed) the vault at `config.path`, relative to `projectDir`. `config` holds resolved secrets. */
  static async open(config: VaultConfig, projectDir: string): Promise<TokenVault> {
    if (!config.key) throw new ConfigError('privacy.vault.key is empty; set it to a secret reference such as ${env:DIP_VAULT_KEY}');
    const file = path.resolve(projectDir, config.path);
    mkdirSync(path.dirname(file), { recursive: true });
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 15000');
      db.exec(`CREATE TABLE IF NOT EXISTS vault_tokens (
        token TEXT PRIMARY KEY,
        "column" TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        iv BLOB NOT NULL,
        tag BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS vault_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);`);
      const check = derive(config.key, CHECK_INFO).toString('hex');
      db.prepare("INSERT OR IGNORE INTO vault_meta (name, value) VALUES ('key_check', ?)").run(check);
      const stored = db.prepare<[], { value: string }>("SELECT value FROM vault_meta WHERE name = 'key_check'").get();
      if (stored?.value !== check) {
        throw new ConfigError(`token vault ${file} was created with another key: privacy.vault.key does not match (its tokens could not be decrypted)`);
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return new TokenVault(db, config, derive(config.key, ENCRYPTION_KEY_INFO), TokenVault.deriveTokenKey(config.key), file);
  }

  /**
   * Keeps the value of each token, encrypted; tokens already in the vault are left alone.
   * Each token must be `tokenFor(tokenKey, value)`. Returns how many tokens were new.
   */
  store(column: string, entries: Iterable<{ token: string; value: string }>): number {
    const now = new Date().toISOString();
    const write = this.db.transaction((items: Iterable<{ token: string; value: string }>) => {
      let added = 0;
      for (const { token, value } of items) {
        if (tokenFor(this.tokenKey, value) !== token) {
          throw new DipError('internal', `token vault: token ${token} of column ${column} is not the token of its value (was it computed with another key?)`);
        }
        if (this.select.get(token)) continue;
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', this.encryptionKey, iv);
        cipher.setAAD(Buffer.from(token, 'utf8'));
        const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
        added += this.insert.run(token, column, ciphertext, iv, cipher.getAuthTag(), now).changes;
      }
      return added;
    });
    return write(entries);
  }

  /**
   * The clear values of `tokens` (undefined for tokens not in the vault). Refused unless
   * `credentials.role` is one of privacy.vault.roles and `credentials.secret` is its secret.
   */
  detokenize(tokens: readonly string[], credentials: DetokenizeCredentials): Map<string, string | undefined> {
    this.authorize(credentials);
    const out = new Map<string, string | undefined>();
    for (const token of tokens) {
      const row = this.select.get(token);
      out.set(token, row ? this.decrypt(token, row) : undefined);
    }
    return out;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private authorize({ role, secret }: DetokenizeCredentials): void {
    const roles = Object.keys(this.config.roles);
    const allowed = roles.length ? roles.join(', ') : 'none; add privacy.vault.roles to dip.yaml';
    if (!role) throw new ConfigError(`detokenize refused: no role given (set --role and DIP_ROLE_SECRET); allowed roles: ${allowed}`);
    const expected = Object.hasOwn(this.config.roles, role) ? this.config.roles[role]?.secret : undefined;
    if (expected === undefined) throw new ConfigError(`detokenize refused: role "${role}" may not detokenize (allowed roles: ${allowed})`);
    if (!secret) throw new ConfigError(`detokenize refused: no secret given for role "${role}" (set DIP_ROLE_SECRET)`);
    // Compare digests: equal lengths for timingSafeEqual, and no early exit on the secret's length.
    const digest = (s: string) => createHmac('sha256', 'dip-role-secret').update(s, 'utf8').digest();
    if (!timingSafeEqual(digest(secret), digest(expected))) throw new ConfigError(`detokenize refused: wrong secret for role "${role}"`);
  }

  private decrypt(token: string, row: { ciphertext: Buffer; iv: Buffer; tag: Buffer }): string {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.encryptionKey, row.iv);
      decipher.setAAD(Buffer.from(token, 'utf8'));
      decipher.setAuthTag(row.tag);
      return Buffer.concat([decipher.update(row.ciphertext), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new DipError('internal', `token vault ${this.path}: the value of ${token} cannot be decrypted (the vault entry is damaged)`, { cause: err });
    }
  }
}

/**
 * privacy.vault with its secret references resolved. `roles` limits which role secrets are
 * resolved (e.g. only the role asking to detokenize, so other roles' variables need not be
 * set); the other roles keep their names with a random secret nobody can present.
 */
export function resolveVaultConfig(vault: VaultConfig, projectDir: string, options: { roles?: readonly string[] } = {}): VaultConfig {
  const opts = { baseDir: projectDir };
  const roles: VaultConfig['roles'] = {};
  for (const [name, role] of Object.entries(vault.roles)) {
    const wanted = options.roles === undefined || options.roles.includes(name);
    roles[name] = { secret: wanted ? resolveSecrets(role.secret, opts) : randomBytes(32).toString('hex') };
  }
  return { path: vault.path, key: resolveSecrets(vault.key, opts), roles };
}
