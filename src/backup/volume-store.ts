
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, access, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError } from './errors.ts';
import type { BackupStore } from './store.ts';

/**
 * Backups as files under a mounted volume. A file is written under a temporary name, flushed to disk
 * and renamed, so a reader never sees a partial one under the final name.
 */
export class VolumeStore implements BackupStore {
  readonly description: string;
  private readonly root: string;

  constructor(root: string, claimName?: string) {
    this.root = root;
    this.description = claimName ? `volume ${claimName}` : `volume ${root}`;
  }

  async upload(key: string, body: Readable, _metadata: Record<string, string>): Promise<void> {
    const file = this.file(key);
    const tmp = `${file}.partial-${process.pid}`;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      // flush: the data is on disk before the rename makes it a backup.
      await pipeline(body, createWriteStream(tmp, { mode: 0o640, flush: true }));
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      if (err instanceof BackupError) throw err;
      throw this.failed('write', key, err);
    }
  }

  async putText(key: string, text: string): Promise<void> {
    const file = this.file(key);
    const tmp = `${file}.partial-${process.pid}`;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(tmp, text, { mode: 0o640, flush: true });
      await rename(tmp, file);
    } catch (err) {
      throw this.failed('write', key, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    const folder = prefix.endsWith('/') ? prefix : path.posix.dirname(prefix) + '/';
    const dir = this.file(folder);
    try {
      const entries = await readdir(dir, { withFileTypes: true });
      return entries.filter((e) => e.isFile() && !e.name.includes('.partial-')).map((e) => `${folder}${e.name}`).filter((k) => k.startsWith(prefix));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.failed('list', prefix, err);
    }
  }

  async download(key: string): Promise<Readable> {
    const file = this.file(key);
    await access(file).catch((err: unknown) => {
      throw this.failed('read', key, err);
    });
    return createReadStream(file);
  }

  async getText(key: string): Promise<string> {
    try {
      return await readFile(this.file(key), 'utf8');
    } catch (err) {
      throw this.failed('read', key, err);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) {
      try {
        await rm(this.file(k), { force: true });
      } catch (err) {
        throw this.failed('delete', k, err);
      }
    }
  }

  /** The file of a key; keys never leave the root. */
  private file(key: string): string {
    const full = path.resolve(this.root, key);
    if (full !== this.root && !full.startsWith(this.root.endsWith('/') ? this.root : `${this.root}/`)) {
      throw new BackupError('ETOP_BACKUP_DESTINATION', `key "${key}" points outside the backup volume`);
    }
    return full;
  }

  private failed(op: string, key: string, err: unknown): BackupError {
    const code = (err as NodeJS.ErrnoException).code;
    return new BackupError(code === 'ENOENT' ? 'ETOP_BACKUP_NOT_FOUND' : 'ETOP_BACKUP_DESTINATION', `${this.description}: ${op} ${key} failed: ${(err as Error).message}`, { cause: err });
  }
}

