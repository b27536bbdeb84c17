/**
 * Nested bronze columns (STRUCT / LIST / MAP / JSON read back from Parquet) flattened into silver
 * columns and child tables, checked against a real DuckDB; DuckDB type strings parsed and rendered.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../src/core/errors.js';
import { Engine } from '../src/lake/engine.js';
import { lit } from '../src/lake/sql.js';
import { parseDuckType, renderDuckType, type DuckType } from '../src/lake/duck-types.js';
import { childTableSelect, flattenColumns, type Flattened, type FlattenOptions } from '../src/transform/flatten.js';

let engine: Engine;
let dir: string;
let posts: string; // read_parquet(...) of the bronze-like table
let bronze: { name: string; type: string }[];

before(async () => {
  engine = Engine.start({ threads: 2 });
  dir = await mkdtemp(join(tmpdir(), 'dip-flatten-'));
  await engine.run(`CREATE TABLE posts (
    id BIGINT,
    author STRUCT(id BIGINT, displayName VARCHAR, profile STRUCT(bio VARCHAR, links VARCHAR[])),
    media STRUCT(url VARCHAR, kind VARCHAR)[],
    hashtags VARCHAR[],
    meta MAP(VARCHAR, VARCHAR),
    extra JSON)`);
  await engine.run(`INSERT INTO posts VALUES
    (1, {'id': 10, 'displayName': 'Ann', 'profile': {'bio': 'hi', 'links': ['a.com', 'b.com']}},
        [{'url': 'u1', 'kind': 'image'}, {'url': 'u2', 'kind': 'video'}], ['a', 'b'], MAP {'lang': 'en'}, '{"x": 1}'),
    (2, {'id': 11, 'displayName': NULL, 'profile': NULL}, [], [], NULL, NULL),
    (3, NULL, NULL, NULL, MAP {}, 'null'),
    (4, {'id': 12, 'displayName': 'Bo', 'profile': {'bio': NULL, 'links': []}}, [NULL, {'url': 'u4', 'kind': NULL}], ['c'], NULL, '[1, 2]')`);
  const file = join(dir, 'posts.parquet');
  await engine.run(`COPY posts TO ${lit(file)} (FORMAT parquet)`);
  posts = `read_parquet(${lit(file)})`;
  bronze = await engine.describe(`SELECT * FROM ${posts}`);
});

after(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

const shape = (f: Flattened) => ({
  columns: f.columns.map((c) => `${c.name} ${c.type}`),
  arrays: f.arrays.map((a) => `${a.name} ${a.elementType}`),
});

/** Runs the flattened SELECT; checks DuckDB's types against the reported ones; rows ordered by id. */
async function select(f: Flattened): Promise<Record<string, unknown>[]> {
  const sql = `SELECT ${f.columns.map((c) => `${c.expr} AS "${c.name}"`).join(', ')} FROM ${posts} AS b`;
  const described = await engine.describe(sql);
  assert.deepEqual(
    described.map((c) => `${c.name} ${c.type}`),
    f.columns.map((c) => `${c.name} ${c.type}`),
  );
  return engine.all(`${sql} ORDER BY "id"`);
}

const opts = (o: Partial<FlattenOptions>): FlattenOptions => ({
  maxDepth: 3,
  arrays: 'child_table',
  naming: 'snake_case',
  ...o,
});

describe('bronze types', () => {
  it('are the nested types DuckDB reads back from Parquet', () => {
    assert.deepEqual(bronze, [
      { name: 'id', type: 'BIGINT' },
      { name: 'author', type: 'STRUCT(id BIGINT, displayName VARCHAR, profile STRUCT(bio VARCHAR, links VARCHAR[]))' },
      { name: 'media', type: 'STRUCT(url VARCHAR, kind VARCHAR)[]' },
      { name: 'hashtags', type: 'VARCHAR[]' },
      { name: 'meta', type: 'MAP(VARCHAR, VARCHAR)' },
      { name: 'extra', type: 'JSON' },
    ]);
  });
});

describe('flattenColumns', () => {
  it('depth 0: structs and maps as JSON, lists to child tables', async () => {
    const f = flattenColumns(bronze, opts({ maxDepth: 0 }));
    assert.deepEqual(shape(f), {
      columns: ['id BIGINT', 'author JSON', 'meta JSON', 'extra JSON'],
      arrays: ['media STRUCT(url VARCHAR, kind VARCHAR)', 'hashtags VARCHAR'],
    });
    assert.deepEqual(await select(f), [
      {
        id: '1',
        author: '{"id":10,"displayName":"Ann","profile":{"bio":"hi","links":["a.com","b.com"]}}',
        meta: '{"lang":"en"}',
        extra: '{"x": 1}',
      },
      { id: '2', author: '{"id":11,"displayName":null,"profile":null}', meta: null, extra: null },
      { id: '3', author: null, meta: '{}', extra: 'null' },
      {
        id: '4',
        author: '{"id":12,"displayName":"Bo","profile":{"bio":null,"links":[]}}',
        meta: null,
        extra: '[1, 2]',
      },
    ]);
  });

  it('depth 1: one level of parent__child columns, deeper objects as JSON', async () => {
    const f = flattenColumns(bronze, opts({ maxDepth: 1 }));
    assert.deepEqual(shape(f), {
      columns: [
        'id BIGINT',
        'author__id BIGINT',
        'author__display_name VARCHAR',
        'author__profile JSON',
        'meta JSON',
        'extra JSON',
      ],
      arrays: ['media STRUCT(url VARCHAR, kind VARCHAR)', 'hashtags VARCHAR'],
    });
    assert.deepEqual(
      f.columns.map((c) => [c.name, c.sourcePath, c.expr]),
      [
        ['id', ['id'], 'b."id"'],
        ['author__id', ['author', 'id'], 'b."author"."id"'],
        ['author__display_name', ['author', 'displayName'], 'b."author"."displayName"'],
        ['author__profile', ['author', 'profile'], 'to_json(b."author"."profile")'],
        ['meta', ['meta'], 'to_json(b."meta")'],
        ['extra', ['extra'], 'b."extra"'],
      ],
    );
    const rows = await select(f);
    assert.deepEqual(
      rows.map((r) => [r['id'], r['author__id'], r['author__display_name'], r['author__profile']]),
      [
        ['1', '10', 'Ann', '{"bio":"hi","links":["a.com","b.com"]}'],
        ['2', '11', null, null],
        ['3', null, null, null],
        ['4', '12', 'Bo', '{"bio":null,"links":[]}'],
      ],
    );
  });

  it('depth 2 and 3: everything flattened, nested lists become arrays', async () => {
    for (const maxDepth of [2, 3]) {
      const f = flattenColumns(bronze, opts({ maxDepth }));
      assert.deepEqual(shape(f), {
        columns: [
          'id BIGINT',
          'author__id BIGINT',
          'author__display_name VARCHAR',
          'author__profile__bio VARCHAR',
          'meta JSON',
          'extra JSON',
        ],
        arrays: ['author__profile__links VARCHAR', 'media STRUCT(url VARCHAR, kind VARCHAR)', 'hashtags VARCHAR'],
      });
      assert.deepEqual(f.arrays[0], {
        name: 'author__profile__links',
        sourcePath: ['author', 'profile', 'links'],
        expr: 'b."author"."profile"."links"',
        elementType: 'VARCHAR',
      });
      const rows = await select(f);
      assert.deepEqual(
        rows.map((r) => r['author__profile__bio']),
        ['hi', null, null, null],
      );
    }
  });

  it('arrays as JSON or kept as lists', async () => {
    const asJson = flattenColumns(bronze, opts({ maxDepth: 2, arrays: 'json' }));
    assert.deepEqual(shape(asJson), {
      columns: [
        'id BIGINT',
        'author__id BIGINT',
        'author__display_name VARCHAR',
        'author__profile__bio VARCHAR',
        'author__profile__links JSON',
        'media JSON',
        'hashtags JSON',
        'meta JSON',
        'extra JSON',
      ],
      arrays: [],
    });
    assert.deepEqual(
      (await select(asJson)).map((r) => [r['author__profile__links'], r['media'], r['hashtags']]),
      [
        ['["a.com","b.com"]', '[{"url":"u1","kind":"image"},{"url":"u2","kind":"video"}]', '["a","b"]'],
        [null, '[]', '[]'],
        [null, null, null],
        ['[]', '[null,{"url":"u4","kind":null}]', '["c"]'],
      ],
    );
    const asList = flattenColumns(bronze, opts({ maxDepth: 2, arrays: 'list' }));
    assert.deepEqual(shape(asList), {
      columns: [
        'id BIGINT',
        'author__id BIGINT',
        'author__display_name VARCHAR',
        'author__profile__bio VARCHAR',
        'author__profile__links VARCHAR[]',
        'media STRUCT(url VARCHAR, kind VARCHAR)[]',
        'hashtags VARCHAR[]',
        'meta JSON',
        'extra JSON',
      ],
      arrays: [],
    });
    assert.deepEqual(
      (await select(asList)).map((r) => r['hashtags']),
      [['a', 'b'], [], null, ['c']],
    );
  });

  it('naming: keep, and collisions get suffixes', () => {
    const kept = flattenColumns(bronze, opts({ maxDepth: 1, naming: 'keep' }));
    assert.deepEqual(
      kept.columns.map((c) => c.name),
      ['id', 'author__id', 'author__displayName', 'author__profile', 'meta', 'extra'],
    );
    const clash = flattenColumns(
      [
        { name: 'author__id', type: 'INTEGER' },
        { name: 'author', type: 'STRUCT(id INTEGER, "ID" VARCHAR)' },
        { name: 'Author Id', type: 'VARCHAR' },
      ],
      opts({ maxDepth: 1 }),
    );
    // snake_case collapses the top-level author__id; struct fields differing only in case get suffixes
    assert.deepEqual(
      clash.columns.map((c) => c.name),
      ['author_id', 'author__id', 'author__id_2', 'author_id_2'],
    );
    const keptClash = flattenColumns(
      [
        { name: 'author__id', type: 'INTEGER' },
        { name: 'author', type: 'STRUCT(id INTEGER)' },
      ],
      opts({ maxDepth: 1, naming: 'keep' }),
    );
    assert.deepEqual(
      keptClash.columns.map((c) => c.name),
      ['author__id', 'author__id_2'],
    );
  });

  it('exclude: top-level names, dotted paths and flattened names; pruned inside JSON', async () => {
    const f = flattenColumns(
      bronze,
      opts({ maxDepth: 1, exclude: ['extra', 'author.displayName', 'author__profile', 'nope'] }),
    );
    assert.deepEqual(shape(f).columns, ['id BIGINT', 'author__id BIGINT', 'meta JSON']);
    assert.deepEqual(f.unmatchedExclude, ['nope']);

    const pruned = flattenColumns(
      bronze,
      opts({ maxDepth: 0, arrays: 'json', exclude: ['author.displayName', 'author.profile.links', 'media.kind'] }),
    );
    assert.deepEqual(shape(pruned).columns, [
      'id BIGINT',
      'author JSON',
      'media JSON',
      'hashtags JSON',
      'meta JSON',
      'extra JSON',
    ]);
    assert.deepEqual(
      (await select(pruned)).map((r) => [r['author'], r['media']]),
      [
        ['{"id":10,"profile":{"bio":"hi"}}', '[{"url":"u1"},{"url":"u2"}]'],
        ['{"id":11,"profile":null}', '[]'],
        [null, null],
        ['{"id":12,"profile":{"bio":null}}', '[null,{"url":"u4"}]'],
      ],
    );

    const listed = flattenColumns(bronze, opts({ maxDepth: 2, arrays: 'list', exclude: ['media.kind'] }));
    const media = listed.columns.find((c) => c.name === 'media');
    assert.equal(media?.type, 'STRUCT(url VARCHAR)[]');
    assert.deepEqual(
      (await select(listed)).map((r) => r['media']),
      [[{ url: 'u1' }, { url: 'u2' }], [], null, [null, { url: 'u4' }]],
    );

    const child = flattenColumns(bronze, opts({ maxDepth: 1, exclude: ['media.kind'] }));
    assert.deepEqual(child.arrays[0]?.excludePaths, [['kind']]);
  });

  it('uses the given alias', () => {
    const f = flattenColumns([{ name: 'a', type: 'STRUCT(x INTEGER)' }], opts({}), 'src');
    assert.equal(f.columns[0]?.expr, 'src."a"."x"');
  });
});

describe('childTableSelect', () => {
  const parent = () =>
    `(SELECT md5(CAST(b.id AS VARCHAR)) AS pid, b.id, b."media" AS media, b."hashtags" AS hashtags, b."author"."profile"."links" AS author__profile__links FROM ${posts} AS b)`;
  let ids: Record<string, string>;

  before(async () => {
    const rows = await engine.all(`SELECT id, md5(CAST(id AS VARCHAR)) AS h FROM ${posts}`);
    ids = Object.fromEntries(rows.map((r) => [String(r['id']), String(r['h'])]));
  });

  it('struct elements: one row per element with parent id and 0-based index; empty and null lists give no rows', async () => {
    const f = flattenColumns(bronze, opts({ maxDepth: 1 }));
    const media = f.arrays.find((a) => a.name === 'media');
    assert.ok(media);
    const child = childTableSelect(parent(), media, 'p.pid', { maxDepth: 3, naming: 'snake_case' });
    assert.deepEqual(child.columns, [
      { name: '_dip_parent_id', type: 'VARCHAR' },
      { name: '_dip_list_idx', type: 'BIGINT' },
      { name: 'url', type: 'VARCHAR' },
      { name: 'kind', type: 'VARCHAR' },
    ]);
    const described = await engine.describe(child.sql);
    assert.deepEqual(described, child.columns);
    const rows = await engine.all(`${child.sql} ORDER BY _dip_parent_id = ${lit(ids['1'] ?? '')} DESC, _dip_list_idx`);
    assert.deepEqual(rows, [
      { _dip_parent_id: ids['1'], _dip_list_idx: '0', url: 'u1', kind: 'image' },
      { _dip_parent_id: ids['1'], _dip_list_idx: '1', url: 'u2', kind: 'video' },
      { _dip_parent_id: ids['4'], _dip_list_idx: '0', url: null, kind: null },
      { _dip_parent_id: ids['4'], _dip_list_idx: '1', url: 'u4', kind: null },
    ]);
  });

  it('scalar elements land in `value`; excluded element fields are left out', async () => {
    const f = flattenColumns(bronze, opts({ maxDepth: 2, exclude: ['media.kind'] }));
    const tags = f.arrays.find((a) => a.name === 'hashtags');
    const links = f.arrays.find((a) => a.name === 'author__profile__links');
    const media = f.arrays.find((a) => a.name === 'media');
    assert.ok(tags && links && media);
    const t = childTableSelect(parent(), tags, 'p.id', { maxDepth: 3, naming: 'snake_case', parentIdType: 'BIGINT' });
    assert.deepEqual(await engine.describe(t.sql), t.columns);
    assert.deepEqual(await engine.all(`${t.sql} ORDER BY 1, 2`), [
      { _dip_parent_id: '1', _dip_list_idx: '0', value: 'a' },
      { _dip_parent_id: '1', _dip_list_idx: '1', value: 'b' },
      { _dip_parent_id: '4', _dip_list_idx: '0', value: 'c' },
    ]);
    const l = childTableSelect(parent(), links, 'p.id', { maxDepth: 3, naming: 'snake_case', parentIdType: 'BIGINT' });
    assert.deepEqual(await engine.all(`${l.sql} ORDER BY 1, 2`), [
      { _dip_parent_id: '1', _dip_list_idx: '0', value: 'a.com' },
      { _dip_parent_id: '1', _dip_list_idx: '1', value: 'b.com' },
    ]);
    const m = childTableSelect(parent(), media, 'p.id', { maxDepth: 3, naming: 'snake_case', parentIdType: 'BIGINT' });
    assert.deepEqual(
      m.columns.map((c) => c.name),
      ['_dip_parent_id', '_dip_list_idx', 'url'],
    );
    assert.deepEqual(await engine.describe(m.sql), m.columns);
  });

  it('fixed-size arrays: null arrays give no rows', async () => {
    const rel = `(SELECT * FROM (VALUES (1, [5, 6]::INTEGER[2]), (2, NULL::INTEGER[2])) t(id, pair))`;
    const f = flattenColumns(await engine.describe(`SELECT pair FROM ${rel}`), opts({}));
    assert.deepEqual(shape(f).arrays, ['pair INTEGER']);
    const arr = f.arrays[0];
    assert.ok(arr);
    const child = childTableSelect(rel, arr, 'id', { maxDepth: 3, naming: 'snake_case', parentIdType: 'INTEGER' });
    assert.deepEqual(await engine.describe(child.sql), child.columns);
    assert.deepEqual(await engine.all(`${child.sql} ORDER BY 1, 2`), [
      { _dip_parent_id: 1, _dip_list_idx: '0', value: 5 },
      { _dip_parent_id: 1, _dip_list_idx: '1', value: 6 },
    ]);
  });

  it('elements with nested structs and lists: flattened to maxDepth, nested lists as JSON', async () => {
    const rel = `(SELECT 7 AS id, [
        {'text': 'hey', 'tags': ['x', 'y'], 'by': {'name': 'Cy', 'geo': {'lat': 1.5}}, '_dip_list_idx': 9},
        {'text': NULL, 'tags': NULL, 'by': NULL, '_dip_list_idx': NULL}
      ] AS comments)`;
    const [col] = await engine.describe(`SELECT comments FROM ${rel}`);
    assert.ok(col);
    const f = flattenColumns([col], opts({}));
    const arr = f.arrays[0];
    assert.ok(arr);
    const deep = childTableSelect(rel, arr, 'p.id', { maxDepth: 2, naming: 'snake_case', parentIdType: 'INTEGER' });
    assert.deepEqual(deep.columns, [
      { name: '_dip_parent_id', type: 'INTEGER' },
      { name: '_dip_list_idx', type: 'BIGINT' },
      { name: 'text', type: 'VARCHAR' },
      { name: 'tags', type: 'JSON' },
      { name: 'by__name', type: 'VARCHAR' },
      { name: 'by__geo', type: 'JSON' },
      { name: 'dip_list_idx', type: 'INTEGER' },
    ]);
    assert.deepEqual(await engine.describe(deep.sql), deep.columns);
    assert.deepEqual(await engine.all(`${deep.sql} ORDER BY 2`), [
      {
        _dip_parent_id: 7,
        _dip_list_idx: '0',
        text: 'hey',
        tags: '["x","y"]',
        by__name: 'Cy',
        by__geo: '{"lat":1.5}',
        dip_list_idx: 9,
      },
      {
        _dip_parent_id: 7,
        _dip_list_idx: '1',
        text: null,
        tags: null,
        by__name: null,
        by__geo: null,
        dip_list_idx: null,
      },
    ]);
    // names never take the place of the link columns
    const kept = childTableSelect(rel, arr, 'p.id', { maxDepth: 1, naming: 'keep' });
    assert.deepEqual(
      kept.columns.map((c) => c.name),
      ['_dip_parent_id', '_dip_list_idx', 'text', 'tags', 'by', '_dip_list_idx_2'],
    );
    assert.deepEqual(
      (await engine.describe(kept.sql)).map((c) => c.name),
      kept.columns.map((c) => c.name),
    );
    const flat0 = childTableSelect(rel, arr, 'p.id', { maxDepth: 0, naming: 'snake_case', parentIdType: 'INTEGER' });
    assert.deepEqual(
      flat0.columns.map((c) => `${c.name} ${c.type}`),
      ['_dip_parent_id INTEGER', '_dip_list_idx BIGINT', 'value JSON'],
    );
    assert.deepEqual(
      (await engine.all(`${flat0.sql} ORDER BY 2`)).map((r) => r['value']),
      [
        '{"text":"hey","tags":["x","y"],"by":{"name":"Cy","geo":{"lat":1.5}},"_dip_list_idx":9}',
        '{"text":null,"tags":null,"by":null,"_dip_list_idx":null}',
      ],
    );
  });
});

describe('parseDuckType / renderDuckType', () => {
  const tricky = [
    'BIGINT',
    'DECIMAL(18,3)',
    'TIMESTAMP WITH TIME ZONE',
    'INTEGER[3]',
    'INTEGER[][]',
    "ENUM('a', 'b,c', 'd)')",
    'UNION(k INTEGER, s VARCHAR)',
    'MAP(VARCHAR, STRUCT(a INTEGER))',
    'STRUCT(id INTEGER, "display Name" VARCHAR, "q""x" STRUCT(u INTEGER)[], T STRUCT("a b" DECIMAL(4,1)))',
    'STRUCT("select" INTEGER, "order" TIMESTAMP WITH TIME ZONE, "name" VARCHAR[])[]',
    'STRUCT(url VARCHAR, kind VARCHAR)[]',
    'STRUCT(a STRUCT(b STRUCT(c MAP(VARCHAR, INTEGER[])[])))',
  ];

  it('renders parsed DuckDB spellings back exactly, and hand-built types as valid DuckDB types', async () => {
    for (const text of tricky) {
      // the spelling DuckDB itself prints for the type
      const [d] = await engine.describe(`SELECT NULL::${text} AS v`);
      assert.equal(d?.type, text, `DuckDB spells ${text} as written`);
      const parsed = parseDuckType(text);
      assert.equal(renderDuckType(parsed), text);
      // a structurally equal copy (no remembered spelling) renders to a type DuckDB reads back the same
      const copy = JSON.parse(JSON.stringify(parsed)) as DuckType;
      const rendered = renderDuckType(copy);
      const [back] = await engine.describe(`SELECT NULL::${rendered} AS v`);
      assert.equal(back?.type, text, `${rendered} reads back as ${text}`);
      assert.deepEqual(parseDuckType(rendered), parsed);
    }
  });

  it('parses into a tree', () => {
    assert.deepEqual(
      parseDuckType(
        'STRUCT(id INTEGER, "display Name" VARCHAR, "q""x" STRUCT(u DECIMAL(4,1))[], m MAP(VARCHAR, JSON), f INTEGER[3])',
      ),
      {
        kind: 'struct',
        fields: [
          { name: 'id', type: { kind: 'scalar', name: 'INTEGER' } },
          { name: 'display Name', type: { kind: 'scalar', name: 'VARCHAR' } },
          {
            name: 'q"x',
            type: {
              kind: 'list',
              element: { kind: 'struct', fields: [{ name: 'u', type: { kind: 'scalar', name: 'DECIMAL(4,1)' } }] },
            },
          },
          {
            name: 'm',
            type: { kind: 'map', key: { kind: 'scalar', name: 'VARCHAR' }, value: { kind: 'scalar', name: 'JSON' } },
          },
          { name: 'f', type: { kind: 'list', element: { kind: 'scalar', name: 'INTEGER' }, size: 3 } },
        ],
      },
    );
    assert.deepEqual(parseDuckType('  timestamp   with time zone '), {
      kind: 'scalar',
      name: 'timestamp with time zone',
    });
  });

  it('rejects what is not a type', () => {
    for (const bad of [
      '',
      'STRUCT(',
      'STRUCT()',
      'INTEGER[',
      'DECIMAL(18,3',
      'MAP(VARCHAR)',
      'INTEGER) x',
      'STRUCT("a INTEGER)',
    ]) {
      assert.throws(() => parseDuckType(bad), ConfigError, bad);
    }
  });
});
