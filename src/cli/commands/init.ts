import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import type { GlobalOptions } from '../context.js';
import { printJson } from '../output.js';
import { scaffoldProject } from '../scaffold.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('scaffold a working project: dip.yaml and sample data')
    .argument('[dir]', 'project directory', '.')
    .action(async (dir: string, _opts: unknown, cmd: Command) => {
      const abs = resolve(dir);
      if (existsSync(resolve(abs, 'dip.yaml')))
        throw new ConfigError(`${resolve(abs, 'dip.yaml')} already exists; not overwriting it`);
      const files = await scaffoldProject(abs);
      if (cmd.optsWithGlobals<GlobalOptions>().json) return printJson({ project: abs, files });
      process.stdout.write(
        `created a DIP project in ${abs}:\n${files.map((f) => `  ${f}`).join('\n')}\n\nnext:\n  cd ${dir}\n  dip run\n  dip query "select status, count(*), sum(quantity * unit_price) from bronze.orders group by all"\n`,
      );
    });
}
