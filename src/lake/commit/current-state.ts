import type { TableChange } from '../../catalog/types.js';
import { DipError } from '../../core/errors.js';
import type { IngestTarget, StagedUnit } from '../ingest.js';
import type { Lake } from '../lake.js';
import { MERGE_KEY_META, latestRowsSql, mergeFiles } from '../merge.js';
import { qualifiedTable } from '../paths.js';
import { parquetScan } from '../scan.js';
import { writeLakeFile } from '../write-file.js';
import { CDC_COLUMNS } from '../zone-schemas.js';

/**
 * A CDC current-state table is read merge-on-read: it gets each unit's changes as a small delta
 * file (the latest change per key wins at read time), so a commit costs the unit, not the
 * table. Like an LSM tree, deltas are merged among themselves every this many files (cost:
 * the deltas), and into a new base only once they hold a quarter of the base's rows (cost:
 * the table, paid once per that many changes).
 */
const CDC_MAX_DELTA_FILES = 32;
const CDC_BASE_MERGE_SHARE = 0.25;
const CDC_MIN_BASE_MERGE_ROWS = 50_000;

/**
 * Change-data-capture streams: the unit's change events (already staged into the change log)
 * applied to the current-state table by primary key, in change order, deletes applied: as a
 * delta file, or merged into a new base file. A snapshot unit, or a unit holding a TRUNCATE,
 * replaces the table with its rows (those after the TRUNCATE) instead.
 */
export async function currentStateChange(
  lake: Lake,
  target: IngestTarget,
  units: StagedUnit[],
  changeLog: TableChange,
): Promise<TableChange | undefined> {
  const { stream } = target;
  await refuseQuarantined(lake, target, units);
  const tableName = (stream.currentState as { table: string }).table;
  const name = qualifiedTable('bronze', tableName);
  const incoming = changeLog.add.map((f) => lake.storage.uri(f.path));
  const resets = units.some((u) => u.unit.snapshot);
  if (incoming.length === 0 && !resets) return undefined;
  const table = await lake.catalog.getTable(name);
  const live = resets ? [] : await lake.catalog.liveFiles(name);
  const meta = { [MERGE_KEY_META]: stream.primaryKey };
  const deltas = live.filter((f) => f.meta['cdc'] === 'delta');
  const deltaRows = deltas.reduce((n, f) => n + f.rows, 0) + changeLog.add.reduce((n, f) => n + f.rows, 0);
  const baseRows = live.filter((f) => f.meta['cdc'] !== 'delta').reduce((n, f) => n + f.rows, 0);
  const merge =
    resets || live.length === 0 || deltaRows >= Math.max(baseRows * CDC_BASE_MERGE_SHARE, CDC_MIN_BASE_MERGE_ROWS);
  const change: TableChange = {
    table: name,
    zone: 'bronze',
    format: 'parquet',
    primaryKey: stream.primaryKey,
    add: [],
    expectedHead: table?.headCommit ?? null,
  };
  if (!merge) {
    const mergeDeltas = deltas.length + 1 >= CDC_MAX_DELTA_FILES;
    const changes = `SELECT * FROM ${parquetScan(mergeDeltas ? [...deltas.map((f) => lake.storage.uri(f.path)), ...incoming] : incoming)} WHERE ${CDC_COLUMNS.op} <> 't'`;
    change.add = [
      await writeLakeFile(
        lake,
        mergeDeltas ? latestRowsSql(`(${changes})`, stream.primaryKey, { keepDeleted: true }) : changes,
        { zone: 'bronze', source: target.source, table: tableName },
        { run_id: target.runId, cdc: 'delta', ...meta },
      ),
    ];
    if (mergeDeltas) change.remove = deltas.map((f) => f.path);
    return change;
  }
  const merged = incoming.length
    ? await mergeFiles(lake, {
        source: target.source,
        table: tableName,
        primaryKey: stream.primaryKey,
        deletedColumn: CDC_COLUMNS.deleted,
        // TRUNCATE markers, and in a unit that holds one, the events before it.
        skipRows: resets
          ? `${CDC_COLUMNS.op} = 't' OR ${CDC_COLUMNS.seq} < coalesce((SELECT max(${CDC_COLUMNS.seq}) FROM ${parquetScan(incoming)} WHERE ${CDC_COLUMNS.op} = 't'), -1)`
          : `${CDC_COLUMNS.op} = 't'`,
        current: live.map((f) => f.path),
        incoming,
        runId: target.runId,
        meta: { cdc: 'base', ...meta },
      })
    : undefined;
  change.add = merged ? [merged] : [];
  change.remove = table ? 'all' : [];
  return change;
}

/**
 * A change event is the source of truth: one that did not convert to the unit's column types
 * (quarantined) must not be committed past, or it would be in neither table. The stream stops
 * before the unit, its position unchanged, naming the column (not the value).
 */
async function refuseQuarantined(lake: Lake, target: IngestTarget, units: StagedUnit[]): Promise<void> {
  const refused = units.find((u) => u.quarantined > 0);
  if (!refused) return;
  const first = refused.quarantine
    ? (
        await lake.engine.all(
          `SELECT column_name, error_type FROM ${parquetScan([lake.storage.uri(refused.quarantine.path)])} ORDER BY line LIMIT 1`,
        )
      )[0]
    : undefined;
  const column = first?.['column_name']
    ? ` (column ${String(first['column_name'])}: ${String(first['error_type'])})`
    : '';
  throw new DipError(
    'schema',
    `bronze.${target.stream.table}: ${refused.quarantined} change event(s) of ${refused.unit.label} do not convert to the stream's column types${column}. Change events are not quarantined: the stream stops before this unit, and its position stays there (nothing after it is committed); once fixed, a run resumes exactly there, or \`dip state ${target.pipeline} --reset\` takes a new snapshot`,
    { details: { table: `bronze.${target.stream.table}`, unit: refused.unit.label } },
  );
}
