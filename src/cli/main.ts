#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { secretRegistry } from '../config/secrets.js';
import { DipError, classifyDiskFull, describeCause, errorMessage } from '../core/errors.js';
import { groupsFor } from './command-groups.js';

// `dip … | head`: the reader went away; stop quietly instead of crashing on EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command('dip')
  .description('DIP — data ingestion platform: sources → raw → bronze → silver with atomic commits')
  .version('0.1.0')
  .option('-p, --project <path>', 'project file or directory (default: the nearest dip.yaml)')
  .option('--json', 'machine-readable output')
  .showHelpAfterError()
  .exitOverride();

// Only the command modules this command line needs are imported (src/cli/command-groups.ts).
for (const register of await Promise.all(groupsFor(process.argv.slice(2)).map((g) => g.load()))) register(program);

try {
  await program.parseAsync(process.argv);
} catch (caught) {
  const err = classifyDiskFull(caught); // a full disk is transient (exit 75), not an internal error
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 64;
  } else {
    const message = secretRegistry.redact(errorMessage(err));
    const cause = describeCause(err);
    if (program.opts<{ json?: boolean }>().json) {
      process.stdout.write(
        `${JSON.stringify({ error: { kind: err instanceof DipError ? err.kind : 'internal', message, cause } })}\n`,
      );
    } else {
      process.stderr.write(
        `dip: ${message}\n${cause && !message.includes(cause) ? `  cause: ${secretRegistry.redact(cause)}\n` : ''}`,
      );
      if (!(err instanceof DipError) && process.env['DIP_DEBUG'])
        process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    }
    process.exitCode = err instanceof DipError ? err.exitCode : 1;
  }
}
