import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { BackupError } from './errors.ts';

/** etcd appends the sha256 of the database to its snapshot stream. */
const ETCD_HASH_BYTES = 32;

/**
 * Reads etcd's Maintenance.Snapshot stream through the JSON gateway (POST /v3/maintenance/snapshot): one
 * JSON message per line, each with a base64 blob of at most a few tens of KiB, so memory stays that of
 * one message however large the database. An error message in the stream, or a stream cut short by the
 * member, fails the iteration.
 */
export async function* snapshotChunks(endpoint: string, options: { dispatcher?: Dispatcher; idleTimeoutMs?: number } = {}): AsyncGenerator<Buffer> {
  const url = new URL('/v3/maintenance/snapshot', endpoint);
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      headersTimeout: options.idleTimeoutMs ?? 30_000,
      bodyTimeout: options.idleTimeoutMs ?? 30_000,
    });
  } catch (err) {
    throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot from ${endpoint} failed: ${(err as Error).message}`, { cause: err });
  }
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot from ${endpoint} failed: HTTP ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  // Bytes, not a growing string: V8 keeps the parent of a sliced or concatenated string alive, which
  // would hold the whole stream in memory; a Buffer remainder holds at most one message.
  let pending: Buffer = Buffer.alloc(0);
  let messages = 0;
  const decode = (line: Buffer): Buffer | undefined => {
    const text = line.toString('latin1');
    if (text.trim() === '') return undefined;
    let msg: { result?: { blob?: string }; error?: { message?: string; grpc_code?: number; code?: number } };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot from ${endpoint}: message ${messages + 1} is not JSON (${text.slice(0, 80)})`);
    }
    messages++;
    if (msg.error) throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot from ${endpoint} failed: ${msg.error.message ?? JSON.stringify(msg.error)}`);
    return Buffer.from(msg.result?.blob ?? '', 'base64');
  };
  try {
    for await (const chunk of res.body) {
      pending = pending.length === 0 ? (chunk as Buffer) : Buffer.concat([pending, chunk as Buffer]);
      let start = 0;
      let nl: number;
      while ((nl = pending.indexOf(10, start)) !== -1) {
        const out = decode(pending.subarray(start, nl));
        start = nl + 1;
        if (out !== undefined && out.length > 0) yield out;
      }
      pending = start === 0 ? pending : Buffer.from(pending.subarray(start));
    }
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot stream from ${endpoint} was cut after ${messages} messages: ${(err as Error).message}`, { cause: err });
  }
  const last = decode(pending);
  if (last !== undefined && last.length > 0) yield last;
  if (messages === 0) throw new BackupError('ETOP_BACKUP_SNAPSHOT', `snapshot from ${endpoint} returned no data`);
}

/** What a verified snapshot stream measured. */
export interface StreamDigest {
  /** Bytes passed through (the database and etcd's trailing hash). */
  size: number;
  /** sha256 of everything passed through, hex: the stored object's hash. */
  sha256: string;
}

/**
 * Passes a snapshot through unchanged while checking etcd's own trailing sha256 against the bytes before
 * it. The last 32 bytes are held back until the end, so a consumer (a multipart upload, a file) never sees
 * the end of a stream that failed the check: the upload aborts instead of completing.
 */
export class EtcdSnapshotCheck extends Transform {
  private readonly inner: Hash = createHash('sha256');
  private readonly whole: Hash = createHash('sha256');
  private held: Buffer = Buffer.alloc(0);
  private bytes = 0;
  private result: StreamDigest | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const all = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const release = all.length - ETCD_HASH_BYTES;
    if (release > 0) {
      const out = all.subarray(0, release);
      this.inner.update(out);
      this.emitBytes(out);
      this.held = Buffer.from(all.subarray(release));
    } else this.held = all;
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.held.length < ETCD_HASH_BYTES || this.bytes === 0) {
      done(new BackupError('ETOP_BACKUP_INTEGRITY', `the snapshot stream ended after ${this.bytes + this.held.length} bytes, too short to hold a database and its sha256`));
      return;
    }
    const want = this.held.toString('hex');
    const got = this.inner.digest('hex');
    if (want !== got) {
      done(new BackupError('ETOP_BACKUP_INTEGRITY', `the snapshot's sha256 ${got} does not match the ${want} etcd sent with it: the stream was corrupted; nothing was stored`));
      return;
    }
    this.emitBytes(this.held);
    this.result = { size: this.bytes, sha256: this.whole.digest('hex') };
    done();
  }

  /** Size and sha256 of what passed; only after the stream ended and verified. */
  digest(): StreamDigest {
    if (!this.result) throw new BackupError('ETOP_BACKUP_INTEGRITY', 'the snapshot stream has not been verified yet');
    return this.result;
  }

  private emitBytes(b: Buffer): void {
    this.whole.update(b);
    this.bytes += b.length;
    this.push(b);
  }
}

/** A member's snapshot as a verified byte stream; read its digest() after the consumer finished. */
export function verifiedSnapshot(endpoint: string, options?: { dispatcher?: Dispatcher; idleTimeoutMs?: number }): { stream: Readable; check: EtcdSnapshotCheck } {
  const check = new EtcdSnapshotCheck();
  const source = Readable.from(snapshotChunks(endpoint, options), { objectMode: false });
  source.on('error', (err) => check.destroy(err));
  return { stream: source.pipe(check), check };
}
