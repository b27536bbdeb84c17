import { statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import type { LoadedProject } from '../../config/load.js';
import type { VaultConfig } from '../../config/silver.js';
import { ConfigError, DipError, EXIT_CODES } from '../../core/errors.js';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../../core/private-files.js';
import {
  generateRoleKeyPair,
  loadPrivateKey,
  runnerVaultOptions,
  TokenVault,
  vaultRecipients,
  type RoleKey,
} from '../../transform/vault.js';
import { loadFromOptions, type GlobalOptions } from '../context.js';
import { printJson } from '../output.js';

/** Environment variable that may hold a role's private key (PEM text or a file path) when --private-key is not given. */
export const ROLE_PRIVATE_KEY_ENV = 'DIP_ROLE_PRIVATE_KEY';

const collect = (value: string, previous: string[]) => [...previous, value];
const PRIVATE_KEY_HELP = `a role's private key: a file path, \${file:…} or \${env:…} (repeatable, e.g. old and new key while rotating); default: $${ROLE_PRIVATE_KEY_ENV}, then privacy.vault.roles.<--role>.private_key`;

async function vaultProject(global: GlobalOptions): Promise<{ project: LoadedProject; config: VaultConfig }> {
  const project = await loadFromOptions(global);
  const config = project.config.privacy.vault;
  if (!config) throw new ConfigError(`no token vault configured: add privacy.vault (key, roles) to ${project.file}`);
  return { project, config };
}

/** The private keys given by option, environment or the role's private_key setting, in that order. */
function privateKeys(
  project: LoadedProject,
  config: VaultConfig,
  opts: { privateKey: string[]; role?: string },
): RoleKey[] {
  if (opts.privateKey.length)
    return opts.privateKey.map((k, i) => loadPrivateKey(k, process.cwd(), `--private-key #${i + 1}`));
  const env = process.env[ROLE_PRIVATE_KEY_ENV];
  if (env) return [loadPrivateKey(env, process.cwd(), ROLE_PRIVATE_KEY_ENV)];
  const role = opts.role;
  if (role) {
    const setting = Object.hasOwn(config.roles, role) ? config.roles[role]?.private_key : undefined;
    if (setting) return [loadPrivateKey(setting, project.dir, `privacy.vault.roles.${role}.private_key`)];
  }
  const where = role
    ? `, or set privacy.vault.roles.${role}.private_key: \${file:…}`
    : ' (or --role with privacy.vault.roles.<role>.private_key)';
  throw new ConfigError(`no private key given: pass --private-key <file> or set ${ROLE_PRIVATE_KEY_ENV}${where}`);
}

/**
 * `dip vault …`: the token vault of tokenize masks.
 * - `detokenize <token...>`: clear values, for the holder of a role's private key. Prints
 *   `token<TAB>value` lines (tabs, newlines and backslashes escaped as \t, \n, \r, \\), or with
 *   --json a list of {token, found, value}; tokens not in the vault exit with the not_found code.
 * - `keygen --role r`: a role's X25519 key pair (private 0600) and what to put in dip.yaml.
 * - `rewrap`: after a role's public key changed (or a role was added), makes the entries the
 *   given private key opens readable by every role's current key and drops the old wraps.
 * - `migrate`: re-encrypts legacy entries (readable with privacy.vault.key alone) for the roles.
 */
export function registerVaultCommands(program: Command): void {
  const vault = program.command('vault').description('the token vault of tokenize masks (privacy.vault in dip.yaml)');
  vault
    .command('detokenize')
    .description('show the clear values of tokens; needs the private key of a role the values are encrypted for')
    .argument('<token...>', 'tokens as they appear in silver tables (tok_…)')
    .option('--role <role>', 'role whose privacy.vault.roles.<role>.private_key to use when no --private-key is given')
    .option('--private-key <key>', PRIVATE_KEY_HELP, collect, [])
    .action(async (tokens: string[], opts: { role?: string; privateKey: string[] }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { project, config } = await vaultProject(global);
      const keys = privateKeys(project, config, opts);
      // Detokenizing needs neither privacy.vault.key nor the public keys: only the file and a private key.
      const store = await TokenVault.open({ path: config.path }, project.dir);
      let values: Map<string, string | undefined>;
      try {
        values = store.detokenize(tokens, keys);
      } finally {
        store.close();
      }
      const missing = tokens.filter((t) => values.get(t) === undefined);
      if (global.json) {
        printJson(
          tokens.map((token) => ({ token, found: values.get(token) !== undefined, value: values.get(token) ?? null })),
        );
        if (missing.length) process.exitCode = EXIT_CODES.not_found;
        return;
      }
      const lines = tokens.flatMap((t) => {
        const v = values.get(t);
        return v === undefined ? [] : [`${t}\t${escapeField(v)}\n`];
      });
      process.stdout.write(lines.join(''));
      if (missing.length) {
        throw new DipError(
          'not_found',
          `${missing.length} of ${tokens.length} token(s) not in the vault ${store.path}: ${missing.join(', ')}`,
        );
      }
    });

  vault
    .command('keygen')
    .description(
      "write a role's key pair: <role>.key (private, 0600: keep it off the pipeline runners) and <role>.pub (for dip.yaml)",
    )
    .requiredOption('--role <role>', 'role name, as under privacy.vault.roles')
    .option('--out <dir>', 'directory to write the two files to', '.')
    .action(async (opts: { role: string; out: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.role))
        throw new ConfigError(
          `--role ${JSON.stringify(opts.role)}: expected a name of letters, digits and _ (as under privacy.vault.roles)`,
        );
      const dir = resolve(opts.out);
      await mkdirPrivate(dir);
      const pair = generateRoleKeyPair();
      const privateFile = resolve(dir, `${opts.role}.key`);
      const publicFile = resolve(dir, `${opts.role}.pub`);
      const write = async (file: string, text: string) => {
        await writeFile(file, text, { flag: 'wx', mode: PRIVATE_FILE_MODE }).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EEXIST')
            throw new ConfigError(
              `${file} already exists; not overwriting a key (to rotate, write the new pair elsewhere with --out)`,
            );
          throw err;
        });
      };
      await write(privateFile, pair.privatePem);
      await write(publicFile, pair.publicPem);
      const projectDir = global.project
        ? statSync(resolve(global.project), { throwIfNoEntry: false })?.isDirectory()
          ? resolve(global.project)
          : dirname(resolve(global.project))
        : process.cwd();
      const rel = relative(projectDir, publicFile);
      const shown = rel && !rel.startsWith('..') && !rel.startsWith(sep) ? rel : publicFile;
      if (global.json)
        return printJson({ role: opts.role, key_id: pair.keyId, private_key: privateFile, public_key: publicFile });
      process.stdout.write(
        `wrote ${privateFile} (private key, 0600): give it only to who may detokenize; pipeline runners must not have it\n` +
          `wrote ${publicFile} (public key ${pair.keyId})\n\n` +
          `add to dip.yaml:\n  privacy:\n    vault:\n      roles:\n        ${opts.role}: { public_key: ${shown} }\n\n` +
          `detokenize with: dip vault detokenize <token…> --private-key ${privateFile}\n` +
          `rotating a role's key: put the new public_key in dip.yaml (new values use it), then \`dip vault rewrap --private-key <old .key>\`\n`,
      );
    });

  vault
    .command('rewrap')
    .description(
      "make the entries the given private key opens readable by every role's current public key, and drop the roles' old-key wraps (key rotation, new roles)",
    )
    .option('--role <role>', 'role whose privacy.vault.roles.<role>.private_key to use when no --private-key is given')
    .option('--private-key <key>', PRIVATE_KEY_HELP, collect, [])
    .action(async (opts: { role?: string; privateKey: string[] }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { project, config } = await vaultProject(global);
      const keys = privateKeys(project, config, opts);
      const store = await TokenVault.open(
        { path: config.path, recipients: vaultRecipients(config, project.dir) },
        project.dir,
      );
      try {
        const r = store.rewrap(keys);
        if (global.json) return printJson(r);
        process.stdout.write(
          `rewrapped ${r.dataKeys} data key(s): ${r.added} wrap(s) added for the roles' current keys, ${r.removed} old-key wrap(s) removed` +
            (r.unopened ? `; ${r.unopened} data key(s) not opened by the given key(s) were left as they were` : '') +
            '\n',
        );
      } finally {
        store.close();
      }
    });

  vault
    .command('migrate')
    .description("re-encrypt legacy entries (readable with privacy.vault.key alone) for the roles' public keys")
    .action(async (_opts: unknown, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const { project, config } = await vaultProject(global);
      const store = await TokenVault.open(runnerVaultOptions(config, project.dir), project.dir);
      try {
        const migrated = store.migrateLegacy();
        if (global.json) return printJson({ migrated });
        process.stdout.write(`migrated ${migrated} legacy entr${migrated === 1 ? 'y' : 'ies'} of ${store.path}\n`);
      } finally {
        store.close();
      }
    });
}

function escapeField(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}
