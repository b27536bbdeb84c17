/**
 * Issue 13, item 5: one implementation of each shared thing. The two CDC sessions share one
 * base; the quality check `format: email` and PII detection agree on what an email address is;
 * one identifier quoter; database introspection is an introspector, not a "catalog"; DuckDB type
 * knowledge lives in one module.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkSchema } from '../src/config/silver.js';
import { Engine } from '../src/lake/engine.js';
import * as duckTypes from '../src/lake/duck-types.js';
import * as schemaEvolution from '../src/lake/schema-evolution.js';
import { ident, qualified } from '../src/lake/sql.js';
import * as checks from '../src/quality/checks.js';
import { CdcSessionBase } from '../src/sources/database/cdc-session.js';
import { MysqlCdcSession } from '../src/sources/mysql/cdc/session.js';
import { MysqlIntrospector } from '../src/sources/mysql/introspect.js';
import { CdcSession } from '../src/sources/postgres/cdc/session.js';
import * as pgIntrospect from '../src/sources/postgres/introspect.js';
import { classifyValue } from '../src/transform/pii-detect.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lines = (path: string) => readFileSync(join(root, path), 'utf8').split('\n').length;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('one implementation of each shared thing', () => {
  let engine: Engine;
  before(() => {
    engine = Engine.start({ threads: 1 });
  });
  after(async () => {
    await engine.close();
  });

  it('the PostgreSQL and MySQL CDC sessions extend one base and stay well under 400 lines', () => {
    assert.ok(CdcSession.prototype instanceof CdcSessionBase);
    assert.ok(MysqlCdcSession.prototype instanceof CdcSessionBase);
    // The skeleton (units, register, flush, finish, fail, close) is the base's only.
    for (const name of ['units', 'close'] as const) {
      assert.equal(Object.hasOwn(CdcSession.prototype, name), false, `CdcSession.${name}`);
      assert.equal(Object.hasOwn(MysqlCdcSession.prototype, name), false, `MysqlCdcSession.${name}`);
    }
    assert.ok(lines('src/sources/postgres/cdc/session.ts') < 360);
    assert.ok(lines('src/sources/mysql/cdc/session.ts') < 380);
  });

  it('format: email and PII detection agree on every value', async () => {
    const values = [
      'john.doe@example.com',
      "o'hara@x.io",
      'a@b.c', // a one-letter top-level domain: no address
      'x@10.0.0.1', // numeric top-level domain: no address
      `a@${'b'.repeat(64)}.com`, // a host label over 63 characters
      'a@b',
      'a b@example.com',
    ];
    const rows = values.map((v) => `('${v.replaceAll("'", "''")}')`).join(', ');
    await engine.run(`CREATE OR REPLACE TABLE emails AS SELECT * FROM (VALUES ${rows}) AS t(v)`);
    const compiled = await checks.compileChecks(
      'silver.emails',
      [checkSchema.parse({ type: 'format', column: 'v', format: 'email' })],
      await engine.describe('emails'),
      async () => {
        throw new Error('no references');
      },
    );
    const [result] = await checks.evaluateRowChecks(engine, 'emails', compiled.row);
    assert.ok(result);
    const refused = new Set(result.samples.map((s) => /^v = '(.*)' is not /.exec(s)?.[1]));
    const detected = values.filter((v) => classifyValue(v).includes('email'));
    assert.deepEqual(detected, ['john.doe@example.com', "o'hara@x.io"]);
    assert.equal(result.failed, values.length - detected.length);
    for (const v of values) assert.equal(!refused.has(v), detected.includes(v), v);
  });

  it('one double-quote identifier quoter', () => {
    assert.equal(ident('a"b'), '"a""b"');
    assert.equal(qualified('s"1', 't'), '"s""1"."t"');
    assert.equal((pgIntrospect as Record<string, unknown>)['quoteIdent'], undefined);
    const quoters = sourceFiles('src').filter((f) =>
      /return `"\$\{name\.replaceAll\('"', '""'\)\}"`/.test(readFileSync(join(root, f), 'utf8')),
    );
    assert.deepEqual(quoters, [join('src', 'lake', 'sql.ts')]);
  });

  it('database introspection is an introspector, not a catalog', () => {
    assert.equal(typeof pgIntrospect.PgIntrospector, 'function');
    assert.equal(typeof MysqlIntrospector, 'function');
    for (const dialect of ['postgres', 'mysql']) {
      assert.equal(existsSync(join(root, 'src', 'sources', dialect, 'catalog.ts')), false, dialect);
    }
  });

  it('DuckDB types are parsed, classified and widened in one module', () => {
    assert.equal(schemaEvolution.commonType, duckTypes.commonType);
    assert.equal(checks.typeMatches, duckTypes.typeMatches);
    assert.equal(duckTypes.commonType('DECIMAL(10,2)', 'DECIMAL(12,4)'), 'DECIMAL(12,4)');
    assert.equal(duckTypes.commonType('UINTEGER', 'INTEGER'), 'BIGINT');
    assert.deepEqual(duckTypes.typeInfo('numeric(12, 2)'), { type: 'DECIMAL(12,2)', kind: 'decimal' });
    assert.equal(duckTypes.coarseKind('TIMESTAMP WITH TIME ZONE'), 'temporal');
    assert.equal(duckTypes.renderDuckType(duckTypes.parseDuckType('STRUCT(a INTEGER)[]')), 'STRUCT(a INTEGER)[]');
    // No other file parses DECIMAL(p,s) or lists the integer types.
    const others = sourceFiles('src').filter(
      (f) =>
        f !== join('src', 'lake', 'duck-types.ts') &&
        /\/\^\(?DECIMAL|'TINYINT',\s*'SMALLINT'|TINYINT SMALLINT/.test(readFileSync(join(root, f), 'utf8')),
    );
    assert.deepEqual(others, []);
  });
});
