/** Row values as the catalog reads them back (drivers return numbers, bigints or text). */
export const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
export const str = (v: unknown): string => String(v);
export const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
export const dateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(String(v)));
