import { Cron } from 'croner';
import { BackupError } from './errors.ts';

function cron(pattern: string): Cron {
  try {
    return new Cron(pattern.trim(), { timezone: 'UTC', paused: true });
  } catch (err) {
    throw new BackupError('ETOP_BACKUP_DESTINATION', `backup.schedule "${pattern}" is not a cron expression: ${(err as Error).message}`);
  }
}

/** The facts of a 5-field UTC schedule the backup policy needs: the latest slot at or before now, the next one, and the interval. */
export function scheduleFacts(pattern: string, now: Date): { latestSlot: Date | undefined; nextSlot: Date | undefined; intervalMs: number | undefined } {
  const c = cron(pattern);
  const latestSlot = c.previousRuns(1, new Date(now.getTime() + 1))[0];
  const [nextSlot, after] = c.nextRuns(2, now);
  const intervalMs = nextSlot && after ? after.getTime() - nextSlot.getTime() : undefined;
  return { latestSlot, nextSlot, intervalMs };
}
