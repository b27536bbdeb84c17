/**
 * `dip load [destination] [--table t]`: loads the tables declared under `destinations:` into
 * their warehouses, exactly once (see destinations/load.ts). One destination connection per
 * destination; tables load one after another, each in its own destination transaction.
 */
import { DipError } from '../core/errors.js';
import type { Lake } from '../lake/lake.js';
import { loadTable, openWarehouse, type TableLoadResult } from '../destinations/load.js';

export interface LoadReport {
  destination: string;
  tables: TableLoadResult[];
}

export async function loadDestinations(
  lake: Lake,
  opts: { destination?: string | undefined; table?: string | undefined; onTable?: (r: TableLoadResult) => void } = {},
): Promise<LoadReport[]> {
  const all = lake.project.config.destinations ?? {};
  const names = Object.keys(all);
  if (opts.destination !== undefined && !(opts.destination in all))
    throw new DipError(
      'not_found',
      `no destination ${opts.destination} in dip.yaml; destinations: ${names.join(', ') || '(none)'}`,
    );
  const reports: LoadReport[] = [];
  let matched = false;
  for (const name of opts.destination !== undefined ? [opts.destination] : names) {
    const entry = all[name];
    if (!entry) continue;
    const tables = entry.tables.filter((t) => opts.table === undefined || t.table === opts.table);
    if (!tables.length) continue;
    matched = true;
    const { tables: _tables, ...connection } = entry;
    const warehouse = await openWarehouse(connection, lake.project.dir);
    const report: LoadReport = { destination: name, tables: [] };
    try {
      for (const t of tables) {
        const r = await loadTable(lake, warehouse, t);
        report.tables.push(r);
        opts.onTable?.(r);
      }
    } finally {
      await warehouse.close();
    }
    reports.push(report);
  }
  if (opts.table !== undefined && !matched)
    throw new DipError('not_found', `no destination loads ${opts.table}; check destinations: in dip.yaml`);
  return reports;
}
