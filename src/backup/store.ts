import type { Readable } from 'node:stream';

/**
 * Where backups are kept: an S3-compatible bucket or a mounted volume, behind the few operations backup,
 * retention and restore need. Keys are slash-separated paths relative to the store's root.
 */
export interface BackupStore {
  /** For messages: "s3://bucket" or "volume /backup". */
  readonly description: string;
  /** Streams body to key; the object appears only when body ended without error. */
  upload(key: string, body: Readable, metadata: Record<string, string>): Promise<void>;
  /** Writes a small object (a manifest) whole. */
  putText(key: string, text: string): Promise<void>;
  /** Every key under prefix (recursively for S3, one folder for volumes). */
  list(prefix: string): Promise<string[]>;
  /** The object's bytes as a stream; ETOP_BACKUP_NOT_FOUND when it does not exist. */
  download(key: string): Promise<Readable>;
  /** A small object whole; ETOP_BACKUP_NOT_FOUND when it does not exist. */
  getText(key: string): Promise<string>;
  delete(keys: readonly string[]): Promise<void>;
}
