/**
 * `dip gateway`: serves the endpoints of the project's `type: gateway` sources and appends what
 * they accept to the sources' event logs (`dip run --follow` lands them). SIGINT/SIGTERM: new
 * requests get 503, in-flight ones finish, the logs close (exit 0).
 */
import type { Command } from 'commander';
import { DipError } from '../../core/errors.js';
import { loadFromOptions, type GlobalOptions } from '../context.js';
import { wholeNumber } from '../options.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description(
      'receive pushed events (webhooks, app events) on the endpoints of the gateway sources; 2xx once on disk in the event log',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 picks a free one)', '8430')
    .action(async (opts: { host: string; port: string }, cmd: Command) => {
      const global = cmd.optsWithGlobals<GlobalOptions>();
      const project = await loadFromOptions(global);
      const port = wholeNumber(opts.port, '--port');
      if (port > 65535) throw new DipError('input', `--port ${port}: expected 0 to 65535`);
      const { startGateway } = await import('../../gateway/server.js');
      const server = await startGateway(project, { host: opts.host, port });
      if (!server.gateway.endpoints.length) {
        await server.close();
        throw new DipError(
          'config',
          'no gateway endpoints: declare a source of type gateway with endpoints in dip.yaml',
        );
      }
      const endpoints = server.gateway.endpoints.map((e) => ({
        pipeline: e.pipeline,
        source: e.source,
        endpoint: e.name,
        path: e.path,
      }));
      if (global.json) process.stdout.write(`${JSON.stringify({ url: server.url, endpoints })}\n`);
      else
        process.stdout.write(
          `dip gateway: listening on ${server.url}\n${endpoints.map((e) => `  POST ${e.path}  → ${e.pipeline}.${e.source}.${e.endpoint}`).join('\n')}\n`,
        );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });
}
