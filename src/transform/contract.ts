/**
 * The schema contract of a silver table: what a build does when its rows do not fit the
 * schema in force — new columns, and values of another type. Safe widening (int → bigint →
 * double, …) is an evolution; a value that fits no common type fails the run with the old and
 * new type and where the first such record came from, unless the contract discards it.
 */
import type { TableSchema } from '../catalog/types.js';
import type { SchemaContractMode, SilverTableConfig } from '../config/silver.js';
import { SchemaChangeError } from '../core/errors.js';
import type { Engine } from '../lake/engine.js';
import { commonType } from '../lake/duck-types.js';
import { ident, lit } from '../lake/sql.js';
import type { CompiledRowCheck } from '../quality/checks.js';
import { POSITION_COLUMNS, type SilverPlan } from './plan.js';

export interface ContractResult {
  /** Row checks the contract adds (discard_row): failing rows go to quarantine. */
  checks: CompiledRowCheck[];
  /** Accepted changes, as text for warnings and the report. */
  changes: string[];
  /** Columns left out of this build (discard_value / discard_row on new columns). */
  dropped: string[];
}

export function contractModes(config: SilverTableConfig): {
  columns: SchemaContractMode;
  dataType: SchemaContractMode;
} {
  const c = config.contract;
  return typeof c === 'string' ? { columns: c, dataType: c } : { columns: c.columns, dataType: c.data_type };
}

export async function applyContract(
  engine: Engine,
  input: { table: string; plan: SilverPlan; clear: string; current: TableSchema; config: SilverTableConfig },
): Promise<ContractResult> {
  const { table, plan, clear, current, config } = input;
  const modes = contractModes(config);
  const existing = new Map(current.columns.filter((c) => !c.name.startsWith('_dip_')).map((c) => [c.name, c.type]));
  const out: ContractResult = { checks: [], changes: [], dropped: [] };

  const firstRecord = async (condition: string, column: string) => {
    const rows = await engine.all(
      `SELECT ${POSITION_COLUMNS.file} AS file, ${POSITION_COLUMNS.row} AS row, _dip_source_file AS source, CAST(${ident(column)} AS VARCHAR) AS value, count(*) OVER () AS n
       FROM ${clear} WHERE ${condition} LIMIT 1`,
    );
    const r = rows[0];
    return r
      ? {
          n: Number(r['n']),
          text: `value ${JSON.stringify(r['value'])} at row ${String(r['row'])} of ${String(r['file'])} (source file ${String(r['source'])})`,
        }
      : undefined;
  };

  for (const col of plan.columns) {
    const outType = plan.masked.has(col.name) ? 'VARCHAR' : col.type;
    const before = existing.get(col.name);
    if (before === undefined) {
      const offending = await firstRecord(`${ident(col.name)} IS NOT NULL`, col.name);
      switch (modes.columns) {
        case 'evolve':
          out.changes.push(`new column ${col.name} ${outType}`);
          break;
        case 'freeze':
          throw new SchemaChangeError(
            `${table}: new column ${col.name} (${outType}) but the schema contract is freeze${offending ? `; first record: ${offending.text}` : ''}. Allow it with contract: evolve, or drop it with columns.${col.name}.drop`,
            { table, column: col.name, type: outType },
          );
        case 'discard_value':
          out.dropped.push(col.name);
          if (offending) out.changes.push(`new column ${col.name} discarded (${offending.n} values dropped)`);
          break;
        case 'discard_row':
          out.dropped.push(col.name);
          out.checks.push(
            contractCheck(
              table,
              `contract_new_column_${col.name}`,
              `${ident(col.name)} IS NOT NULL`,
              `${col.name} is a new column (${outType}) and the contract discards rows that carry it`,
              col.name,
            ),
          );
          break;
      }
      continue;
    }
    if (before === outType) continue;
    const common = commonType(before, outType);
    if (common === before) continue; // narrower values fit the column as it is
    const mode = config.columns[col.name]?.contract ?? modes.dataType;
    const unfit = `${ident(col.name)} IS NOT NULL AND TRY_CAST(${ident(col.name)} AS ${before}) IS NULL`;
    if (common !== undefined && mode === 'evolve') {
      out.changes.push(`column ${col.name} widened ${before} → ${common}`);
      continue;
    }
    const offending = await firstRecord(unfit, col.name);
    const castBack = () =>
      plan.outputExpr.set(col.name, `TRY_CAST(${plan.outputExpr.get(col.name) ?? ident(col.name)} AS ${before})`);
    if (!offending) {
      castBack(); // every value still fits the column's type
      continue;
    }
    if (mode === 'evolve' || mode === 'freeze') {
      const why = common === undefined ? `no type holds both safely` : `the schema contract is freeze`;
      throw new SchemaChangeError(
        `${table}: column ${col.name} changed type ${before} → ${outType} (${why}); ${offending.n} records do not fit ${before}, the first: ${offending.text}. Declare columns.${col.name}.type, set columns.${col.name}.contract to discard_value or discard_row, or rebuild with dip transform --full-refresh`,
        { table, column: col.name, from: before, to: outType },
      );
    }
    castBack();
    if (mode === 'discard_value')
      out.changes.push(`column ${col.name}: ${offending.n} values that do not fit ${before} set to null`);
    else
      out.checks.push(
        contractCheck(table, `contract_type_${col.name}`, unfit, `${col.name} is not a ${before}`, col.name),
      );
  }
  return out;
}

function contractCheck(table: string, name: string, failSql: string, reason: string, column: string): CompiledRowCheck {
  return {
    name,
    table,
    columns: [column],
    type: 'schema',
    severity: 'error',
    mostly: 0,
    failSql: `coalesce(${failSql}, false)`,
    reasonSql: `${lit(`${reason}: `)} || coalesce(CAST(${ident(column)} AS VARCHAR), 'null')`,
    valueSql: `CAST(${ident(column)} AS VARCHAR)`,
  };
}
