/**
 * Reconciliation of callback streams, as `dip reconcile`, the API and `/metrics` run it; the
 * operation lives in orchestrate/reconcile.ts so the scheduled `reconcile.<source>` task runs
 * the same code.
 */
export {
  type ReconcileOptions,
  type ReconcileReport,
  reconcile,
  reconcileGauges,
  reconcileReports,
} from '../orchestrate/reconcile.js';
