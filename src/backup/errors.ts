import { TopologyError, type ErrorCode } from '../errors.ts';

/** Codes of backup and restore failures (the catalogue in src/errors.ts says what each means). */
export type BackupErrorCode = Exclude<Extract<ErrorCode, `ETOP_BACKUP_${string}`>, 'ETOP_BACKUP'>;

export class BackupError extends TopologyError {
  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'BackupError';
  }
}
