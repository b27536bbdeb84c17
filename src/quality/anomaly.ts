/**
 * Volume anomaly detection: is the number of new rows of this run an outlier against the new-row
 * counts of previous runs?
 *
 * The baseline is the last `window` history values (oldest first in `history`); with fewer than
 * `min_history` of them the check does not judge (it passes, saying so). Otherwise
 *
 *   z = (newRows − mean) / stddev        (sample standard deviation, n − 1)
 *
 * and the run is an anomaly when |z| > max_z AND |newRows − mean| > max(1, 10% of |mean|).
 *
 * The second condition is a relative-change guard: a change of at most 10% of the mean (and at
 * least one row) is never an anomaly. Without it a very steady history makes the check trip on
 * noise — history [100, 100, 100, 100, 101] has stddev 0.45, so 102 new rows would be z ≈ 4 —
 * and a constant history (stddev 0, z = ±∞ for any change) would fail on a single extra row.
 * Equivalently: the stddev is floored at max(1, 10% of |mean|) / max_z.
 */

export interface VolumeAnomalyOptions {
  /** Largest accepted |z|. */
  max_z: number;
  /** Baseline runs needed before judging. */
  min_history: number;
  /** How many previous runs form the baseline. */
  window: number;
}

export interface VolumeVerdict {
  /** False when there was not enough history to judge (the check passes). */
  judged: boolean;
  passed: boolean;
  newRows: number;
  /** Runs in the baseline (≤ window). */
  baseline: number;
  mean: number;
  /** Sample standard deviation of the baseline (0 with fewer than 2 values). */
  stddev: number;
  /** (newRows − mean) / stddev; 0 when both the deviation and stddev are 0, ±Infinity when only stddev is. */
  z: number;
  /** The relative-change guard: changes up to this many rows are never anomalies. */
  tolerance: number;
  /** Human-readable verdict (without table or check name). */
  message: string;
}

/** Judges `newRows` against the last `window` values of `history` (oldest first). */
export function volumeAnomaly(
  newRows: number,
  history: readonly number[],
  options: VolumeAnomalyOptions,
): VolumeVerdict {
  const base = history.slice(-options.window).filter((n) => Number.isFinite(n));
  const n = base.length;
  const mean = n ? base.reduce((a, b) => a + b, 0) / n : 0;
  const stddev = n > 1 ? Math.sqrt(base.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  const diff = newRows - mean;
  const z = stddev > 0 ? diff / stddev : diff === 0 ? 0 : diff > 0 ? Infinity : -Infinity;
  const tolerance = Math.max(1, 0.1 * Math.abs(mean));
  const rows = `${fmtInt(newRows)} new rows`;
  if (n < options.min_history) {
    return {
      judged: false,
      passed: true,
      newRows,
      baseline: n,
      mean,
      stddev,
      z,
      tolerance,
      message: `not enough history (${n} of ${options.min_history} runs): ${rows} not judged`,
    };
  }
  const stats = `z = ${fmtZ(z)} against the last ${n} runs (mean ${fmtNum(mean)}, stddev ${fmtNum(stddev)}, max_z ${options.max_z})`;
  const beyondZ = Math.abs(z) > options.max_z;
  const beyondTolerance = Math.abs(diff) > tolerance;
  const anomaly = beyondZ && beyondTolerance;
  let message: string;
  if (anomaly) message = `${rows} is an anomaly: ${stats}`;
  else if (beyondZ)
    message = `${rows} is within range: ${stats}; |z| exceeds max_z but the change (${fmtNum(Math.abs(diff))} rows) is within max(1, 10% of the mean) = ${fmtNum(tolerance)} rows`;
  else message = `${rows} is within range: ${stats}`;
  return { judged: true, passed: !anomaly, newRows, baseline: n, mean, stddev, z, tolerance, message };
}

function fmtInt(n: number): string {
  return n.toLocaleString('en-US');
}

function fmtNum(n: number): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function fmtZ(z: number): string {
  if (z === Infinity) return '+∞';
  if (z === -Infinity) return '−∞';
  return z.toFixed(2);
}
