import type { Command } from 'commander';
import { secretRegistry } from '../../config/secrets.js';
import { ConfigError, DipError, EXIT_CODES } from '../../core/errors.js';
import { resolveVaultConfig, TokenVault } from '../../transform/vault.js';
import { loadFromOptions, type GlobalOptions } from '../context.js';
import { printJson } from '../output.js';

/** Environment variable holding the secret of the role given with --role (never an argument: argv is visible to other users). */
export const ROLE_SECRET_ENV = 'DIP_ROLE_SECRET';

/**
 * `dip vault detokenize <token...> --role <role>`: the clear values behind tokens of the
 * tokenize mask, for a role of privacy.vault.roles proving its secret through DIP_ROLE_SECRET.
 * Prints `token<TAB>value` lines (tabs, newlines and backslashes in values escaped as \t, \n,
 * \r, \\), or with --json a list of {token, found, value}. Tokens not in the vault make the
 * command exit with the not_found code after printing the others.
 */
export function registerVaultCommands(program: Command): void {
  const vault = program.command('vault').description('the token vault of tokenize masks (privacy.vault in dip.yaml)');
  vault
    .command('detokenize')
    .description(`show the clear values of tokens; needs a role of privacy.vault.roles (--role) and its secret in ${ROLE_SECRET_ENV}`)
    .argument('<token...>', 'tokens as they appear in silver tables (tok_…)')
    .option('--role <role>', `role allowed to detokenize (its secret is read from ${ROLE_SECRET_ENV})`)
    .action(async (tokens: string[], opts: { role?: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const project = await loadFromOptions(global);
      const config = project.config.privacy.vault;
      if (!config) throw new ConfigError(`no token vault configured: add privacy.vault (key, roles) to ${project.file}`);
      const secret = process.env[ROLE_SECRET_ENV] || undefined;
      if (secret) secretRegistry.add(secret);
      const role = opts.role || undefined;
      const resolved = resolveVaultConfig(config, project.dir, { roles: role ? [role] : [] });
      const store = await TokenVault.open(resolved, project.dir);
      let values: Map<string, string | undefined>;
      try {
        values = store.detokenize(tokens, { role, secret });
      } finally {
        store.close();
      }
      const missing = tokens.filter((t) => values.get(t) === undefined);
      if (global.json) {
        printJson(tokens.map((token) => ({ token, found: values.get(token) !== undefined, value: values.get(token) ?? null })));
        if (missing.length) process.exitCode = EXIT_CODES.not_found;
        return;
      }
      const lines = tokens.flatMap((t) => {
        const v = values.get(t);
        return v === undefined ? [] : [`${t}\t${escapeField(v)}\n`];
      });
      process.stdout.write(lines.join(''));
      if (missing.length) {
        throw new DipError('not_found', `${missing.length} of ${tokens.length} token(s) not in the vault ${resolved.path}: ${missing.join(', ')}`);
      }
    });
}

function escapeField(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}
