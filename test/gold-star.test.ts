/**
 * Star schemas: an SCD2 customer dimension with hash surrogate keys, a Type 1 product dimension
 * with sequence keys kept across rebuilds, generated date (ISO week, fiscal offset, weekend,
 * holidays) and time-of-day dimensions, and a fact whose rows join the customer version valid at
 * the order time: an order before an address change joins the old row, one after it the new row,
 * an unknown customer the unknown member (-1, counted in the quality report), no customer -2.
 * The declared grain is checked unique.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModels } from '../src/ops/build.js';
import { TestProject, projectConfig } from './support/project.js';

describe('star schema', () => {
  it('facts look up surrogate keys as of the event time; dimensions, members, date and time dimensions', async () => {
    const streams = {
      customers: { path: 'data/customers.csv', write_disposition: 'replace' },
      products: { path: 'data/products.csv', write_disposition: 'replace' },
      orders: { path: 'data/orders/*.csv' },
    };
    const p = await TestProject.create({});
    try {
      const config = projectConfig(streams, { raw: false });
      const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
      pipeline['silver'] = {
        customers: { from: 'customers', primary_key: ['id'] },
        products: { from: 'products', primary_key: ['sku'] },
        orders: { from: 'orders' },
      };
      pipeline['gold'] = {
        dim_customer: {
          kind: 'scd2',
          from: 'silver.customers',
          unique_key: ['id'],
          strategy: 'timestamp',
          updated_at: 'updated_at',
          surrogate_key: { name: 'customer_key' },
        },
        dim_product: {
          kind: 'dimension',
          from: 'silver.products',
          natural_key: ['sku'],
          surrogate_key: { name: 'product_key', strategy: 'sequence' },
        },
        dim_date: {
          kind: 'date_dimension',
          start: '2024-01-01',
          end: '2024-12-31',
          fiscal_year_start_month: 4,
          holidays: 'holidays.csv',
        },
        dim_time: { kind: 'time_dimension' },
        fact_orders: {
          kind: 'fact',
          from: 'silver.orders',
          grain: ['order_id'],
          lookups: [
            { dimension: 'dim_customer', key: { id: 'customer_id' }, at: 'ordered_at' },
            { dimension: 'dim_product', key: { sku: 'sku' } },
            { dimension: 'dim_date', key: { date: 'CAST(ordered_at AS DATE)' } },
            { dimension: 'dim_time', key: { time: 'make_time(hour(ordered_at), minute(ordered_at), 0)' } },
          ],
          drop: ['customer_id'],
        },
      };
      await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
      await p.write('holidays.csv', 'date,name\n2024-12-25,Christmas Day\n');
      await p.write(
        'data/customers.csv',
        'id,name,address,updated_at\n1,Ann,Old Street 1,2024-01-01 00:00:00\n2,Bob,Elm 2,2024-01-01 00:00:00\n',
      );
      await p.write('data/products.csv', 'sku,title\nA,Apple\nB,Banana\n');
      await p.write(
        'data/orders/1.csv',
        'order_id,customer_id,sku,amount,ordered_at\n' +
          '10,1,A,5.00,2024-01-15 09:30:00\n' +
          '11,99,B,7.50,2024-01-16 18:05:00\n' +
          '12,,A,1.00,2024-01-17 23:59:00\n' +
          '13,2,C,2.00,2024-02-01 00:00:00\n',
      );
      await p.runOk();
      // Ann moves on 2024-03-01; an order after that.
      await p.write(
        'data/customers.csv',
        'id,name,address,updated_at\n1,Ann,New Road 9,2024-03-01 00:00:00\n2,Bob,Elm 2,2024-01-01 00:00:00\n',
      );
      await p.touch('data/customers.csv');
      await p.write(
        'data/orders/2.csv',
        'order_id,customer_id,sku,amount,ordered_at\n14,1,B,3.00,2024-04-01 12:00:00\n15,1,A,4.00,2024-02-29 23:59:59\n',
      );
      const run = await p.runOk();
      assert.equal(run.status, 'succeeded');

      const facts = await p.rows(`
        SELECT f.order_id, f.customer_key, c.address, f.product_key, d.date_key, d.is_weekend, t.time_key
        FROM gold.fact_orders f
        LEFT JOIN gold.dim_customer c USING (customer_key)
        LEFT JOIN gold.dim_date d USING (date_key)
        LEFT JOIN gold.dim_time t USING (time_key)
        ORDER BY order_id`);
      assert.deepEqual(
        facts.map((r) => [
          Number(r['order_id']),
          Number(r['customer_key']) < 0 ? Number(r['customer_key']) : r['address'],
          Number(r['date_key']),
          Number(r['time_key']),
        ]),
        [
          [10, 'Old Street 1', 20240115, 930],
          [11, -1, 20240116, 1805],
          [12, -2, 20240117, 2359],
          [13, 'Elm 2', 20240201, 0],
          [14, 'New Road 9', 20240401, 1200],
          [15, 'Old Street 1', 20240229, 2359],
        ],
      );
      // Product C is unknown; products keep sequence keys.
      assert.deepEqual(
        facts.map((r) => Number(r['product_key'])),
        [1, 2, 1, -1, 2, 1],
      );
      const lake = await p.lake();
      const [report] = await lake.catalog.listQualityReports('gold.fact_orders');
      const checks = (report?.report['checks'] ?? []) as { name: string; failed: number; passed: boolean }[];
      assert.deepEqual(
        checks.map((c) => [c.name, c.failed, c.passed]),
        [
          ['grain', 0, true],
          ['lookup_customer_key', 1, false],
          ['lookup_product_key', 1, false],
          ['lookup_date_key', 0, true],
          ['lookup_time_key', 0, true],
        ],
      );
      assert.equal(report?.status, 'warned');
      assert.equal(await p.num(`SELECT count(*) FROM gold.dim_customer WHERE customer_key IN (-1, -2)`), 2);
      assert.equal(await p.num(`SELECT count(*) FROM gold.dim_customer WHERE id = 1`), 2);

      // Date dimension: weekend, ISO week across the year end, fiscal year from April, holidays.
      const days =
        await p.rows(`SELECT date_key, is_weekend, iso_week, iso_year, fiscal_year, fiscal_month, fiscal_quarter, is_holiday, holiday_name
        FROM gold.dim_date WHERE date_key IN (20240106, 20241230, 20240401, 20240331, 20241225) ORDER BY date_key`);
      assert.deepEqual(
        days.map((r) => Object.values(r).map((v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v))),
        [
          [20240106, true, 1, 2024, 2024, 10, 4, false, null],
          [20240331, true, 13, 2024, 2024, 12, 4, false, null],
          [20240401, false, 14, 2024, 2025, 1, 1, false, null],
          [20241225, false, 52, 2024, 2025, 9, 3, true, 'Christmas Day'],
          [20241230, false, 1, 2025, 2025, 9, 3, false, null],
        ],
      );
      assert.equal(await p.count('gold.dim_date'), 366 + 2);
      assert.equal(await p.count('gold.dim_time'), 1440 + 2);

      // Sequence keys are kept across a full rebuild; a new product continues after the largest.
      await p.write('data/products.csv', 'sku,title\n0,Zucchini\nA,Apple\nB,Banana\n');
      await p.touch('data/products.csv', new Date(Date.now() + 60_000));
      await p.runOk();
      await buildModels(lake, { models: ['dim_product'], fullRefresh: true });
      assert.deepEqual(
        (await p.rows(`SELECT sku, product_key FROM gold.dim_product WHERE product_key > 0 ORDER BY sku`)).map((r) => [
          r['sku'],
          Number(r['product_key']),
        ]),
        [
          ['0', 3],
          ['A', 1],
          ['B', 2],
        ],
      );

      // The grain is checked: a second row for order 14 fails the fact build, nothing committed.
      const before = (await lake.catalog.getTable('gold.fact_orders'))?.headCommit;
      await p.write(
        'data/orders/3.csv',
        'order_id,customer_id,sku,amount,ordered_at\n14,2,A,1.00,2024-05-01 10:00:00\n',
      );
      const failed = await p.run();
      assert.equal(failed.status, 'failed');
      assert.match(
        failed.errors[0]?.message ?? '',
        /gold\.fact_orders: data quality checks failed, nothing was committed:\n {2}gold\.fact_orders: grain/,
      );
      assert.equal((await lake.catalog.getTable('gold.fact_orders'))?.headCommit, before);
    } finally {
      await p.dispose();
    }
  });
});
