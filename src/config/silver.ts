/**
 * Over 400 lines: the zod schema of `silver:`: declarations with descriptions, not logic.
 *
 * The bronze → silver step of a pipeline (`silver:` in dip.yaml): per silver table, which
 * bronze table it refines and how — standardization, nested JSON, dedup, derived columns,
 * joins, PII masks, the schema contract and data quality checks. Project-wide privacy
 * settings (hash salt, token vault, PII detection) are `privacy:` at the top of dip.yaml.
 */
import { z } from 'zod';
import { duration, identifier } from './primitives.js';

export const schemaContractMode = z
  .enum(['evolve', 'freeze', 'discard_row', 'discard_value'])
  .describe(
    'evolve: accept the change (new columns, safe widening); freeze: fail the run; discard_row: quarantine rows that carry the change; discard_value: drop the offending value (null) and keep the row',
  );

export const schemaContractSchema = z
  .union([
    schemaContractMode,
    z.strictObject({
      columns: schemaContractMode.default('evolve').describe('New columns'),
      data_type: schemaContractMode
        .default('evolve')
        .describe('Values whose type differs from the column type in force'),
    }),
  ])
  .describe('What a schema change in the bronze input does to the silver table');

export const maskPolicySchema = z
  .union([
    z
      .enum(['hash', 'last4', 'email', 'redact', 'tokenize', 'null'])
      .describe(
        'hash: salted SHA-256 (hex; equal inputs give equal outputs, so joins still work); last4: every digit but the last 4 replaced by *; email: local part masked (j***@example.com); redact: letters → x/X, digits → 9, punctuation kept (format-preserving); tokenize: reversible token, the value kept encrypted in the token vault; null: the value removed',
      ),
    z
      .strictObject({
        partial: z.strictObject({
          keep_first: z.number().int().min(0).default(0).describe('Characters kept at the start'),
          keep_last: z.number().int().min(0).default(4).describe('Characters kept at the end'),
          char: z.string().length(1).default('*').describe('Replacement character'),
        }),
      })
      .describe('Partial mask: keep some characters at both ends, replace the rest'),
  ])
  .describe('How a PII column is masked before it reaches silver');

export const piiKindSchema = z
  .enum(['email', 'phone', 'card', 'ssn', 'ip', 'name', 'address', 'other'])
  .describe('What kind of personal data a column holds');

export const silverColumnSchema = z
  .strictObject({
    from: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Input column (after flattening and renaming) or SQL expression this column is computed from; default: the column of the same name',
      ),
    type: z
      .string()
      .min(1)
      .optional()
      .describe('DuckDB type to cast to: BIGINT, DECIMAL(12,2), DATE, TIMESTAMPTZ, VARCHAR, BOOLEAN, …'),
    format: z
      .string()
      .min(1)
      .optional()
      .describe('strptime format used to parse text into DATE / TIMESTAMP / TIMESTAMPTZ, e.g. %d/%m/%Y %H:%M'),
    timezone: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Zone of timestamps that carry no offset (IANA name); they are converted to UTC. Default: the table timezone',
      ),
    keep_offset: z.boolean().optional().describe('Also keep the original UTC offset in <column>_offset (e.g. +02:00)'),
    trim: z.boolean().optional().describe('Trim whitespace (default: the table setting)'),
    empty_as_null: z.boolean().optional().describe('Empty strings become null (default: the table setting)'),
    case: z.enum(['lower', 'upper']).optional().describe('Change the case of text values'),
    map: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]))
      .optional()
      .describe('Value mapping, e.g. {A: active, I: inactive}; unmapped values are kept'),
    pii: z
      .union([z.boolean(), piiKindSchema])
      .optional()
      .describe('The column holds personal data; it must have a mask'),
    mask: maskPolicySchema.optional(),
    contract: schemaContractMode
      .optional()
      .describe("What a value of another type does to this column (overrides the table's data_type contract)"),
    drop: z.boolean().optional().describe('Leave this column out of the silver table'),
  })
  .describe('One silver column: source, type, standardization and mask');

const checkBase = {
  name: z.string().min(1).optional().describe('Name in reports and quarantine (default: <type>_<column>)'),
  severity: z
    .enum(['warn', 'error'])
    .default('error')
    .describe(
      'error: rows failing go to quarantine, and a breach fails the run without committing; warn: reported only',
    ),
  mostly: z
    .number()
    .min(0)
    .max(1)
    .default(1)
    .describe('Share of rows that must pass (0.99: up to 1% may fail and are quarantined)'),
  min_rows: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe(
      'Rows needed before `mostly` is judged (default 0): with fewer rows evaluated in the scope the check passes; failing rows of an error check still go to quarantine',
    ),
  scope: z
    .enum(['table', 'batch'])
    .optional()
    .describe(
      'Row checks: what `mostly` and `min_rows` are judged over. table (default): every row evaluated since the last full build, so incremental builds reach the verdict a full build of the same data reaches; batch: only the rows of this build',
    ),
};

const columnOrColumns = {
  column: z.string().min(1).optional(),
  columns: z.array(z.string().min(1)).min(1).optional(),
};

export const checkSchema = z
  .discriminatedUnion('type', [
    z
      .strictObject({ type: z.literal('not_null'), ...checkBase, ...columnOrColumns })
      .describe('Values must be present'),
    z
      .strictObject({ type: z.literal('unique'), ...checkBase, ...columnOrColumns })
      .describe('No two rows of the silver table share these values'),
    z
      .strictObject({
        type: z.literal('accepted_values'),
        ...checkBase,
        column: z.string().min(1),
        values: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1),
      })
      .describe('Values must be one of a list (nulls pass; add not_null for them)'),
    z
      .strictObject({
        type: z.literal('range'),
        ...checkBase,
        column: z.string().min(1),
        min: z.union([z.number(), z.string()]).optional(),
        max: z.union([z.number(), z.string()]).optional(),
        exclusive: z.boolean().default(false).describe('Bounds themselves fail'),
      })
      .describe('Values within bounds (numbers, or dates/timestamps as ISO text)'),
    z
      .strictObject({
        type: z.literal('format'),
        ...checkBase,
        column: z.string().min(1),
        format: z.enum(['email', 'url', 'uuid', 'ipv4', 'ipv6', 'phone', 'iso_date', 'iso_timestamp']),
      })
      .describe('Text values must have a well-known format'),
    z
      .strictObject({ type: z.literal('regex'), ...checkBase, column: z.string().min(1), pattern: z.string().min(1) })
      .describe('Text values must match a regular expression (RE2 syntax, whole value)'),
    z
      .strictObject({
        type: z.literal('relationships'),
        ...checkBase,
        column: z.string().min(1),
        to: z
          .string()
          .regex(/^(silver|bronze|gold)\.[a-z_][a-z0-9_]*$/, 'expected a table such as silver.authors')
          .describe('Referenced table'),
        field: z.string().min(1).describe('Referenced column'),
      })
      .describe('Every value exists in another table (foreign key); nulls pass'),
    z
      .strictObject({
        type: z.literal('expression'),
        ...checkBase,
        expression: z.string().min(1).describe('SQL condition each row must meet, e.g. likes <= views'),
      })
      .describe('A custom row condition'),
    z
      .strictObject({
        type: z.literal('row_count'),
        ...checkBase,
        min: z.number().int().min(0).optional(),
        max: z.number().int().min(0).optional(),
      })
      .describe('Bounds on the number of rows in the silver table'),
    z
      .strictObject({
        type: z.literal('freshness'),
        ...checkBase,
        column: z.string().min(1),
        max_age: duration.describe('Newest value must be at most this old'),
      })
      .describe('The newest timestamp in a column is recent enough'),
    z
      .strictObject({
        type: z.literal('schema'),
        ...checkBase,
        columns: z
          .record(z.string(), z.string())
          .describe('Columns that must exist, with their DuckDB type (use "any" to check presence only)'),
        exact: z.boolean().default(false).describe('No other columns allowed (audit columns excepted)'),
      })
      .describe('The silver table has these columns and types'),
    z
      .strictObject({
        type: z.literal('volume_anomaly'),
        ...checkBase,
        max_z: z
          .number()
          .positive()
          .default(3)
          .describe('Largest accepted |z-score| of this run’s new rows against previous runs'),
        min_history: z.number().int().min(2).default(5).describe('Runs needed before the check judges'),
        window: z.number().int().min(2).default(30).describe('How many previous runs form the baseline'),
      })
      .describe('The number of new rows this run is not an outlier against the history of previous runs'),
  ])
  .describe('A data quality check');

export const childTableSchema = z
  .strictObject({
    expression: z
      .string()
      .min(1)
      .describe("SQL expression giving a LIST per row, e.g. regexp_extract_all(caption, '#(\\w+)', 1)"),
    column: identifier.default('value').describe('Column name of the list elements in the child table'),
  })
  .describe('A child table derived from an expression');

export const joinSchema = z
  .strictObject({
    alias: identifier.describe('Name the joined table is referred to by in `on` and `columns`'),
    table: z
      .string()
      .regex(/^(silver|bronze|gold)\.[a-z_][a-z0-9_]*$/, 'expected a table such as silver.authors')
      .optional()
      .describe('A lake table'),
    file: z
      .string()
      .min(1)
      .optional()
      .describe('A static reference file (CSV, JSON, NDJSON or Parquet), relative to the project'),
    on: z
      .string()
      .min(1)
      .describe(
        'Join condition, e.g. a.id = s.author_id (the silver row is `s`; unqualified names that both sides have are ambiguous)',
      ),
    columns: z
      .record(identifier, z.string().min(1))
      .describe('Columns added: name → SQL over the joined table, e.g. {author_country: a.country}'),
  })
  .refine((j) => (j.table === undefined) !== (j.file === undefined), { message: 'set exactly one of table or file' })
  .describe('A left join that adds columns; the joined side must be unique on the join key');

export const silverTableSchema = z
  .strictObject({
    from: z.string().min(1).describe('Bronze table refined into this one (its name, e.g. posts, or bronze.posts)'),
    description: z.string().optional(),
    primary_key: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Silver columns identifying a record: rows are deduplicated and merged by it'),
    dedup: z
      .strictObject({
        sort_by: z
          .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
          .optional()
          .describe('Column(s) whose greatest value is the latest record (default: arrival order)'),
        deleted_column: z
          .string()
          .min(1)
          .optional()
          .describe('Boolean column: when the latest record has it true the key is deleted from silver'),
      })
      .optional()
      .describe('Keep the latest record per primary key'),
    naming: z
      .enum(['snake_case', 'keep'])
      .default('snake_case')
      .describe('Column names as snake_case (default) or as the source wrote them'),
    trim: z.boolean().default(true).describe('Trim whitespace around text values'),
    empty_as_null: z.boolean().default(false).describe('Empty strings become null'),
    timezone: z.string().default('UTC').describe('Zone of naive timestamps (IANA name); every timestamp lands as UTC'),
    nested: z
      .strictObject({
        max_depth: z
          .number()
          .int()
          .min(0)
          .default(3)
          .describe('Objects are flattened into parent__child columns to this depth; deeper objects stay JSON'),
        arrays: z
          .enum(['child_table', 'json', 'list'])
          .default('child_table')
          .describe(
            'child_table: <table>__<column> linked by _dip_parent_id/_dip_list_idx; json: a JSON column; list: a LIST column',
          ),
      })
      .default({ max_depth: 3, arrays: 'child_table' }),
    contract: schemaContractSchema.default('evolve'),
    columns: z
      .record(z.string(), silverColumnSchema)
      .default({})
      .describe(
        'Per-column settings, by silver column name; `<child>.<column>` (e.g. contacts.email) masks a column of a child table',
      ),
    exclude_columns: z.array(z.string().min(1)).default([]).describe('Input columns left out of silver'),
    derive: z
      .record(identifier, z.string().min(1))
      .default({})
      .describe('Derived columns: name → SQL expression over silver columns, e.g. (likes+comments)/nullif(views,0)'),
    joins: z.array(joinSchema).default([]),
    children: z
      .record(identifier, childTableSchema)
      .default({})
      .describe('Child tables derived from expressions, named <table>__<name>'),
    checks: z.array(checkSchema).default([]),
    compaction: z
      .strictObject({
        delta_ratio: z
          .number()
          .min(0)
          .default(0.25)
          .describe(
            'Compact after a build once the rows in upsert and delete files reach this share of the base file (0: after every build)',
          ),
        max_builds: z
          .number()
          .int()
          .min(1)
          .default(16)
          .describe('Compact after a build once this many builds have added upsert and delete files'),
      })
      .optional()
      .describe(
        'Merge-on-read of a table with a primary key: builds add the changed rows and a delete file; past these limits they are folded into a new base file (default 0.25 and 16)',
      ),
  })
  .describe('A silver table: a bronze table refined');

export const vaultSchema = z
  .strictObject({
    path: z.string().default('.dip/vault.db').describe('SQLite file of the token vault (outside the lake)'),
    key: z
      .string()
      .min(1)
      .describe(
        'Secret tokens are derived from (pipeline runners need it; it does not decrypt the vault); use ${env:NAME}',
      ),
    roles: z
      .record(
        identifier,
        z.strictObject({
          public_key: z
            .string()
            .min(1)
            .optional()
            .describe(
              "X25519 public key (PEM) the role's values are encrypted for: a file path relative to dip.yaml, ${file:…}, ${env:…} or the PEM text; `dip vault keygen --role <name>` writes one",
            ),
          private_key: z
            .string()
            .min(1)
            .optional()
            .describe(
              "Where the role's private key is, for `dip vault detokenize --role`: ${file:…} or ${env:…}; resolved only there (runners do not need it)",
            ),
          secret: z
            .string()
            .min(1)
            .optional()
            .describe("Deprecated: no longer grants anything; detokenize needs the role's private key"),
        }),
      )
      .default({})
      .describe('Roles that may detokenize: each holds the private key of its public_key'),
  })
  .describe('Token vault for the tokenize mask');

export const piiDetectLevel = z.enum(['off', 'warn', 'error']);

export const privacySchema = z
  .strictObject({
    salt: z
      .string()
      .min(16)
      .optional()
      .describe('Salt for hash masks (use ${env:NAME}); default: a random salt kept in .dip/pii-salt'),
    quarantine_key: z
      .string()
      .min(16)
      .optional()
      .describe(
        'Key that seals (encrypts) the input columns of masked columns in quarantined rows (use ${env:NAME}); default: a random key kept in .dip/quarantine-key',
      ),
    vault: vaultSchema.optional(),
    detect: z
      .union([
        piiDetectLevel,
        z
          .strictObject({
            default: piiDetectLevel.optional().describe('Level of the kinds not listed (default warn)'),
            email: piiDetectLevel.optional(),
            phone: piiDetectLevel.optional(),
            card: piiDetectLevel.optional().describe('Default error'),
            ssn: piiDetectLevel.optional(),
            ip: piiDetectLevel.optional(),
          })
          .describe('A level per detected kind'),
      ])
      .default('warn')
      .describe(
        'Columns that look like PII (email, phone, card numbers passing Luhn, SSN, IP) but have no mask: warn, fail the build (error) or off. warn (the default) fails the build on Luhn-valid card numbers all the same; set {card: warn} to only warn about them',
      ),
  })
  .describe('Privacy: hashing salt, token vault and PII detection');

export type SchemaContractMode = z.infer<typeof schemaContractMode>;
export type SchemaContractConfig = z.infer<typeof schemaContractSchema>;
export type MaskPolicy = z.infer<typeof maskPolicySchema>;
export type PiiKind = z.infer<typeof piiKindSchema>;
export type SilverColumnConfig = z.infer<typeof silverColumnSchema>;
export type CheckConfig = z.infer<typeof checkSchema>;
export type CheckType = CheckConfig['type'];
export type ChildTableConfig = z.infer<typeof childTableSchema>;
export type JoinConfig = z.infer<typeof joinSchema>;
export type SilverTableConfig = z.infer<typeof silverTableSchema>;
export type VaultConfig = z.infer<typeof vaultSchema>;
export type PrivacyConfig = z.infer<typeof privacySchema>;
export type PiiDetectLevel = z.infer<typeof piiDetectLevel>;
export type PiiDetectConfig = PrivacyConfig['detect'];
