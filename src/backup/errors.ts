import { TopologyError } from '../errors.ts';

/** Codes of backup and restore failures; the message says what failed and what to do. */
export type BackupErrorCode =
  | 'ETOP_BACKUP_SNAPSHOT' // etcd's snapshot stream failed or was cut
  | 'ETOP_BACKUP_INTEGRITY' // a sha256 did not match: the snapshot or the stored object is corrupt
  | 'ETOP_BACKUP_DESTINATION' // the bucket or volume refused, or could not be reached
  | 'ETOP_BACKUP_NOT_FOUND' // no such backup (key, or no finished backup for "latest")
  | 'ETOP_BACKUP_RESTORE'; // etcdutl snapshot restore failed

export class BackupError extends TopologyError {
  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'BackupError';
  }
}
