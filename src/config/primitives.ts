/** Value schemas several parts of dip.yaml share. */
import { z } from 'zod';
import { DURATION } from '../core/time.js';

export const identifier = z
  .string()
  .regex(/^[a-z_][a-z0-9_]*$/, 'expected a lower-case identifier: letters, digits and _ (e.g. "orders_2024")');

/** A duration as `parseDuration` reads it: 500ms, 30s, 5m, 1h, 7d, 2w. */
export const duration = z.string().regex(DURATION, 'expected a duration such as 500ms, 30s, 5m, 1h or 7d');

export const writeDispositionSchema = z
  .enum(['append', 'replace', 'merge'])
  .describe(
    'append adds rows; replace swaps the table for what this run read; merge upserts by primary key and applies deletes',
  );
