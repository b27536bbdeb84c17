#!/usr/bin/env node
/**
 * Runs the test suite: every `test/**\/*.test.ts` (recursive, sorted), one file at a time, with
 * `node --import tsx --test`.
 *
 *   node scripts/run-tests.mjs                   # all tests
 *   node scripts/run-tests.mjs catalog sources   # files whose path contains "catalog" or "sources"
 *   node scripts/run-tests.mjs --test-name-pattern=expire catalog   # --flags go to node
 *
 * Uses the spec reporter on a terminal and node's default reporter otherwise; exits with the
 * test runner's exit code.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'test');

/** @param {string} dir @returns {string[]} */
function findTests(dir) {
  /** @type {string[]} */
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === 'ENOENT') return out;
    throw err;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(full));
    else if (entry.isFile() && entry.name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

const args = process.argv.slice(2);
const nodeFlags = args.filter((a) => a.startsWith('-'));
const filters = args.filter((a) => !a.startsWith('-'));

const all = findTests(testDir)
  .map((f) => relative(root, f).split(sep).join('/'))
  .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const files = filters.length ? all.filter((f) => filters.some((s) => f.includes(s))) : all;

if (files.length === 0) {
  console.error(
    filters.length
      ? `run-tests: no test file under test/ matches ${filters.map((f) => JSON.stringify(f)).join(' or ')}`
      : 'run-tests: no test files found (test/**/*.test.ts)',
  );
  process.exit(1);
}

const nodeArgs = ['--import', 'tsx', '--test', '--test-concurrency=1'];
if (process.stdout.isTTY) nodeArgs.push('--test-reporter=spec');
nodeArgs.push(...nodeFlags, ...files);

const child = spawn(process.execPath, nodeArgs, { cwd: root, stdio: 'inherit' });

// Ctrl-C reaches the child through the terminal's process group; just don't die before it.
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(signal, () => child.kill(signal));
}

child.on('error', (err) => {
  console.error(`run-tests: could not start node: ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
