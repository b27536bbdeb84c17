import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../src/core/errors.js';
import {
  defineProject,
  definePipeline,
  defineSource,
  findProjectFile,
  hasSecretRef,
  loadProject,
  parseProject,
  redact,
  resolveSecrets,
  SecretRegistry,
  type ConfigIssue,
} from '../src/config/index.js';
import { buildJsonSchema, SCHEMA_FILE } from '../scripts/write-json-schema.js';

const root = mkdtempSync(path.join(tmpdir(), 'dip-config-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
/** A fresh directory holding the given files. */
function project(files: Record<string, string>): string {
  const dir = path.join(root, `p${n++}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

async function configErrorAsync(fn: () => Promise<unknown>): Promise<ConfigError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

const MINIMAL = `pipelines:
  shop:
    sources:
      files:
        type: files
        streams:
          orders:
            path: data/orders.csv
`;

describe('parseProject', () => {
  it('applies defaults to a minimal file', () => {
    assert.deepEqual(parseProject(MINIMAL, 'dip.yaml'), {
      version: 1,
      project: 'dip',
      storage: { kind: 'local', path: '.dip/lake' },
      catalog: { kind: 'sqlite', path: '.dip/catalog.db' },
      engine: { memory_limit: '1GB' },
      privacy: { detect: 'warn' },
      pools: {},
      serve: { host: '127.0.0.1', port: 8420, tick: '5s', concurrency: 4, executor: 'in-process' },
      pipelines: {
        shop: {
          silver: {},
          triggers: [],
          max_active_runs: 1,
          max_parallel_tasks: 4,
          sla: {},
          tasks: {},
          sources: {
            files: {
              type: 'files',
              streams: {
                orders: { path: 'data/orders.csv', write_disposition: 'append', schema_contract: 'evolve' },
              },
            },
          },
        },
      },
    });
  });

  it('reports YAML syntax errors with file:line:column', () => {
    const err = configError(() => parseProject('project: shop\npipelines: x: y\n', 'bad.yaml'));
    assert.equal(
      err.message,
      'Cannot parse bad.yaml: invalid YAML (1 problem):\n  bad.yaml:2:12: Nested mappings are not allowed in compact mappings',
    );
    assert.deepEqual(err.details.issues, [
      { path: '', line: 2, column: 12, message: 'Nested mappings are not allowed in compact mappings' },
    ]);
  });

  it('reports duplicate keys as syntax errors', () => {
    const err = configError(() => parseProject('project: a\nproject: b\n', 'dup.yaml'));
    assert.ok(err.message.includes('dup.yaml:2:1: Map keys must be unique'), err.message);
  });

  it('names an unknown key, its line and the allowed keys', () => {
    const text = MINIMAL.replace(
      'path: data/orders.csv',
      'path: data/orders.csv\n            csv:\n              delimeter: ";"',
    );
    const err = configError(() => parseProject(text, 'dip.yaml'));
    assert.ok(
      err.message.includes(
        'dip.yaml:10:15: pipelines.shop.sources.files.streams.orders.csv.delimeter: unknown key "delimeter"; ' +
          'allowed keys here: delimiter, quote, escape, header, encoding, null_values, skip_rows, date_format, ' +
          'timestamp_format, columns (did you mean "delimiter"?)',
      ),
      err.message,
    );
  });

  it('names an unknown top-level key', () => {
    const err = configError(() => parseProject(`projekt: shop\n${MINIMAL}`, 'dip.yaml'));
    assert.ok(
      err.message.includes(
        'dip.yaml:1:1: projekt: unknown key "projekt"; allowed keys here: version, project, storage, catalog, engine, privacy, pools, alerts, serve, pipelines, coordination, tracing, destinations',
      ),
      err.message,
    );
  });

  it('names the path, value and expected values of a wrong enum', () => {
    const text = MINIMAL.replace(
      'path: data/orders.csv',
      'path: data/orders.csv\n            write_disposition: upsert',
    );
    const err = configError(() => parseProject(text, 'shop/dip.yaml'));
    assert.equal(
      err.message,
      'Invalid project file shop/dip.yaml (1 problem):\n' +
        '  shop/dip.yaml:9:32: pipelines.shop.sources.files.streams.orders.write_disposition: ' +
        'got "upsert", expected one of append, replace, merge',
    );
    assert.deepEqual(err.details.issues, [
      {
        path: 'pipelines.shop.sources.files.streams.orders.write_disposition',
        line: 9,
        column: 32,
        message: 'got "upsert", expected one of append, replace, merge',
      },
    ]);
  });

  it('reports every problem at once, in file order', () => {
    const text = [
      'version: 2',
      'catalog:',
      '  kind: postgres',
      'engine: {threads: many}',
      'pipelines:',
      '  shop:',
      '    sources:',
      '      files:',
      '        type: files',
      '        streams:',
      '          Bad-Name:',
      '            path: x.csv',
      '      api:',
      '        type: http',
      '  empty:',
      '',
    ].join('\n');
    const err = configError(() => parseProject(text, 'dip.yaml'));
    assert.equal(
      err.message,
      [
        'Invalid project file dip.yaml (6 problems):',
        '  dip.yaml:1:10: version: got 2, expected 1',
        '  dip.yaml:2:1: catalog.url: missing required key "url" (expected a string)',
        '  dip.yaml:4:19: engine.threads: got "many", expected a number',
        '  dip.yaml:11:11: pipelines.shop.sources.files.streams.Bad-Name: invalid name "Bad-Name": expected a lower-case identifier: letters, digits and _ (e.g. "orders_2024")',
        '  dip.yaml:14:15: pipelines.shop.sources.api.type: got "http", expected one of files, rest, postgres, mysql, gateway, kafka, jetstream',
        '  dip.yaml:15:3: pipelines.empty: got null (empty value), expected a mapping',
      ].join('\n'),
    );
    assert.equal((err.details.issues as ConfigIssue[]).length, 6);
  });

  it('says which types a union accepts and how long a list must be', () => {
    const text = MINIMAL.replace('path: data/orders.csv', 'path: 5\n          refunds:\n            path: []');
    const err = configError(() => parseProject(text, 'dip.yaml'));
    assert.ok(
      err.message.includes(
        'dip.yaml:8:19: pipelines.shop.sources.files.streams.orders.path: got 5, expected a string or a list',
      ),
      err.message,
    );
    assert.ok(
      err.message.includes(
        'dip.yaml:10:13: pipelines.shop.sources.files.streams.refunds.path: got an empty list, expected at least 1 item',
      ),
      err.message,
    );
  });

  it('says what is missing from an empty file', () => {
    const err = configError(() => parseProject('# nothing yet\n', 'dip.yaml'));
    assert.ok(
      err.message.includes('dip.yaml:1:1: pipelines: missing required key "pipelines" (expected a mapping)'),
      err.message,
    );
  });

  it('caps the listed problems', () => {
    const keys = Array.from({ length: 25 }, (_, i) => `extra_${i}: 1`).join('\n');
    const err = configError(() => parseProject(`${keys}\n${MINIMAL}`, 'dip.yaml'));
    assert.ok(err.message.startsWith('Invalid project file dip.yaml (25 problems):'), err.message);
    assert.ok(err.message.endsWith('\n  ... and 5 more'), err.message);
    assert.equal(err.message.split('\n').length, 22);
    assert.equal((err.details.issues as ConfigIssue[]).length, 25);
  });

  it('keeps secret references unresolved', () => {
    const text = `catalog:\n  kind: postgres\n  url: \${env:DIP_TEST_PG_URL}\n${MINIMAL}`;
    const config = parseProject(text, 'dip.yaml');
    assert.deepEqual(config.catalog, { kind: 'postgres', url: '${env:DIP_TEST_PG_URL}', schema: 'dip' });
  });
});

describe('loadProject', () => {
  it('loads a file with absolute file and dir', async () => {
    const dir = project({ 'dip.yaml': MINIMAL });
    const loaded = await loadProject(path.join(dir, 'dip.yaml'));
    assert.equal(loaded.file, path.join(dir, 'dip.yaml'));
    assert.equal(loaded.dir, dir);
    const files = loaded.config.pipelines.shop?.sources.files;
    assert.equal(files?.type === 'files' ? files.streams.orders?.write_disposition : undefined, 'append');
  });

  it('accepts the project directory', async () => {
    const dir = project({ 'dip.yml': MINIMAL });
    assert.equal((await loadProject(dir)).file, path.join(dir, 'dip.yml'));
  });

  it('names the file in validation errors', async () => {
    const dir = project({ 'dip.yaml': `project: ''\n${MINIMAL}` });
    const err = await configErrorAsync(() => loadProject(path.join(dir, 'dip.yaml')));
    assert.ok(
      err.message.includes(`${path.join(dir, 'dip.yaml')}:1:10: project: got "", expected at least 1 character`),
      err.message,
    );
  });

  it('reports a missing file and suggests dip init', async () => {
    const missing = path.join(root, 'nowhere', 'dip.yaml');
    const err = await configErrorAsync(() => loadProject(missing));
    assert.equal(
      err.message,
      `Project file not found: ${missing}\n  Run \`dip init\` to create a dip.yaml here, or point to an existing project file.`,
    );
  });

  it('reports a directory without a project file', async () => {
    const dir = project({ 'README.md': 'hi' });
    const err = await configErrorAsync(() => loadProject(dir));
    assert.ok(err.message.startsWith(`Project file not found: ${path.join(dir, 'dip.yaml')}`), err.message);
  });

  it('loads the default export of dip.config.mjs and dip.config.ts', async () => {
    const body = `export default { project: 'coded', pipelines: { p: { sources: { s: { type: 'files', streams: { x: { path: 'x.csv' } } } } } } };\n`;
    for (const name of ['dip.config.mjs', 'dip.config.ts']) {
      const dir = project({ [name]: body });
      const loaded = await loadProject(path.join(dir, name));
      assert.equal(loaded.config.project, 'coded');
      assert.equal(loaded.config.catalog.kind, 'sqlite');
    }
  });

  it('validates what dip.config.mjs exports', async () => {
    const dir = project({ 'dip.config.mjs': `export default { pipelines: { p: { sources: {} } }, verison: 1 };\n` });
    const file = path.join(dir, 'dip.config.mjs');
    const err = await configErrorAsync(() => loadProject(file));
    assert.ok(err.message.startsWith(`Invalid project exported by ${file} (1 problem):`), err.message);
    assert.ok(err.message.includes(`${file}: verison: unknown key "verison"; allowed keys here:`), err.message);
  });

  it('rejects a config module without a default export', async () => {
    const dir = project({ 'dip.config.mjs': 'export const project = 1;\n' });
    const err = await configErrorAsync(() => loadProject(path.join(dir, 'dip.config.mjs')));
    assert.ok(err.message.includes('has no default export'), err.message);
  });
});

describe('findProjectFile', () => {
  it('walks up to the nearest project file', () => {
    const dir = project({ 'dip.yaml': MINIMAL, 'a/b/c/.keep': '' });
    assert.equal(findProjectFile(path.join(dir, 'a', 'b', 'c')), path.join(dir, 'dip.yaml'));
  });

  it('prefers dip.yaml over dip.yml in the same directory', () => {
    const dir = project({ 'dip.yaml': MINIMAL, 'dip.yml': MINIMAL });
    assert.equal(findProjectFile(dir), path.join(dir, 'dip.yaml'));
  });
});

describe('secrets', () => {
  const SECRET = 's3cr3t-P@ss';

  it('detects references', () => {
    assert.equal(hasSecretRef('postgres://u:${env:PG_PASS}@h/db'), true);
    assert.equal(hasSecretRef('${file:./pw}'), true);
    assert.equal(hasSecretRef('postgres://u@h/db'), false);
    assert.equal(hasSecretRef('$HOME {env:X}'), false);
  });

  it('resolves env references and remembers the values', () => {
    const registry = new SecretRegistry();
    const out = resolveSecrets('postgres://app:${env:PG_PASS}@db/${env:PG_DB}', {
      baseDir: root,
      env: { PG_PASS: SECRET, PG_DB: 'lake' },
      registry,
    });
    assert.equal(out, `postgres://app:${SECRET}@db/lake`);
    assert.equal(registry.redact(`connect failed: ${out}`), 'connect failed: postgres://app:***@db/***');
  });

  it('resolves file references relative to baseDir, trimming one trailing newline', () => {
    const dir = project({ 'secrets/pg.txt': `${SECRET}\n` });
    const registry = new SecretRegistry();
    assert.equal(resolveSecrets('${file:secrets/pg.txt}', { baseDir: dir, registry }), SECRET);
    assert.equal(resolveSecrets(`\${file:${path.join(dir, 'secrets/pg.txt')}}`, { baseDir: '/', registry }), SECRET);
    assert.equal(registry.redact(`pw=${SECRET}.`), 'pw=***.');
  });

  it('names the reference, never a secret, when an env var is unset', () => {
    const registry = new SecretRegistry();
    const err = configError(() =>
      resolveSecrets('postgres://${env:PG_USER}:${env:PG_MISSING}@db', {
        baseDir: root,
        env: { PG_USER: SECRET },
        registry,
      }),
    );
    assert.equal(
      err.message,
      'Secret reference ${env:PG_MISSING} cannot be resolved: environment variable PG_MISSING is not set',
    );
    assert.ok(!err.message.includes(SECRET));
    assert.ok(!JSON.stringify(err.details).includes(SECRET));
  });

  it('names the reference and path when a secret file is unreadable', () => {
    const err = configError(() =>
      resolveSecrets('${file:nope.txt}', { baseDir: root, registry: new SecretRegistry() }),
    );
    assert.equal(
      err.message,
      `Secret reference \${file:nope.txt} cannot be resolved: cannot read ${path.join(root, 'nope.txt')} (ENOENT)`,
    );
  });

  it('redacts every occurrence, longest secret first', () => {
    assert.equal(redact('a=abc b=abcdef c=abc', ['abc', 'abcdef', '']), 'a=*** b=*** c=***');
    assert.equal(redact('nothing here', []), 'nothing here');
  });

  it('registry also hides the password of a secret connection string', () => {
    const registry = new SecretRegistry();
    registry.add('postgres://app:p%40ss@db:5432/lake');
    assert.equal(registry.redact('auth failed for p@ss and p%40ss'), 'auth failed for *** and ***');
    assert.equal(registry.redact('url postgres://app:p%40ss@db:5432/lake'), 'url ***');
  });
});

describe('defineProject', () => {
  it('validates and applies defaults', () => {
    const source = defineSource({
      type: 'files',
      streams: { orders: { path: 'o.csv', write_disposition: 'merge', primary_key: ['id'] } },
    });
    const pipeline = definePipeline({ sources: { shop: source } });
    const config = defineProject({ project: 'coded', pipelines: { main: pipeline } });
    assert.equal(config.version, 1);
    assert.equal(config.storage.kind === 'local' ? config.storage.path : undefined, '.dip/lake');
    const shop = config.pipelines.main?.sources.shop;
    assert.equal(shop?.type === 'files' ? shop.streams.orders?.schema_contract : undefined, 'evolve');
  });

  it('throws the same style of ConfigError as the YAML loader', () => {
    const input = {
      pipelines: {
        main: {
          sources: { shop: { type: 'files', streams: { orders: { path: 'o.csv', write_disposition: 'upsert' } } } },
        },
      },
    };
    // The cast stands in for untyped input, e.g. assembled at runtime from JSON.
    const err = configError(() => defineProject(input as unknown as Parameters<typeof defineProject>[0]));
    assert.equal(
      err.message,
      'Invalid project passed to defineProject() (1 problem):\n' +
        '  defineProject(): pipelines.main.sources.shop.streams.orders.write_disposition: got "upsert", expected one of append, replace, merge',
    );
  });
});

describe('JSON Schema', () => {
  it('schema/dip.schema.json is up to date (run `npm run schema`)', () => {
    const onDisk: unknown = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
    assert.deepEqual(onDisk, buildJsonSchema());
  });

  it('makes keys with defaults optional', () => {
    const schema = buildJsonSchema();
    assert.equal(schema.$id, 'urn:dip:schema:project:v1');
    assert.deepEqual(schema.required, ['pipelines']);
  });
});
