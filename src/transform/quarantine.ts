/**
 * Silver quarantine: rows a silver build refused (failed error-severity checks, values that
 * do not convert, schema contract discards), kept as the input row plus why, in
 * `quarantine.silver__<table>`, until `dip quarantine replay` lands them once fixed.
 */
export const QUARANTINE_META = {
  check: '_dip_check',
  reason: '_dip_reason',
  at: '_dip_quarantined_at',
  runId: '_dip_quarantine_run_id',
} as const;

export function quarantineTableName(silverTable: string): string {
  return `quarantine.silver__${silverTable}`;
}
