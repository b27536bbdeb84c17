/**
 * Project-wide privacy settings, resolved for a silver build: the salt of hash masks (from
 * dip.yaml, or a random one kept in `.dip/pii-salt` beside — never inside — the lake), the
 * token vault, and how unmasked PII is treated.
 */
import { createHash } from 'node:crypto';
import { extname, resolve } from 'node:path';
import type { LoadedProject } from '../config/load.js';
import type { PiiDetectConfig, PiiDetectLevel } from '../config/silver.js';
import { resolveSecrets } from '../config/secrets.js';
import { ConfigError } from '../core/errors.js';
import { readOrCreateSecretSync } from '../core/private-files.js';
import { lit } from '../lake/sql.js';
import type { MaskContext } from './mask.js';
import type { DetectedPii } from './pii-detect.js';
import { sealerFromSecret, type Sealer } from './seal.js';
import { TokenVault, vaultRecipients } from './vault.js';

export interface PrivacyContext {
  mask: MaskContext;
  /** What a column that looks like each kind of PII but has no mask does to the build. */
  detect: Record<DetectedPii, PiiDetectLevel>;
  /** Changes when a secret that shapes masked values changes (so silver tables rebuild). */
  fingerprint: string;
  /** Opens the vault (only when a tokenize mask needs it); undefined without privacy.vault. */
  openVault(): Promise<TokenVault | undefined>;
  /** A DuckDB relation over a static reference file of the project. */
  referenceFile(path: string): string;
  /** Seals quarantined values of masked columns (privacy.quarantine_key, or .dip/quarantine-key). */
  sealer(): Promise<Sealer>;
}

export const SALT_FILE = '.dip/pii-salt';
export const QUARANTINE_KEY_FILE = '.dip/quarantine-key';

async function projectSalt(dir: string): Promise<string> {
  return projectSecretFile(dir, SALT_FILE);
}

/** A random secret kept in a file of the project (created 0600 on first use, outside the lake). */
async function projectSecretFile(dir: string, rel: string): Promise<string> {
  // 16 bytes = 22 characters: salt + value stay within one SHA-256 block for values up to 33
  // bytes, which halves the cost of hashing (a longer salt would hash every value in two blocks).
  return readOrCreateSecretSync(resolve(dir, rel), 16);
}

/**
 * The level per detected kind. A single level applies to every kind, except that `warn` (the
 * default) still fails the build on Luhn-valid card numbers: a card number is never a false
 * positive worth only a warning. The object form sets kinds one by one (card: error unless given).
 */
export function detectLevels(detect: PiiDetectConfig): Record<DetectedPii, PiiDetectLevel> {
  const o = typeof detect === 'string' ? { default: detect } : detect;
  const base = o.default ?? 'warn';
  const cardDefault: PiiDetectLevel = base === 'warn' ? 'error' : base;
  return {
    email: o.email ?? base,
    phone: o.phone ?? base,
    ssn: o.ssn ?? base,
    ip: o.ip ?? base,
    card: o.card ?? cardDefault,
  };
}

export async function privacyContext(project: LoadedProject): Promise<PrivacyContext> {
  const cfg = project.config.privacy;
  const opts = { baseDir: project.dir };
  const salt = cfg.salt ? resolveSecrets(cfg.salt, opts) : await projectSalt(project.dir);
  // The key (tokens) now; the roles' public keys when a tokenize mask opens the vault. Never a private key.
  const vaultConfig = cfg.vault;
  const vaultKey = vaultConfig ? resolveSecrets(vaultConfig.key, opts) : undefined;
  let vault: TokenVault | undefined;
  let sealer: Promise<Sealer> | undefined;
  const tokenKey = vaultKey !== undefined ? TokenVault.deriveTokenKey(vaultKey) : undefined;
  return {
    mask: { salt, tokenKey },
    detect: detectLevels(cfg.detect),
    fingerprint: createHash('sha256')
      .update(salt)
      .update(tokenKey ?? '')
      .digest('hex'),
    async openVault() {
      if (!vaultConfig) return undefined;
      vault ??= await TokenVault.open(
        { path: vaultConfig.path, key: vaultKey, recipients: vaultRecipients(vaultConfig, project.dir) },
        project.dir,
      );
      return vault;
    },
    async sealer() {
      sealer ??= cfg.quarantine_key
        ? Promise.resolve(sealerFromSecret(resolveSecrets(cfg.quarantine_key, opts)))
        : projectSecretFile(project.dir, QUARANTINE_KEY_FILE).then(sealerFromSecret);
      return sealer;
    },
    referenceFile(path: string) {
      const abs = lit(resolve(project.dir, path));
      switch (extname(path).toLowerCase()) {
        case '.csv':
        case '.tsv':
          return `read_csv(${abs}, header = true)`;
        case '.json':
        case '.ndjson':
        case '.jsonl':
          return `read_json_auto(${abs})`;
        case '.parquet':
          return `read_parquet(${abs})`;
        default:
          throw new ConfigError(`reference file ${path}: expected a .csv, .tsv, .json, .ndjson or .parquet file`);
      }
    },
  };
}
