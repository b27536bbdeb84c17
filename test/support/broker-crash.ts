/**
 * The broker crash scenario shared by the Kafka and JetStream source tests: `dip run --follow`
 * is SIGKILLed `kills` times at random moments (once it has committed something), restarted,
 * then a plain `dip run` lands the rest.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { CLI, runCli, type TestProject } from './project.js';
import { sleep } from './service.js';

export async function followWithKills(
  p: TestProject,
  kills: number,
  landed: () => Promise<number>,
): Promise<{ kills: number; landedAtKills: number[]; catchUp: { code: number | null; stderr: string } }> {
  const landedAtKills: number[] = [];
  for (let i = 0; i < kills; i++) {
    const child: ChildProcess = spawn(process.execPath, [CLI, 'run', '--follow'], {
      cwd: p.dir,
      env: { ...process.env, NO_COLOR: '1', DIP_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    const before = await landed();
    // Kill it at a random moment after it committed at least one more batch.
    const deadline = Date.now() + 120_000;
    while ((await landed()) <= before && Date.now() < deadline && child.exitCode === null) await sleep(100);
    await sleep(Math.random() * 1500);
    if (child.exitCode !== null) throw new Error(`dip run --follow exited (${child.exitCode}): ${err}`);
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    landedAtKills.push(await landed());
  }
  const catchUp = await runCli(['run'], p.dir, { DIP_LOG_LEVEL: 'warn' });
  return { kills, landedAtKills, catchUp };
}
