import type { CheckConfig, CheckType } from '../../config/silver.js';
import type { Engine } from '../../lake/engine.js';
import type { CheckResult, Severity } from '../report.js';

/** A silver column the checks run over: its name and DuckDB type (as DESCRIBE prints it). */
export interface SilverColumn {
  name: string;
  type: string;
}

export interface CompiledRowCheck {
  /** Config name, or `<type>_<column(s)>` / `expression_<n>`; unique within the table (`_2`, `_3` on clashes). */
  name: string;
  type: CheckType;
  severity: Severity;
  mostly: number;
  /** Rows needed before `mostly` is judged (default 0). */
  minRows?: number | undefined;
  /** What `mostly` judges: every row since the last full build (table, the default) or this build's rows (batch). */
  scope?: 'table' | 'batch' | undefined;
  /** The table, as given to compileChecks (messages start with it). */
  table: string;
  /** Silver columns the check reads (for expression: the ones found in it). */
  columns: string[];
  /** SQL boolean over the row's columns: TRUE when the row FAILS; never NULL. */
  failSql: string;
  /** SQL VARCHAR: why the row failed, naming column and value, e.g. `views = -3 is below min 0`. Meant for failing rows only. */
  reasonSql: string;
  /** SQL of the offending value as VARCHAR (NULL for not_null; `col = value, …` for expression). */
  valueSql: string;
}

export interface CompiledTableCheck {
  name: string;
  type: CheckType;
  severity: Severity;
  mostly: number;
  minRows?: number | undefined;
  table: string;
  /** Resolved silver column names (unique, freshness); empty for the others. */
  columns: string[];
  config: CheckConfig;
}

export interface CompiledChecks {
  row: CompiledRowCheck[];
  table: CompiledTableCheck[];
}

/** Where a check is compiled: its table, its name and the table's columns (for messages and lookups). */
export interface Where {
  table: string;
  check: string;
  columns: readonly SilverColumn[];
}

export type RowParts = Pick<CompiledRowCheck, 'columns' | 'failSql' | 'reasonSql' | 'valueSql'>;

export interface TableCheckContext {
  /** The clock (tests pass a fixed one). */
  now: Date;
  /** Rows this run added. */
  newRows: number;
  /** New-row counts of previous runs, oldest first. */
  history: readonly number[];
  /** The silver table's columns (name, DuckDB type). */
  columns: readonly SilverColumn[];
  /** The table's row count when the caller knows it (a merge-on-read table's, from its file meta): no count query. */
  rows?: number | undefined;
}

export type TableOutcome = Pick<CheckResult, 'evaluated' | 'failed' | 'message' | 'samples'>;

/** The config of checks of type `T`. */
export type CheckOf<T extends CheckType> = Extract<CheckConfig, { type: T }>;

/** A row-level check kind: compiled to SQL over a row's values, evaluated in the silver pass. */
export interface RowCheckKind<T extends CheckType = CheckType> {
  type: T;
  level: 'row';
  /** The name of a check without one (`expressionNo`: how many expression checks so far, this one included). */
  defaultName(check: CheckOf<T>, expressionNo: number): string;
  compile(
    where: Where,
    check: CheckOf<T>,
    refRelation: (table: string, field: string) => Promise<string>,
  ): RowParts | Promise<RowParts>;
}

/** A table-level check kind: validated when compiled, evaluated against the written silver output. */
export interface TableCheckKind<T extends CheckType = CheckType> {
  type: T;
  level: 'table';
  defaultName(check: CheckOf<T>, expressionNo: number): string;
  /** Validates the config against the table; returns the resolved column names the check reads. */
  compile(where: Where, check: CheckOf<T>): string[];
  evaluate(
    engine: Engine,
    relationSql: string,
    check: CompiledTableCheck,
    cfg: CheckOf<T>,
    ctx: TableCheckContext,
    rowCount: () => Promise<number>,
  ): Promise<TableOutcome>;
}

export type CheckKind<T extends CheckType = CheckType> = RowCheckKind<T> | TableCheckKind<T>;
