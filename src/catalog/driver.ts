/**
 * The few SQL operations the catalog needs, so one catalog implementation serves every
 * database. Statements use `?` placeholders; drivers translate them to their dialect.
 */
export type SqlValue = string | number | bigint | null;
export type Row = Record<string, unknown>;

export interface SqlExecutor {
  query<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  execute(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: 'sqlite' | 'postgres';
  /** SQL expression for the database's current time as ISO-8601 UTC text with milliseconds. */
  readonly nowSql: string;
  /**
   * Runs `fn` in one transaction that serializes with every other catalog transaction
   * (SQLite BEGIN IMMEDIATE, PostgreSQL an exclusive lock on the commit table), so commit
   * ids become visible in order.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
