import { newId } from '../core/ids.js';
import { utcDate } from '../core/time.js';
import type { Zone } from '../catalog/types.js';

/** Hive-style data file path: `<zone>/<source>/<table>/date=YYYY-MM-DD/part-<id>.<ext>`. */
export function dataFilePath(zone: Zone, source: string, table: string, date: Date, ext: string): string {
  return `${zone}/${source}/${table}/date=${utcDate(date)}/part-${newId()}.${ext}`;
}

export function qualifiedTable(zone: Zone, table: string): string {
  return `${zone}.${table}`;
}

/** `bronze.orders` → ['bronze', 'orders']. */
export function splitTableName(name: string): [string, string] {
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/** The source folder of a data file path (`<zone>/<source>/<table>/…`). */
export function sourceOfDataPath(path: string): string | undefined {
  return path.split('/')[1];
}

export const EXT = { parquet: 'parquet', rawNdjson: 'ndjson.zst' } as const;
