/**
 * A lake in an S3-compatible bucket. Engines write into the local staging directory as for
 * the local lake; `publish` uploads the staged file (one PUT, or a multipart upload beyond
 * `multipart_size`), never over an existing key: a HEAD first (servers without conditional
 * writes), and `If-None-Match: *` on the PUT where they have them. The uploaded file then
 * moves into the read cache, since a reader on this host is likely to want it next. The SDK
 * retries throttling and 5xx answers (adaptive mode: it also slows its own rate). DuckDB reads
 * lake files through httpfs when the extension loads (a secret from the same credentials),
 * otherwise through the read-through cache (read-cache.ts): `uri()` names the cached copy and
 * the engine's `prepare` fetches what a statement names before it runs.
 */
import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import type { S3StorageConfig } from '../../config/storage.js';
import { parseSize } from '../../config/storage.js';
import { resolveSecrets } from '../../config/secrets.js';
import { DipError } from '../../core/errors.js';
import { mkdirPrivate } from '../../core/private-files.js';
import type { EngineAccess } from '../engine.js';
import { lit } from '../sql.js';
import { ReadCache } from './read-cache.js';
import type { Storage, StoredObject } from './types.js';

const DELETE_BATCH = 1000;
const MIN_PART = 5 * 1024 * 1024;

export interface S3StorageOptions {
  config: S3StorageConfig;
  /** Staging and cache directories, absolute. */
  staging: string;
  cacheDir: string;
  baseDir: string;
  /** Tests: files used this recently stay in the cache (default 60 s). */
  cachePinMs?: number;
}

export class S3Storage implements Storage {
  readonly kind = 's3';
  readonly location: string;
  readonly cache: ReadCache;
  readonly access: EngineAccess;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly staging: string;
  private stagingMade = false;
  /** Whether DuckDB reads the bucket itself (httpfs loaded and its secret created). */
  private httpfs = false;

  constructor(private readonly options: S3StorageOptions) {
    const { config } = options;
    // The SDK warns on stderr about Node 20 ending; DIP supports Node 20.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.location = `s3://${config.bucket}${config.prefix ? `/${config.prefix}` : ''}`;
    this.partSize = Math.max(MIN_PART, parseSize(config.multipart_size));
    this.staging = options.staging;
    const scope = createHash('sha256')
      .update(`${config.endpoint ?? 'aws'}\n${config.bucket}\n${config.prefix}`)
      .digest('hex')
      .slice(0, 12);
    this.cache = new ReadCache(resolve(options.cacheDir, scope), {
      maxBytes: parseSize(config.cache.max_size),
      ...(options.cachePinMs !== undefined ? { pinMs: options.cachePinMs } : {}),
    });
    const credentials = this.credentials();
    this.client = new S3Client({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.force_path_style ?? config.endpoint !== undefined,
      ...(credentials ? { credentials } : {}),
      maxAttempts: 8,
      retryMode: 'adaptive',
      // Checksums only where the API requires them: S3-compatible servers differ in the rest.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.access = { setup: (run) => this.setupEngine(run), prepare: (sql) => this.prepare(sql) };
  }

  uri(path: string): string {
    return this.cache.pathOf(this.checked(path));
  }

  async stagingDir(): Promise<string> {
    if (!this.stagingMade) {
      await mkdirPrivate(this.staging);
      this.stagingMade = true;
    }
    return this.staging;
  }

  async publish(localFile: string, path: string): Promise<StoredObject> {
    const key = this.key(path);
    if (await this.exists(key)) throw exists(path);
    const bytes = (await stat(localFile)).size;
    try {
      if (bytes <= this.partSize) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: await readFile(localFile),
            ContentLength: bytes,
            IfNoneMatch: '*',
          }),
        );
      } else {
        await new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key: key, Body: createReadStream(localFile), IfNoneMatch: '*' },
          partSize: this.partSize,
          queueSize: 4,
          leavePartsOnError: false,
        }).done();
      }
    } catch (err) {
      if (isStatus(err, 412) || (err instanceof S3ServiceException && err.name === 'PreconditionFailed'))
        throw exists(path);
      throw this.failure(`uploading ${path}`, err);
    }
    if (!(await this.cache.adopt(localFile, path))) await rm(localFile, { force: true });
    return { path, bytes, modifiedAt: new Date() };
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const wanted = prefix.replace(/\/+$/, '');
    const root = this.prefix ? `${this.prefix}/` : '';
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: root + wanted,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
      } catch (err) {
        throw this.failure(`listing ${wanted || '/'}`, err);
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key?.startsWith(root)) continue;
        const path = o.Key.slice(root.length);
        if (wanted && path !== wanted && !path.startsWith(`${wanted}/`)) continue;
        yield { path, bytes: o.Size ?? 0, modifiedAt: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(paths: readonly string[]): Promise<void> {
    for (let i = 0; i < paths.length; i += DELETE_BATCH) {
      const batch = paths.slice(i, i + DELETE_BATCH);
      let out;
      try {
        out = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((p) => ({ Key: this.key(p) })), Quiet: true },
          }),
        );
      } catch (err) {
        throw this.failure(`deleting ${batch.length} objects`, err);
      }
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length)
        throw new DipError(
          'transient',
          `${this.location}: deleting ${failed[0]?.Key ?? '?'} failed (${failed[0]?.Code ?? 'unknown'}: ${failed[0]?.Message ?? ''})${failed.length > 1 ? ` and ${failed.length - 1} more` : ''}`,
        );
    }
    for (const p of paths) await rm(this.cache.pathOf(this.checked(p)), { force: true });
  }

  private async setupEngine(run: (sql: string) => Promise<void>): Promise<void> {
    try {
      await run('LOAD httpfs');
    } catch {
      return; // not installed (and never downloaded by DIP): the read cache serves
    }
    const { config } = this.options;
    const creds = this.credentials();
    const parts = ['TYPE s3', `REGION ${lit(config.region)}`];
    if (creds) {
      parts.push(`KEY_ID ${lit(creds.accessKeyId)}`, `SECRET ${lit(creds.secretAccessKey)}`);
      if (creds.sessionToken) parts.push(`SESSION_TOKEN ${lit(creds.sessionToken)}`);
    } else parts.push(`PROVIDER credential_chain`);
    if (config.endpoint) {
      const url = new URL(config.endpoint);
      parts.push(`ENDPOINT ${lit(url.host)}`, `USE_SSL ${url.protocol === 'https:'}`);
    }
    if (config.force_path_style ?? config.endpoint !== undefined) parts.push(`URL_STYLE 'path'`);
    try {
      await run(`CREATE OR REPLACE SECRET dip_lake (${parts.join(', ')})`);
      this.httpfs = true;
    } catch {
      // Its message could quote the secret: dropped; the read cache serves.
    }
  }

  /** Points the lake files a statement names at the bucket (httpfs) or fetches them into the cache. */
  private async prepare(sql: string): Promise<string> {
    const root = `${this.cache.root}/`;
    if (!sql.includes(root)) return sql;
    const named = new RegExp(`${escapeRegExp(root)}([^']+)`, 'g');
    if (this.httpfs) return sql.replace(named, (_m, p: string) => `s3://${this.bucket}/${this.key(p)}`);
    const paths = [...new Set(Array.from(sql.matchAll(named), (m) => m[1] as string))];
    await this.cache.ensure(paths, (p) => this.download(p));
    return sql;
  }

  private async download(path: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      if (!(out.Body instanceof Readable)) throw new Error('no body');
      return out.Body;
    } catch (err) {
      if (isStatus(err, 404))
        throw new DipError('not_found', `lake file ${path} is missing from ${this.location}`, { cause: err });
      throw this.failure(`reading ${path}`, err);
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isStatus(err, 404)) return false;
      throw this.failure(`checking ${key}`, err);
    }
  }

  private credentials(): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
    const c = this.options.config.credentials;
    if (!c) return undefined;
    const opts = { baseDir: this.options.baseDir };
    return {
      accessKeyId: resolveSecrets(c.access_key_id, opts),
      secretAccessKey: resolveSecrets(c.secret_access_key, opts),
      ...(c.session_token ? { sessionToken: resolveSecrets(c.session_token, opts) } : {}),
    };
  }

  private key(path: string): string {
    const p = this.checked(path);
    return this.prefix ? (p ? `${this.prefix}/${p}` : this.prefix) : p;
  }

  private checked(path: string): string {
    if (path.startsWith('/') || path.split('/').some((s) => s === '..' || s === '.'))
      throw new Error(`storage path escapes the lake root: ${path}`);
    return path;
  }

  /** An S3 error as a DipError: throttling, timeouts and 5xx are transient (the SDK already retried them). */
  private failure(what: string, err: unknown): DipError {
    if (err instanceof DipError) return err;
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const name = err instanceof Error ? err.name : 'Error';
    const message = err instanceof Error ? err.message : String(err);
    const kind = status === 403 || status === 401 || name === 'NoSuchBucket' ? 'config' : 'transient';
    return new DipError(kind, `${this.location}: ${what} failed (${status ?? name}: ${message})`, { cause: err });
  }
}

function exists(path: string): DipError {
  return new DipError('conflict', `lake file ${path} already exists; lake files are never overwritten`);
}

function isStatus(err: unknown, status: number): boolean {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode === status;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
