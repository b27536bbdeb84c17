/**
 * Loads a project from dip.yaml (or dip.config.ts/.mjs/.js). Validation errors point at the
 * file, line and column of the offending key or value.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, errorMessage } from '../core/errors.js';
import { projectIssues } from './checks.js';
import { loadModelSql } from './gold.js';
import { configIssuesError, dottedPath, validateConfig, type ConfigIssue, type Locator } from './issues.js';
import { currentProjectSchema, type ProjectConfig } from './schema.js';

export interface LoadedProject {
  /** Absolute path of the project file. */
  file: string;
  /** Absolute project directory; relative paths in the config resolve against it. */
  dir: string;
  config: ProjectConfig;
}

/** Searched in this order in each directory. */
export const PROJECT_FILE_NAMES = ['dip.yaml', 'dip.yml', 'dip.config.ts', 'dip.config.mjs', 'dip.config.js'] as const;

const CODE_FILE = /\.(ts|mts|mjs|js)$/;

/** The nearest project file in `startDir` or one of its parents. */
export function findProjectFile(startDir: string): string | undefined {
  let dir = path.resolve(startDir);
  for (;;) {
    const found = projectFileIn(dir);
    if (found) return found;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Loads and validates a project file; `file` may also be a directory holding one. */
export async function loadProject(file: string): Promise<LoadedProject> {
  let abs = path.resolve(file);
  const info = await stat(abs).catch(() => undefined);
  if (info?.isDirectory()) {
    const found = projectFileIn(abs);
    if (!found) throw missingProjectError(path.join(abs, 'dip.yaml'));
    abs = found;
  } else if (!info) {
    throw missingProjectError(abs);
  }
  const config = CODE_FILE.test(abs)
    ? await importProject(abs)
    : parseProject(await readText(abs), displayPath(abs), path.dirname(abs));
  return { file: abs, dir: path.dirname(abs), config };
}

/** Parses and validates dip.yaml text; `file` is only used in messages. */
export function parseProject(text: string, file: string, dir = path.dirname(path.resolve(file))): ProjectConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((err): ConfigIssue => {
      const pos = lineCounter.linePos(err.pos[0]);
      return { path: '', line: pos.line, column: pos.col, message: err.message };
    });
    throw configIssuesError(`Cannot parse ${file}: invalid YAML`, file, issues);
  }
  let data: unknown;
  try {
    // An empty file (or only comments) is an empty mapping, so the error names what is missing.
    data = doc.contents === null ? {} : doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigError(`Cannot parse ${file}: ${errorMessage(err)}`, { cause: err, details: { file } });
  }
  const locate = yamlLocator(doc, lineCounter);
  return checkProject(
    validateConfig(currentProjectSchema(), data, `Invalid project file ${file}`, file, locate),
    `Invalid project file ${file}`,
    file,
    locate,
    dir,
  );
}

/** The checks across the project (config/checks.ts), as located issues like the schema's. */
function checkProject(
  config: ProjectConfig,
  title: string,
  file: string,
  locate?: Locator,
  dir?: string,
): ProjectConfig {
  // Gold SQL models' .sql files are read now: the task graph derives their inputs from the SQL.
  if (dir !== undefined) loadModelSql(config.pipelines, dir);
  const issues = projectIssues(config, locate, file);
  if (issues.length === 0) return config;
  throw configIssuesError(
    title,
    file,
    issues.map((i): ConfigIssue => {
      const pos = locate?.(i.path, i.target);
      return pos
        ? { path: dottedPath(i.path), line: pos.line, column: pos.column, message: i.message }
        : { path: dottedPath(i.path), message: i.message };
    }),
  );
}

function projectFileIn(dir: string): string | undefined {
  for (const name of PROJECT_FILE_NAMES) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

function missingProjectError(abs: string): ConfigError {
  return new ConfigError(
    `Project file not found: ${abs}\n  Run \`dip init\` to create a dip.yaml here, or point to an existing project file.`,
    { details: { file: abs } },
  );
}

async function readText(abs: string): Promise<string> {
  try {
    return await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    throw new ConfigError(`Cannot read project file ${abs}: ${code}`, { cause: err, details: { file: abs } });
  }
}

async function importProject(abs: string): Promise<ProjectConfig> {
  const shown = displayPath(abs);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
  } catch (err) {
    const hint =
      (err as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION'
        ? 'this Node.js cannot import TypeScript directly; run with `node --import tsx` or rename it to dip.config.mjs'
        : errorMessage(err);
    throw new ConfigError(`Cannot load project file ${shown}: ${hint}`, { cause: err, details: { file: abs } });
  }
  if (mod.default === undefined) {
    throw new ConfigError(`${shown} has no default export; expected \`export default defineProject({ ... })\``, {
      details: { file: abs },
    });
  }
  return checkProject(
    validateConfig(currentProjectSchema(), mod.default, `Invalid project exported by ${shown}`, shown),
    `Invalid project exported by ${shown}`,
    shown,
    undefined,
    path.dirname(abs),
  );
}

/** Relative to the working directory when inside it: shorter, and still clickable in terminals. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}

/**
 * Maps a config path to a position. Scalars point at the value; mappings, lists and empty values
 * at their key. A path that runs past the document (a missing key) points at its deepest existing parent.
 */
function yamlLocator(doc: Document, lineCounter: LineCounter): Locator {
  const at = (node: unknown): { line: number; column: number } | undefined => {
    const offset = (node as { range?: [number, number, number] } | null)?.range?.[0];
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  return (segments, target) => {
    let node: unknown = doc.contents;
    let pos = at(node) ?? { line: 1, column: 1 };
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const last = i === segments.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return pos;
        const keyPos = at(pair.key) ?? pos;
        const scalarValue = isScalar(pair.value) && pair.value.value !== null;
        if (last && target === 'key') return keyPos;
        node = pair.value;
        pos = scalarValue ? (at(node) ?? keyPos) : keyPos;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        if (node === undefined) return pos;
        pos = at(node) ?? pos;
      } else {
        return pos;
      }
    }
    return pos;
  };
}
