import { Agent } from 'node:https';
import type { Readable } from 'node:stream';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ServiceException } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { BackupError } from './errors.ts';
import type { BackupStore } from './store.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  endpoint?: string | undefined;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
  /** PEM bundle of a private endpoint's CA. */
  ca?: string | undefined;
}

/** 8 MiB parts, two in flight: the upload holds at most ~16 MiB whatever the database size. */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;

/** A bucket of AWS S3 or an S3-compatible store. */
export class S3Store implements BackupStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.description = `s3://${o.bucket}${o.endpoint ? ` at ${o.endpoint}` : ''}`;
    this.client = new S3Client({
      region: o.region,
      ...(o.endpoint ? { endpoint: o.endpoint } : {}),
      forcePathStyle: o.forcePathStyle,
      credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey },
      maxAttempts: 3,
      ...(o.ca ? { requestHandler: { httpsAgent: new Agent({ ca: o.ca, keepAlive: true }) } } : {}),
    });
  }

  async upload(key: string, body: Readable, metadata: Record<string, string>): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, Metadata: metadata, ContentType: 'application/octet-stream' },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      // A failed stream aborts the multipart upload: no parts are left behind, no object appears.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      if (err instanceof BackupError) throw err;
      const cause = (err as { cause?: unknown }).cause;
      if (cause instanceof BackupError) throw cause;
      throw this.failed('upload', key, err);
    }
  }

  async putText(key: string, text: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: text, ContentType: 'application/json' }));
    } catch (err) {
      throw this.failed('put', key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (err) {
      throw this.failed('list', prefix, err);
    }
    return keys;
  }

  async download(key: string): Promise<Readable> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return res.Body as Readable;
    } catch (err) {
      throw this.failed('get', key, err);
    }
  }

  async getText(key: string): Promise<string> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return (await res.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      throw this.failed('get', key, err);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
        const first = res.Errors?.[0];
        if (first) throw new BackupError('ETOP_BACKUP_DESTINATION', `${this.description}: deleting ${first.Key ?? '?'} failed: ${first.Code ?? ''} ${first.Message ?? ''}`);
      } catch (err) {
        if (err instanceof BackupError) throw err;
        throw this.failed('delete', batch[0] ?? '', err);
      }
    }
  }

  /** One line naming the operation, the object, and S3's own answer (never the credentials). */
  private failed(op: string, key: string, err: unknown): BackupError {
    const e = err as Partial<S3ServiceException> & { code?: string };
    const status = e.$metadata?.httpStatusCode;
    const name = e.name ?? 'Error';
    const notFound = name === 'NoSuchKey' || (op === 'get' && status === 404);
    const detail = `${name}: ${e.message ?? String(err)}${status ? ` (HTTP ${status})` : ''}${e.code && !String(e.message).includes(e.code) ? ` [${e.code}]` : ''}`;
    return new BackupError(notFound ? 'ETOP_BACKUP_NOT_FOUND' : 'ETOP_BACKUP_DESTINATION', `${this.description}: ${op} ${key} failed: ${detail}`, { cause: err });
  }
}
