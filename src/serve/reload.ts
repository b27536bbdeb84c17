/**
 * Reloading the project file under `dip serve`: on a change to the file (a watch on its
 * directory, so editors that save by renaming are seen too) and on SIGHUP. The new file is
 * loaded and validated whole (schema, every pipeline's task graph, every schedule) before
 * anything changes; an invalid file is refused with an error in the log and the running
 * configuration stays. Settings the process opened its resources with (catalog, storage, engine,
 * serve) keep their running values until a restart, and the log says so when they changed. A
 * project file that is a module (dip.config.ts) is imported once per process: its changes need
 * a restart, which the log says.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { loadProject } from '../config/load.js';
import type { ProjectConfig } from '../config/schema.js';
import { pipelineDag } from '../config/task-graph.js';
import { errorMessage } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { scheduleSpec } from '../orchestrate/orchestrator.js';
import type { Runtime } from '../orchestrate/runtime.js';
import { ticksOf } from '../orchestrate/schedule.js';
import type { ServeLog } from './scheduler.js';

/** Settings a running process keeps until it restarts: it opened its catalog, storage, engine and listener with them. */
const RESTART_ONLY = ['catalog', 'storage', 'engine', 'serve'] as const;
const DEBOUNCE_MS = 200;
/** Project files that are modules (dip.config.ts …), as `loadProject` tells them. */
const CODE_FILE = /\.(ts|mts|mjs|js)$/;

export interface ReloadResult {
  /** The new configuration is in use. */
  reloaded: boolean;
  /** Nothing changed in the file since the last load. */
  unchanged?: boolean;
  added: string[];
  removed: string[];
  changed: string[];
  /** Why the file was refused (the running configuration stays). */
  error?: string;
  /** Restart-only settings that changed in the file and were not applied. */
  needsRestart: string[];
}

/** Loads the project file, validates it and swaps it in; watches the file when asked. */
export class ProjectReloader {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReloadResult> | undefined;
  private again = false;
  private digest: string | undefined;

  constructor(
    private readonly lake: Lake,
    private readonly runtime: Runtime,
    private readonly log: ServeLog,
  ) {}

  /** Remembers the file as loaded at start (a first change event of the same text reloads nothing). */
  async start(options: { watch: boolean }): Promise<void> {
    this.digest = await this.fileDigest().catch(() => undefined);
    if (!options.watch) return;
    const file = this.lake.project.file;
    const name = basename(file);
    try {
      this.watcher = watch(dirname(file), (_event, changed) => {
        if (changed !== null && changed.toString() !== name) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.reload('file changed'), DEBOUNCE_MS);
      });
      this.watcher.on('error', (err) =>
        this.log('warn', `dip serve: stopped watching ${file} (${errorMessage(err)}); send SIGHUP to reload it`),
      );
    } catch (err) {
      this.log('warn', `dip serve: cannot watch ${file} (${errorMessage(err)}); send SIGHUP to reload it`);
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Reloads now (one at a time: a request during a reload runs once more after it). */
  reload(reason: string): Promise<ReloadResult> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = this.reloadOnce(reason).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        void this.reload(reason);
      }
    });
    this.running = run;
    return run;
  }

  private async reloadOnce(reason: string): Promise<ReloadResult> {
    const project = this.lake.project;
    const file = project.file;
    const none = { added: [], removed: [], changed: [], needsRestart: [] };
    let digest: string;
    let next: ProjectConfig;
    try {
      digest = await this.fileDigest();
      if (digest === this.digest) return { reloaded: false, unchanged: true, ...none };
      if (CODE_FILE.test(file)) {
        // A module imported once stays cached in this process: its new text is not seen here.
        this.digest = digest;
        const error = `${file} is a code project file: a changed module cannot be loaded again in this process; restart dip serve to apply it`;
        this.log('warn', `dip serve: ${error}`, { file });
        return { reloaded: false, error, ...none };
      }
      next = (await loadProject(file)).config;
      validate(next);
    } catch (err) {
      const error = errorMessage(err);
      this.log(
        'error',
        `dip serve: ${file} was not reloaded (${reason}): ${error}. Still running the configuration loaded before; fix the file to reload`,
        { file },
      );
      return { reloaded: false, error, ...none };
    }
    this.digest = digest;
    const before = project.config;
    const needsRestart = RESTART_ONLY.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(next[k]));
    const applied: ProjectConfig = { ...next };
    for (const key of needsRestart) Object.assign(applied, { [key]: before[key] });
    const names = (c: ProjectConfig) => Object.keys(c.pipelines);
    const added = names(applied).filter((n) => !Object.hasOwn(before.pipelines, n));
    const removed = names(before).filter((n) => !Object.hasOwn(applied.pipelines, n));
    const changed = names(applied).filter(
      (n) =>
        Object.hasOwn(before.pipelines, n) &&
        JSON.stringify(before.pipelines[n]) !== JSON.stringify(applied.pipelines[n]),
    );
    project.config = applied;
    this.runtime.orchestrator.configChanged();
    this.runtime.alerter.reconfigure(applied.alerts);
    this.log('info', `dip serve: reloaded ${file} (${reason})`, { added, removed, changed });
    if (needsRestart.length)
      this.log(
        'warn',
        `dip serve: ${needsRestart.join(', ')} changed in ${file}; these settings take effect only when dip serve restarts`,
      );
    return { reloaded: true, added, removed, changed, needsRestart };
  }

  private async fileDigest(): Promise<string> {
    return createHash('sha256')
      .update(await readFile(this.lake.project.file))
      .digest('hex');
  }
}

/** What a reload must pass besides the schema: every task graph (cycles, unknown pools) and every schedule. */
function validate(config: ProjectConfig): void {
  for (const [name, p] of Object.entries(config.pipelines)) {
    pipelineDag(config, name);
    if (p.schedule) {
      try {
        ticksOf(scheduleSpec(p.schedule)).next(new Date());
      } catch (err) {
        throw new Error(`pipelines.${name}.schedule: ${errorMessage(err)}`);
      }
    }
  }
}
