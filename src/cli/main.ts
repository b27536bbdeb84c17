#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { secretRegistry } from '../config/secrets.js';
import { DipError, classifyDiskFull, describeCause, errorMessage } from '../core/errors.js';
import { registerDemo } from './commands/demo.js';
import { registerEmulate } from './commands/emulate.js';
import { registerInit } from './commands/init.js';
import { registerMaintenance } from './commands/maintain.js';
import { registerQuery } from './commands/query.js';
import { registerReplay } from './commands/replay.js';
import { registerOrchestration } from './commands/orchestrate.js';
import { registerRun } from './commands/run.js';
import { registerServe } from './commands/serve.js';
import { registerSilver } from './commands/silver.js';
import { registerVaultCommands } from './commands/vault.js';
import { registerState } from './commands/state.js';
import { registerStatus } from './commands/status.js';
import { registerTables } from './commands/tables.js';
import { registerWorker } from './commands/worker.js';

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

registerInit(program);
registerRun(program);
registerOrchestration(program);
registerSilver(program);
registerVaultCommands(program);
registerStatus(program);
registerState(program);
registerTables(program);
registerQuery(program);
registerReplay(program);
registerMaintenance(program);
registerDemo(program);
registerEmulate(program);
registerWorker(program);
registerServe(program);

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
      process.stdout.write(`${JSON.stringify({ error: { kind: err instanceof DipError ? err.kind : 'internal', message, cause } })}\n`);
    } else {
      process.stderr.write(`dip: ${message}\n${cause && !message.includes(cause) ? `  cause: ${secretRegistry.redact(cause)}\n` : ''}`);
      if (!(err instanceof DipError) && process.env['DIP_DEBUG']) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
    }
    process.exitCode = err instanceof DipError ? err.exitCode : 1;
  }
}
