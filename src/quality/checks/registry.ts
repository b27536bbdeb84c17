import type { CheckConfig, CheckType } from '../../config/silver.js';
import { ConfigError } from '../../core/errors.js';
import type { CheckLevel } from '../report.js';
import { acceptedValuesCheck } from './accepted-values.js';
import { expressionCheck } from './expression.js';
import { formatCheck } from './format.js';
import { freshnessCheck } from './freshness.js';
import { notNullCheck } from './not-null.js';
import { rangeCheck } from './range.js';
import { regexCheck } from './regex.js';
import { relationshipsCheck } from './relationships.js';
import { rowCountCheck } from './row-count.js';
import { schemaCheck } from './schema.js';
import type { CheckKind, CheckOf } from './types.js';
import { uniqueCheck } from './unique.js';
import { volumeAnomalyCheck } from './volume-anomaly.js';

/** Every check kind, one module each: adding a kind is a module and a line here (and its config schema). */
export const CHECK_KINDS: { readonly [T in CheckType]: CheckKind<T> } = {
  not_null: notNullCheck,
  accepted_values: acceptedValuesCheck,
  range: rangeCheck,
  format: formatCheck,
  regex: regexCheck,
  relationships: relationshipsCheck,
  expression: expressionCheck,
  unique: uniqueCheck,
  row_count: rowCountCheck,
  freshness: freshnessCheck,
  schema: schemaCheck,
  volume_anomaly: volumeAnomalyCheck,
};

/** The kind of a check config, typed for it. */
export function checkKind<T extends CheckType>(check: CheckOf<T>): CheckKind<T> {
  return CHECK_KINDS[check.type as T];
}

export function checkLevel(type: CheckType): CheckLevel {
  return CHECK_KINDS[type].level;
}

/** Check names in config order: explicit names as given (duplicates are an error), default names made unique with _2, _3. */
export function checkNames(table: string, checks: readonly CheckConfig[]): string[] {
  const used = new Set<string>();
  for (const c of checks) {
    if (c.name === undefined) continue;
    if (used.has(c.name))
      throw new ConfigError(`${table}: two checks are named "${c.name}"; check names must be unique within a table`, {
        details: { table, check: c.name },
      });
    used.add(c.name);
  }
  let expressions = 0;
  return checks.map((c) => {
    if (c.type === 'expression') expressions++;
    if (c.name !== undefined) return c.name;
    const base = checkKind(c).defaultName(c, expressions);
    let name = base;
    for (let k = 2; used.has(name); k++) name = `${base}_${k}`;
    used.add(name);
    return name;
  });
}
