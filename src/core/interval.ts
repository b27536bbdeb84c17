/** A data interval: what a run covers, [start, end). */
export interface Interval {
  start: Date;
  end: Date;
}
