/**
 * Preload (`node --import`) that sets this process's clock DIP_TEST_CLOCK_SKEW_MS ahead (or
 * behind, when negative): `Date.now()` and `new Date()` both; a machine whose clock is off.
 */
const skew = Number(process.env.DIP_TEST_CLOCK_SKEW_MS ?? 0);
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + skew);
    else super(...args);
  }
  static now() {
    return RealDate.now() + skew;
  }
}
globalThis.Date = SkewedDate;
