/**
 * Exactly-once under crashes on the local lake: `dip run` over many input files is killed with
 * SIGKILL at many random moments and re-run until it finishes; the bronze and raw tables must
 * then hold every source record exactly once (append: one commit per file; merge: one commit per
 * stream), so must the silver tables built after each run, and gc must leave no unreferenced
 * file behind. The suite is in test/support/crash.ts (test/crash-s3.test.ts runs it on S3).
 */
import { crashSuite } from './support/crash.js';

crashSuite();
