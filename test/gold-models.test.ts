/**
 * Gold SQL models: a .sql file in the models folder, dependencies from the tables it names (the
 * task graph), table / incremental / view materializations, checks with quarantine, documented
 * columns in describe, time travel, aggregates updated by affected groups, and a TypeScript model.
 * An incremental model and an aggregate equal a full refresh row by row after several runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProject } from '../src/config/load.js';
import { pipelineDag } from '../src/config/task-graph.js';
import { buildModels } from '../src/ops/build.js';
import { describeTable } from '../src/ops/describe.js';
import { TestProject, projectConfig } from './support/project.js';

function csv(from: number, to: number, day: (i: number) => string): string {
  let s = 'id,customer,product,amount,day\n';
  for (let i = from; i <= to; i++) s += `${i},c${i % 7},p${i % 3},${(i % 5) * 10 + 1},${day(i)}\n`;
  return s;
}

async function project(): Promise<TestProject> {
  const p = await TestProject.create({ orders: { path: 'data/*.csv' } });
  const config = projectConfig({ orders: { path: 'data/*.csv' } }, { raw: false });
  const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
  pipeline['silver'] = { orders: { from: 'orders' } };
  pipeline['gold'] = {
    orders_by_customer: {
      description: 'Revenue per customer',
      columns: { customer: 'The customer id', revenue: { description: 'Sum of amounts', type: 'BIGINT' } },
    },
    order_facts: {
      materialized: 'incremental',
      unique_key: ['id'],
      query: "SELECT id, customer, amount * 2 AS doubled, day FROM silver.orders WHERE product <> 'p9'",
      checks: [{ type: 'range', column: 'doubled', max: 70, mostly: 0.7 }],
    },
    big_customers: { materialized: 'view', query: 'SELECT * FROM gold.orders_by_customer WHERE revenue > 100' },
    daily: {
      kind: 'aggregate',
      from: 'silver.orders',
      group_by: { day: 'day', product: 'product' },
      measures: { revenue: 'sum(amount)', orders: 'count(*)' },
    },
    doubled_ts: {
      kind: 'module',
      module: 'double.mjs',
      from: 'silver.orders',
      materialized: 'incremental',
      unique_key: ['id'],
      batch_rows: 7,
    },
  };
  await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
  await p.write(
    'models/orders_by_customer.sql',
    '-- revenue per customer\nSELECT customer, sum(amount) AS revenue, count(*) AS orders FROM silver.orders GROUP BY customer;\n',
  );
  await p.write(
    'double.mjs',
    'export default (rows) => rows.map((r) => ({ id: Number(r.id), twice: Number(r.amount) * 2 }));\n',
  );
  return p;
}

describe('gold SQL models', () => {
  it('derive dependencies from the SQL, build table/incremental/view, check, quarantine, describe and time travel', async () => {
    const p = await project();
    try {
      const lake = await p.lake();
      const dag = pipelineDag(lake.project.config, 'p');
      const task = (n: string) => dag.tasks.find((t) => t.name === n);
      assert.deepEqual(task('gold.orders_by_customer')?.deps, ['silver.orders']);
      assert.deepEqual(task('gold.big_customers')?.deps, ['gold.orders_by_customer']);
      assert.deepEqual(task('gold.daily')?.deps, ['silver.orders']);
      const order = dag.tasks.map((t) => t.name);
      assert.ok(order.indexOf('gold.big_customers') > order.indexOf('gold.orders_by_customer'));

      await p.write(
        'data/a.csv',
        csv(1, 40, (i) => `2024-01-0${1 + (i % 3)}`),
      );
      const first = await p.runOk();
      assert.equal(first.stats.streams['gold.orders_by_customer']?.commits, 1);
      // doubled = amount*2 > 70 for amount 41 (i % 5 == 4): 8 rows of 40 quarantined
      assert.equal(first.stats.streams['gold.order_facts']?.quarantined, 8);
      assert.equal(await p.count('gold.order_facts'), 32);
      assert.equal(await p.count('quarantine.gold__order_facts'), 8);
      assert.equal(
        await p.num('SELECT sum(revenue) FROM gold.orders_by_customer'),
        await p.num('SELECT sum(amount) FROM silver.orders'),
      );
      assert.equal(
        await p.num('SELECT count(*) FROM gold.big_customers'),
        await p.num(
          'SELECT count(*) FROM (SELECT customer FROM silver.orders GROUP BY customer HAVING sum(amount) > 100)',
        ),
      );
      const afterFirst = (await lake.catalog.getTable('gold.orders_by_customer'))?.headCommit as number;
      const revenueThen = await p.num('SELECT sum(revenue) FROM gold.orders_by_customer');

      // Several runs: new files each time; incremental models take only the new rows.
      for (const [k, [from, to]] of [
        [1, [41, 70]],
        [2, [71, 75]],
        [3, [76, 120]],
      ] as const) {
        await p.write(
          `data/b${k}.csv`,
          csv(from, to, (i) => `2024-01-0${1 + (i % 4)}`),
        );
        const r = await p.runOk();
        // amount 41 (id % 5 == 4) fails the range check
        let passing = 0;
        for (let i = from; i <= to; i++) if (i % 5 !== 4) passing++;
        assert.equal(r.stats.streams['gold.order_facts']?.rows, passing);
      }
      const reports = await lake.catalog.listQualityReports('gold.order_facts');
      assert.equal(reports[0]?.report['mode'], 'incremental');
      assert.equal((await lake.catalog.listQualityReports('gold.daily'))[0]?.report['mode'], 'incremental');
      // An unchanged run builds nothing.
      const idle = await p.runOk();
      assert.equal(idle.stats.streams['gold.order_facts']?.commits, 0);

      const incremental = await p.rows('SELECT * FROM gold.order_facts ORDER BY id');
      const daily = await p.rows('SELECT * FROM gold.daily ORDER BY day, product');
      const mod = await p.rows('SELECT * FROM gold.doubled_ts ORDER BY id');
      assert.equal(mod.length, 120);
      assert.equal(await p.count('quarantine.gold__order_facts'), 24);
      await buildModels(lake, { fullRefresh: true });
      assert.deepEqual(await p.rows('SELECT * FROM gold.order_facts ORDER BY id'), incremental);
      assert.deepEqual(await p.rows('SELECT * FROM gold.daily ORDER BY day, product'), daily);
      assert.deepEqual(await p.rows('SELECT * FROM gold.doubled_ts ORDER BY id'), mod);
      assert.equal(await p.count('quarantine.gold__order_facts'), 24, 'a full build replaces the quarantine');
      assert.equal(
        await p.num('SELECT sum(revenue) FROM gold.daily'),
        await p.num('SELECT sum(amount) FROM silver.orders'),
      );

      // Time travel: the model as of its first build.
      assert.equal(
        await p.num('SELECT sum(revenue) FROM gold.orders_by_customer', { commit: afterFirst }),
        revenueThen,
      );
      // describe: lineage and column docs.
      const d = await describeTable(lake, 'gold.orders_by_customer', { commits: 5 });
      assert.deepEqual(d.model?.inputs, ['silver.orders']);
      assert.deepEqual(
        d.model?.columns.map((c) => [c.name, c.type, c.description]),
        [
          ['customer', 'VARCHAR', 'The customer id'],
          ['revenue', 'BIGINT', 'Sum of amounts'],
          ['orders', 'BIGINT', null],
        ],
      );
      assert.deepEqual((await describeTable(lake, 'gold.big_customers', { commits: 1 })).model?.inputs, [
        'gold.orders_by_customer',
      ]);
      await assert.rejects(
        buildModels(lake, { models: ['nope'] }),
        /no gold model nope \(gold models: orders_by_customer/,
      );
    } finally {
      await p.dispose();
    }
  });

  it('refuses a model whose .sql file is missing, naming the model and file', async () => {
    const p = await TestProject.create({ orders: { path: 'data/*.csv' } });
    try {
      const config = projectConfig({ orders: { path: 'data/*.csv' } });
      const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
      pipeline['gold'] = { missing_model: {} };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
      await assert.rejects(
        p.lake(),
        /pipelines\.p\.gold\.missing_model: cannot read the model's SQL file models\/missing_model\.sql \(ENOENT\)/,
      );
      // One gold table, two pipelines: refused like a silver table.
      const two = {
        pipelines: {
          a: { sources: {}, gold: { x: { query: 'SELECT 1 AS one' } } },
          b: { sources: {}, gold: { x: { query: 'SELECT 2 AS two' } } },
        },
      };
      assert.throws(
        () => parseProject(JSON.stringify(two), 'dip.yaml'),
        /table gold\.x is written by two pipelines, a/,
      );
    } finally {
      await p.dispose();
    }
  });
});
