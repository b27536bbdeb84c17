import type { Command } from 'commander';

/**
 * Command groups, in help order: the top-level command names each registers and the module that
 * registers them. Only the group named on the command line is imported (every group for --help,
 * `help`, no command or an unknown one; none for --version), so start-up does not pay for
 * modules (DuckDB, drivers, Fastify, …) the command never uses. A test checks that the names
 * match what the modules register.
 */
export interface CommandGroup {
  /** The top-level commands the module registers, in the order it registers them. */
  names: readonly string[];
  load: () => Promise<(program: Command) => void>;
}

export const COMMAND_GROUPS: readonly CommandGroup[] = [
  { names: ['init'], load: async () => (await import('./commands/init.js')).registerInit },
  { names: ['run'], load: async () => (await import('./commands/run.js')).registerRun },
  {
    names: ['trigger', 'backfill', 'runs'],
    load: async () => (await import('./commands/orchestrate.js')).registerOrchestration,
  },
  {
    names: ['transform', 'quality', 'quarantine'],
    load: async () => (await import('./commands/silver.js')).registerSilver,
  },
  { names: ['build'], load: async () => (await import('./commands/build.js')).registerBuild },
  { names: ['vault'], load: async () => (await import('./commands/vault.js')).registerVaultCommands },
  { names: ['status'], load: async () => (await import('./commands/status.js')).registerStatus },
  { names: ['state'], load: async () => (await import('./commands/state.js')).registerState },
  { names: ['tables', 'describe'], load: async () => (await import('./commands/tables.js')).registerTables },
  { names: ['load'], load: async () => (await import('./commands/load.js')).registerLoad },
  { names: ['query'], load: async () => (await import('./commands/query.js')).registerQuery },
  { names: ['replay'], load: async () => (await import('./commands/replay.js')).registerReplay },
  {
    names: ['gc', 'compact', 'rollback'],
    load: async () => (await import('./commands/maintain.js')).registerMaintenance,
  },
  { names: ['demo'], load: async () => (await import('./commands/demo.js')).registerDemo },
  { names: ['emulate'], load: async () => (await import('./commands/emulate.js')).registerEmulate },
  { names: ['worker'], load: async () => (await import('./commands/worker.js')).registerWorker },
  { names: ['serve'], load: async () => (await import('./commands/serve.js')).registerServe },
  { names: ['gateway'], load: async () => (await import('./commands/gateway.js')).registerGateway },
  { names: ['reconcile'], load: async () => (await import('./commands/reconcile.js')).registerReconcile },
];

/** The groups a command line needs: the one its command is in, none for a bare --version, else all. */
export function groupsFor(args: readonly string[]): readonly CommandGroup[] {
  let version = false;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') break;
    if (arg === '-p' || arg === '--project') {
      i++; // its value
      continue;
    }
    if (arg === '-V' || arg === '--version') version = true;
    if (arg === '-h' || arg === '--help') help = true;
    if (arg.startsWith('-')) continue;
    const group = COMMAND_GROUPS.find((g) => g.names.includes(arg));
    return group ? [group] : COMMAND_GROUPS;
  }
  return version && !help ? [] : COMMAND_GROUPS;
}
