import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../core/private-files.js';

/** Deterministic pseudo-random numbers, so the sample data is the same on every machine. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const CITIES = ['Lisbon', 'Porto', 'Berlin', 'Lyon', 'Austin', 'Osaka', 'Leeds', 'Turin'];
const PRODUCTS = [
  ['P-100', 'Espresso beans 1kg', 'coffee', 24.5],
  ['P-101', 'Filter beans 1kg', 'coffee', 21.0],
  ['P-200', 'Ceramic dripper', 'gear', 32.0],
  ['P-201', 'Gooseneck kettle', 'gear', 79.9],
  ['P-300', 'Paper filters x100', 'supplies', 6.5],
] as const;

export const PROJECT_YAML = `# DIP project. Run \`dip run\`, then \`dip query "select * from bronze.orders limit 5"\`.
# Editors: the JSON Schema for this file is schema/dip.schema.json in the dip package.
version: 1
project: demo
storage: { kind: local, path: .dip/lake }       # or { kind: s3, bucket: …, endpoint: … }: README, Scaling out
catalog: { kind: sqlite, path: .dip/catalog.db }  # or { kind: postgres, url: \${env:DIP_CATALOG_URL} }
pipelines:
  shop:
    description: Orders, customers and products from the shop's nightly exports
    schedule: "0 2 * * *"
    sources:
      exports:
        type: files
        streams:
          orders:
            path: data/orders/*.csv
            write_disposition: append      # new files are added; files already landed are skipped
            primary_key: [order_id]
          customers:
            path: data/customers/*.ndjson
            write_disposition: merge       # upsert by key; deleted: true removes the customer
            primary_key: [customer_id]
            deleted_column: deleted
          products:
            path: data/products.json
            write_disposition: replace     # the table always equals the latest file
    silver:                                # bronze → silver after every run: typed, deduplicated, masked, checked
      customers:
        from: customers
        primary_key: [customer_id]
        columns:
          email: { pii: email, mask: hash }      # salted SHA-256: still joins, never readable
        checks:
          - { type: not_null, column: customer_id }
          - { type: format, column: email, format: email }
      orders:
        from: orders
        primary_key: [order_id]
        dedup: { sort_by: ordered_at }
        columns:
          ordered_at: { type: TIMESTAMPTZ, timezone: Europe/Lisbon }   # local shop time → UTC
          status: { map: { paid: PAID, refunded: REFUNDED } }
        derive: { amount: "round(quantity * unit_price, 2)" }
        checks:
          - { type: accepted_values, column: status, values: [PAID, REFUNDED] }
          - { type: range, column: quantity, min: 1, max: 100, mostly: 0.99 }   # up to 1% may go to quarantine
          - { type: relationships, column: customer_id, to: silver.customers, field: customer_id, severity: warn }
`;

/** The demo's gold models of the shop pipeline, appended to PROJECT_YAML (inside the shop pipeline) by `dip demo`. */
export const SHOP_GOLD_YAML = `    gold:                                  # modeled after silver (or \`dip build\`): a small star schema
      dim_customer:                        # SCD2: each change of a customer's address is a version
        kind: scd2
        from: silver.customers
        unique_key: [customer_id]
        strategy: check
        check_cols: [address__city, address__postcode]
        first_valid_from: "2000-01-01"     # orders older than the first snapshot still find the customer
        surrogate_key: { name: customer_key }
      dim_product:
        kind: dimension
        from: bronze.products
        natural_key: [product_id]
        surrogate_key: { name: product_key, strategy: sequence }   # keys kept across rebuilds
      dim_date: { kind: date_dimension, start: "2026-01-01", end: "2026-12-31" }
      fact_orders:                         # orders with the customer version valid when they were placed
        kind: fact
        from: silver.orders
        grain: [order_id]
        lookups:
          - { dimension: dim_customer, key: { customer_id: customer_id }, at: ordered_at }
          - { dimension: dim_product, key: { product_id: product_id } }
          - { dimension: dim_date, key: { date: "CAST(ordered_at AS DATE)" } }
      revenue_by_city:                     # a SQL model: the SELECT is in models/revenue_by_city.sql
        description: Paid revenue per customer city
        columns: { city: The customer's city, revenue: Sum of paid order amounts }
      daily_revenue:                       # an aggregate: only the days new orders touch are recomputed
        kind: aggregate
        from: silver.orders
        group_by: { day: "CAST(ordered_at AS DATE)", product_id: product_id }
        measures: { revenue: "round(sum(amount), 2)", orders: "count(*)" }
`;

export const REVENUE_BY_CITY_SQL = `-- Paid revenue per customer city (a gold SQL model; its inputs come from the tables it names)
SELECT c.address__city AS city, round(sum(o.amount), 2) AS revenue, count(*) AS orders
FROM silver.orders AS o JOIN silver.customers AS c USING (customer_id)
WHERE o.status = 'PAID'
GROUP BY ALL
ORDER BY revenue DESC
`;

/** The demo's REST pipeline against the social metrics emulator at `baseUrl`. */
export function socialPipelineYaml(baseUrl: string, clientId: string): string {
  return `  social:
    description: Posts and comments from a social metrics API (started by \`dip demo\`; or run \`dip emulate social-api\`)
    sources:
      api:
        type: rest
        base_url: ${baseUrl}
        auth:
          type: oauth2_client_credentials
          token_url: /oauth/token
          client_id: ${clientId}
          client_secret: \${env:SOCIAL_CLIENT_SECRET}
        http: { concurrency: { max: 8 } }
        defaults:
          records: $.data
          paginator: { type: cursor, cursor_path: $.paging.next_cursor, param: cursor, has_more_path: $.paging.has_more }
        resources:
          posts:
            params: { limit: 100 }
            primary_key: [id]
            write_disposition: merge                            # changed posts replace their old version
            incremental: { cursor_field: updated_at, param: since }  # next run asks only for what changed
          comments:
            path: /posts/{parent.id}/comments                   # one listing per post fetched in this run
            params: { limit: 100 }
            parent: { resource: posts, fields: { post_id: id } }
            primary_key: [id]
            write_disposition: merge
    silver:
      posts:
        from: posts
        primary_key: [id]
        dedup: { sort_by: updated_at }
        columns:
          created_at: { type: TIMESTAMPTZ }
          updated_at: { type: TIMESTAMPTZ }
          author__handle: { pii: name, mask: hash }
        derive: { engagement_rate: "round((metrics__likes + metrics__comments + metrics__shares) / nullif(metrics__views, 0), 4)" }
        checks:
          - { type: not_null, columns: [id, created_at] }
          - { type: range, column: metrics__views, min: 0 }
`;
}

function ordersCsv(day: number, rows: number, withCoupon: boolean, seed: number): string {
  const r = rng(seed);
  const header = ['order_id', 'customer_id', 'product_id', 'quantity', 'unit_price', 'ordered_at', 'status'];
  if (withCoupon) header.push('coupon');
  const lines = [header.join(',')];
  for (let i = 0; i < rows; i++) {
    const product = PRODUCTS[Math.floor(r() * PRODUCTS.length)] ?? PRODUCTS[0];
    const ts = new Date(Date.UTC(2026, 10, day, Math.floor(r() * 24), Math.floor(r() * 60), Math.floor(r() * 60)));
    const fields = [
      String(day * 100_000 + i),
      `C-${1000 + Math.floor(r() * 40)}`,
      product[0],
      String(1 + Math.floor(r() * 4)),
      product[3].toFixed(2),
      ts.toISOString().replace('T', ' ').slice(0, 19),
      r() < 0.9 ? 'paid' : 'refunded',
    ];
    if (withCoupon) fields.push(r() < 0.2 ? `"WELCOME, ${Math.floor(r() * 30)}%"` : '');
    lines.push(fields.join(','));
  }
  return `${lines.join('\n')}\n`;
}

function customersNdjson(from: number, to: number, seed: number, extra: string[] = []): string {
  const r = rng(seed);
  const lines: string[] = [];
  for (let i = from; i < to; i++) {
    lines.push(
      JSON.stringify({
        customer_id: `C-${1000 + i}`,
        name: `Customer ${i}`,
        email: `customer${i}@example.com`,
        address: { city: CITIES[Math.floor(r() * CITIES.length)], postcode: String(10000 + Math.floor(r() * 89999)) },
        tags: r() < 0.5 ? ['newsletter'] : [],
        deleted: false,
      }),
    );
  }
  return `${[...lines, ...extra].join('\n')}\n`;
}

/** Writes a working sample project: dip.yaml plus a few days of shop exports. */
export async function scaffoldProject(dir: string): Promise<string[]> {
  const files: Record<string, string> = {
    'dip.yaml': PROJECT_YAML,
    'data/orders/orders-2026-11-01.csv': ordersCsv(1, 400, false, 1),
    // a later export gains a column (schema evolution) and carries two malformed rows (quarantine)
    'data/orders/orders-2026-11-02.csv':
      ordersCsv(2, 400, true, 2) +
      '200400,C-1003,P-100,three,24.50,2026-11-02 10:00:00,paid,\n200401,C-1004,P-101,1,21.00,2026-11-02 11:00:00,paid,,unexpected\n',
    'data/customers/customers-2026-11-01.ndjson': customersNdjson(0, 40, 3),
    'data/products.json': `${JSON.stringify(
      PRODUCTS.map(([id, name, category, price]) => ({ product_id: id, name, category, price, active: true })),
      null,
      2,
    )}\n`,
    '.gitignore': '.dip/\n',
  };
  for (const [rel, content] of Object.entries(files)) {
    const full = join(dir, rel);
    await mkdirPrivate(join(full, '..'));
    await writeFile(full, content, { flag: 'wx', mode: PRIVATE_FILE_MODE }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  return Object.keys(files);
}

/** The next day's exports: one more orders file and customer updates, one of them a delete. */
export async function addNextDay(dir: string): Promise<string[]> {
  const files: Record<string, string> = {
    'data/orders/orders-2026-11-03.csv': ordersCsv(3, 400, true, 4),
    'data/customers/customers-2026-11-03.ndjson': customersNdjson(35, 45, 5, [
      JSON.stringify({
        customer_id: 'C-1001',
        name: 'Customer 1',
        email: 'customer1@example.com',
        address: { city: 'Lisbon', postcode: '10001' },
        tags: [],
        deleted: true,
      }),
    ]),
  };
  for (const [rel, content] of Object.entries(files))
    await writeFile(join(dir, rel), content, { mode: PRIVATE_FILE_MODE });
  return Object.keys(files);
}
