/** The `storage: { kind: s3 }` section of dip.yaml (the local kind is in schema.ts). */
import { z } from 'zod';

const SECRET_REF = /^\$\{(env|file):[^}]+\}$/;
/** A `${env:…}`/`${file:…}` reference; a literal value is refused without being echoed. */
const secretRef = (example: string) =>
  z.string().refine((v) => SECRET_REF.test(v), {
    message: `expected a secret reference such as \${env:${example}} or \${file:path}, never the value itself`,
    params: { secret: true },
  });

export const s3StorageSchema = z
  .strictObject({
    kind: z.literal('s3'),
    bucket: z.string().min(1).describe('Bucket holding the lake'),
    prefix: z
      .string()
      .regex(
        /^([^/]+(\/[^/]+)*)?$/,
        'expected a key prefix without leading or trailing "/", such as "lake" or "teams/a"',
      )
      .default('')
      .describe('Key prefix of the lake root inside the bucket (default: the bucket root)'),
    endpoint: z
      .string()
      .url()
      .optional()
      .describe('S3-compatible endpoint URL (MinIO, Ceph, R2…); default: AWS for the region'),
    region: z.string().min(1).default('us-east-1'),
    force_path_style: z
      .boolean()
      .optional()
      .describe('Address the bucket as <endpoint>/<bucket> (default: true when an endpoint is set)'),
    credentials: z
      .strictObject({
        access_key_id: secretRef('AWS_ACCESS_KEY_ID'),
        secret_access_key: secretRef('AWS_SECRET_ACCESS_KEY'),
        session_token: secretRef('AWS_SESSION_TOKEN').optional(),
      })
      .optional()
      .describe('By reference only; default: the AWS SDK chain (environment, profile, instance role)'),
    staging: z
      .string()
      .optional()
      .describe(
        'Local directory where files are written before they are uploaded, relative to dip.yaml (default: .dip/staging)',
      ),
    cache: z
      .strictObject({
        path: z
          .string()
          .default('.dip/cache')
          .describe('Local directory of the read-through cache, relative to dip.yaml'),
        max_size: z
          .string()
          .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'expected a size such as 512MB, 1GB or 4GiB')
          .default('10GB')
          .describe('Size bound of the cache; least recently used files are evicted beyond it'),
      })
      .default({ path: '.dip/cache', max_size: '10GB' })
      .describe('Local cache of immutable lake files DuckDB reads (used when the httpfs extension cannot load)'),
    multipart_size: z
      .string()
      .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|KiB|MiB|GiB)$/i, 'expected a size such as 8MB')
      .default('16MB')
      .describe('Files larger than this are uploaded in parts of this size (at least 5MB)'),
  })
  .describe('An S3-compatible bucket');

export type S3StorageConfig = z.infer<typeof s3StorageSchema>;

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Bytes of a size such as `512MB` or `4GiB` (already validated by the schema). */
export function parseSize(size: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(size.trim());
  return Math.round(Number(m?.[1] ?? 0) * (UNITS[(m?.[2] ?? 'b').toLowerCase()] ?? 1));
}
