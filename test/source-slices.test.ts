import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sourceSchema } from '../src/config/schema.js';
import { readsDisjointSlices } from '../src/orchestrate/source-slices.js';

const sliced = (input: unknown) => readsDisjointSlices(sourceSchema.parse(input));
const db = { url: 'postgres://u@127.0.0.1/db' };

describe('which sources read a slice per interval (their runs may ingest at once)', () => {
  it('files: only when every stream path is cut by the interval', () => {
    assert.equal(sliced({ type: 'files', streams: { a: { path: 'in/{interval.start_date}.csv' } } }), true);
    assert.equal(
      sliced({ type: 'files', streams: { a: { path: 'in/{interval.start_date}.csv' }, b: { path: 'in/*.json' } } }),
      false,
      'one plain glob shares the ledger',
    );
    assert.equal(sliced({ type: 'files', streams: { a: { path: 'in/*.csv' } } }), false);
  });

  it('rest: every resource templated and none incremental or windowed', () => {
    const base = { type: 'rest', base_url: 'http://127.0.0.1:1' };
    assert.equal(
      sliced({
        ...base,
        resources: { a: { path: '/items', params: { since: '{interval.start}', until: '{interval.end}' } } },
      }),
      true,
    );
    assert.equal(
      sliced({
        ...base,
        resources: {
          a: { path: '/items', params: { since: '{interval.start}' }, incremental: { cursor_field: 'updated_at' } },
        },
      }),
      false,
      'a cursor is shared state',
    );
    assert.equal(
      sliced({
        ...base,
        resources: { a: { path: '/items', params: { since: '{interval.start}' } }, b: { path: '/all' } },
      }),
      false,
    );
  });

  it('databases: full reads whose where or sql is cut by the interval; never incremental or cdc', () => {
    assert.equal(
      sliced({
        type: 'postgres',
        connection: db,
        tables: [{ name: 'orders', where: "day = '{interval.start_date}'" }],
      }),
      true,
    );
    assert.equal(
      sliced({
        type: 'postgres',
        connection: db,
        tables: [{ name: 'orders', where: "day = '{interval.start_date}'" }, 'customers'],
      }),
      false,
      'a bare table name reads everything',
    );
    assert.equal(
      sliced({
        type: 'postgres',
        connection: db,
        mode: 'incremental',
        tables: [{ name: 'orders', cursor: 'id', where: "day >= '{interval.start_date}'" }],
      }),
      false,
      'the cursor is shared',
    );
    assert.equal(
      sliced({
        type: 'mysql',
        connection: { url: 'mysql://u@127.0.0.1/db' },
        queries: { q: { sql: "SELECT * FROM t WHERE d = '{interval.start_date}'" } },
      }),
      true,
    );
  });
});
