// Container health check (the Dockerfile's HEALTHCHECK). `dip serve` is healthy when GET /health
// answers 200 on its port; any other dip command (a worker) when `dip status` reaches its catalog.
// The command is read from PID 1's command line (the container's dip process).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLI = '/app/dist/cli/main.js';
const args = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
if (args.includes('serve')) {
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : Number(process.env.DIP_SERVE_PORT ?? 8420);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5000) });
    process.exit(res.ok ? 0 : 1);
  } catch {
    process.exit(1);
  }
} else {
  const r = spawnSync(process.execPath, [CLI, '-p', '/project', 'status', '--json', '--runs', '1'], {
    stdio: 'ignore',
    timeout: 8000,
  });
  process.exit(r.status === 0 ? 0 : 1);
}
