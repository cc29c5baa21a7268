import { compareText } from '../text-order.ts';
import { healthyVotersOf, leaderOf, type MemberHealth } from './members.ts';
import type { Step } from './plan.ts';

/**
 * Backup decisions, as plain data in and out: when a backup is due, which member streams it, whether a
 * risky step must wait for one, and what BackupReady says. The shell turns cron expressions and status
 * into these facts and starts the Job.
 */

export type BackupReason = 'OnDemand' | 'BeforeChange' | 'Scheduled' | 'Retry';

export interface BackupFacts {
  now: Date;
  /** The latest schedule slot at or before now (undefined: no schedule). */
  latestSlot?: Date | undefined;
  /** When the topology was created: a slot before that is not missed. */
  createdAt: Date;
  lastSuccessTime?: Date | undefined;
  lastFailureTime?: Date | undefined;
  /** Consecutive failures. */
  failures: number;
  /** The backup-now annotation and the value last answered. */
  onDemandRequested?: string | undefined;
  onDemandAnswered?: string | undefined;
  /** The planner's step needs a backup first (see gateOnBackup). */
  beforeChange: boolean;
  /** A backup Job is running. */
  inFlight: boolean;
}

/** The back-off after n consecutive failures: 30 s doubling, at most 10 minutes. */
export function retryBackoffMs(failures: number): number {
  return Math.min(30_000 * 2 ** Math.max(0, failures - 1), 600_000);
}

/**
 * Whether to start a backup now, and why. One backup answers every reason at once: a schedule missed
 * while the operator was down is caught up once (only the latest slot counts), not once per slot.
 */
export function backupDue(f: BackupFacts): { due: false; retryAt?: Date } | { due: true; reason: BackupReason } {
  if (f.inFlight) return { due: false };
  if (f.onDemandRequested !== undefined && f.onDemandRequested !== f.onDemandAnswered) return { due: true, reason: 'OnDemand' };
  const sinceSuccess = f.lastSuccessTime?.getTime() ?? -Infinity;
  const slotMissed = f.latestSlot !== undefined && f.latestSlot.getTime() > Math.max(sinceSuccess, f.createdAt.getTime());
  const wanted: BackupReason | undefined = f.beforeChange ? 'BeforeChange' : slotMissed ? 'Scheduled' : undefined;
  if (wanted === undefined) return { due: false };
  // After a failure, the same wish waits out a back-off instead of starting a Job on every visit.
  if (f.failures > 0 && f.lastFailureTime !== undefined && f.lastFailureTime.getTime() > sinceSuccess) {
    const retryAt = new Date(f.lastFailureTime.getTime() + retryBackoffMs(f.failures));
    if (retryAt > f.now) return { due: false, retryAt };
    return { due: true, reason: wanted === 'Scheduled' ? 'Retry' : wanted };
  }
  return { due: true, reason: wanted };
}

/**
 * The member to stream the snapshot from: a healthy, caught-up follower, so the leader spends nothing on
 * it; the leader only when it is the only voter. Prefers the follower with the longest log, then the
 * highest ordinal (the last a rolling update reaches first is the lowest-risk to load).
 */
export function backupSource(members: readonly MemberHealth[]): MemberHealth | { none: string } {
  const healthy = healthyVotersOf(members);
  const leader = leaderOf(members);
  const followers = healthy.filter((m) => !m.isLeader).sort((a, b) => b.raftIndex - a.raftIndex || compareText(b.name, a.name));
  if (followers[0]) return followers[0];
  if (leader && members.filter((m) => !m.isLearner).length === 1) return leader;
  return { none: leader ? 'no healthy, caught-up follower to take the snapshot from (the leader is not loaded with it)' : 'etcd has no leader' };
}

/**
 * Steps that change what a restore would need: replacing a member's configuration (version) or removing
 * a voter. A TrustRollout (restarting members onto a new CA bundle during a CA rotation) is not one: the
 * data, version and membership stay as they are, and holding it behind a failing backup could let the
 * CA expire mid-rotation.
 */
export function isRiskyStep(step: Step): boolean {
  return (step.action === 'DeletePod' && step.reason === 'RollingUpdate') || (step.action === 'RemoveMember' && step.reason === 'ScaleIn') || (step.action === 'MoveLeader' && (step.reason === 'RollingUpdate' || step.reason === 'ScaleIn'));
}

/**
 * Holds a risky step until a backup taken at the current spec generation succeeded (etcd-manager takes
 * one before every change). The first step of a rolling update waits; the ones after it find the backup
 * of the same generation and go ahead.
 */
export function gateOnBackup(step: Step, g: { configured: boolean; generation: number; backupGeneration?: number | undefined; lastFailure?: string | undefined; failedSinceSuccess: boolean }): Step {
  if (!g.configured || !isRiskyStep(step)) return step;
  if ((g.backupGeneration ?? -1) >= g.generation) return step;
  const what = step.message.replace(/^./, (c) => c.toLowerCase());
  if (g.failedSinceSuccess && g.lastFailure !== undefined) {
    return { action: 'Wait', reason: 'BackupBeforeChangeFailed', message: `waiting before ${what}: the backup taken first failed (${g.lastFailure}); it is retried with a back-off` };
  }
  return { action: 'Wait', reason: 'BackupBeforeChange', message: `taking a backup before ${what}` };
}

/** BackupReady from the last outcomes: False when the last attempt failed, or the newest backup is older than twice the interval. */
export function backupReadiness(f: {
  now: Date;
  intervalMs?: number | undefined;
  createdAt: Date;
  lastSuccess?: { time: Date; key: string; revision: number } | undefined;
  lastFailure?: { time: Date; message: string } | undefined;
}): { status: 'True' | 'False' | 'Unknown'; reason: string; message: string } {
  const { lastSuccess, lastFailure } = f;
  if (lastFailure && (!lastSuccess || lastFailure.time > lastSuccess.time)) {
    return { status: 'False', reason: 'BackupFailed', message: `the last backup failed at ${lastFailure.time.toISOString()}: ${lastFailure.message}` };
  }
  const stale = f.intervalMs !== undefined ? 2 * f.intervalMs : undefined;
  if (!lastSuccess) {
    if (stale !== undefined && f.now.getTime() - f.createdAt.getTime() > stale) {
      return { status: 'False', reason: 'BackupStale', message: `no backup has succeeded since the topology was created, ${Math.round((f.now.getTime() - f.createdAt.getTime()) / 60_000)} min ago` };
    }
    return { status: 'Unknown', reason: 'NoBackupYet', message: 'no backup has been taken yet' };
  }
  const age = f.now.getTime() - lastSuccess.time.getTime();
  if (stale !== undefined && age > stale) {
    return { status: 'False', reason: 'BackupStale', message: `the newest backup ${lastSuccess.key} is ${Math.round(age / 60_000)} min old, more than twice the schedule's interval` };
  }
  return { status: 'True', reason: 'BackupSucceeded', message: `the last backup is ${lastSuccess.key} (revision ${lastSuccess.revision})` };
}
