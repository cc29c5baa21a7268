import { mayDisrupt, type ClusterView } from './disruption.ts';
import { DEFAULT_MAX_RAFT_LAG, healthyVotersOf, leaderOf, listNames, votersOf, type MemberHealth } from './members.ts';
import { compareText } from '../text-order.ts';

/** The answer to "what upkeep step comes next": one member at a time, never two. */
export type DefragStep =
  | { action: 'None'; reason: string; message: string }
  | { action: 'Wait'; reason: string; message: string }
  | { action: 'MoveLeader'; from: string; to: string; toName: string; reason: 'DefragmentLeader' | 'NoSpaceRecovery'; message: string }
  | { action: 'Defragment'; member: string; id: string; dbSize: number; reason: 'DatabaseNearQuota' | 'SpaceReclaimable' | 'NoSpaceRecovery'; message: string }
  | { action: 'Compact'; revision: number; reason: 'NoSpaceRecovery'; message: string }
  | { action: 'DisarmAlarms'; memberIds: string[]; reason: 'NoSpaceRecovery'; message: string };

/** The defragmentation rule of spec.maintenance.defragmentation, in bytes. */
export interface DefragRule {
  enabled: boolean;
  quotaBackendBytes: number;
  /** Share of the quota at which a member's database qualifies, in (0, 1]. */
  quotaUsageAbove: number;
  /** Bytes that defragmenting must free for a member below the quota share to qualify. */
  minReclaimBytes: number;
  /** Whether now is inside the maintenance window (true when there is none). */
  inWindow: boolean;
}

/** etcd alarms as the cluster reports them. */
export interface Alarm {
  memberId: string;
  alarm: 'NOSPACE' | 'CORRUPT';
}

/** Everything upkeep decides on besides the members: the rule, alarms, and what is in flight. */
export interface MaintenanceInput {
  rule: DefragRule;
  noSpaceRecovery: boolean;
  alarms: readonly Alarm[];
  /** A defragmentation started earlier is still running on this member. */
  inFlight?: string;
  /** Members left alone after a failed defragmentation, until their back-off ends. */
  backingOff: readonly string[];
  /**
   * Members whose last defragmentation, a short while ago, freed little: the rule leaves them alone for
   * a while, because under steady write churn bbolt keeps some pages free and the rule would otherwise
   * fire again and again.
   */
  coolingDown?: readonly string[];
  /** NOSPACE recovery so far: compacted yet, and which members have been defragmented since the alarm. */
  recovery?: {
    compacted: boolean;
    /**
     * Every member has had time to apply the compaction to its own backend (the compaction call waits
     * only for the member that received it; the others compact in the background).
     */
    compactionSettled?: boolean;
    defragmented: readonly string[];
    retryAfter?: string;
  };
}

/** ...and only when at least this share of the file is free, so that defragmenting gains something. */
export const DEFRAG_MIN_FREE_RATIO = 0.1;

const MiB = 2 ** 20;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** Why a member qualifies for defragmentation by rule, or undefined. */
export function defragReason(m: MemberHealth, rule: DefragRule): 'DatabaseNearQuota' | 'SpaceReclaimable' | undefined {
  const free = m.dbSizeInUse === undefined ? 0 : m.dbSize - m.dbSizeInUse;
  // Below a tenth of the file free there is nothing worth a blocked member, whatever the rule says:
  // a database full of live data stays full after defragmentation.
  if (free < DEFRAG_MIN_FREE_RATIO * m.dbSize || free <= 0) return undefined;
  if (m.dbSize >= rule.quotaUsageAbove * rule.quotaBackendBytes) return 'DatabaseNearQuota';
  if (free >= rule.minReclaimBytes) return 'SpaceReclaimable';
  return undefined;
}

/**
 * Members, pods and the budget must all allow a disruption: every voter healthy and caught up (so the
 * member defragmented last is back before the next), and no learner, replacement or rolling update
 * in flight (the planner comes here only when those steps have nothing to do).
 */
function busy(view: ClusterView, podsSettled: readonly string[]): string | undefined {
  const healthy = new Set(healthyVotersOf(view.members, view.maxRaftLag ?? DEFAULT_MAX_RAFT_LAG).map((m) => m.name));
  const notHealthy = votersOf(view.members).filter((m) => !healthy.has(m.name)).map((m) => m.name);
  const notSettled = [...notHealthy, ...podsSettled.filter((n) => !notHealthy.includes(n))];
  return notSettled.length > 0 ? listNames(notSettled) : undefined;
}

/** Followers first (the largest reclaim first), the leader last. */
const order = (a: MemberHealth, b: MemberHealth): number =>
  Number(a.isLeader) - Number(b.isLeader) || b.dbSize - (b.dbSizeInUse ?? b.dbSize) - (a.dbSize - (a.dbSizeInUse ?? a.dbSize)) || compareText(a.name, b.name);

/** Defragment the target, or move leadership off it first, as the budget allows. */
function disruptStep(target: MemberHealth, view: ClusterView, reason: 'DatabaseNearQuota' | 'SpaceReclaimable' | 'NoSpaceRecovery', why: string): DefragStep {
  const decision = mayDisrupt(target.name, view);
  switch (decision.decision) {
    case 'Allow':
      return { action: 'Defragment', member: target.name, id: target.id, dbSize: target.dbSize, reason, message: `defragmenting ${target.name}: ${why}` };
    case 'MoveLeaderFirst':
      return {
        action: 'MoveLeader',
        from: target.id,
        to: decision.transferee.id,
        toName: decision.transferee.name,
        reason: reason === 'NoSpaceRecovery' ? 'NoSpaceRecovery' : 'DefragmentLeader',
        message: `moving leadership from ${target.name} to ${decision.transferee.name} before defragmenting ${target.name} (${why})`,
      };
    case 'Refuse':
      return { action: 'Wait', reason: decision.reason, message: `defragmentation of ${target.name} waits: ${decision.message}` };
  }
}

/**
 * The next upkeep step once membership and configuration have converged. A NOSPACE alarm (with
 * recovery on) comes first and ignores the window: compact to the current revision, defragment every
 * member once, then disarm. Otherwise members that qualify by rule are defragmented inside the window.
 * One member at a time, followers first, the leader only after leadership moved, only within the
 * disruption budget, never while a defragmentation is in flight or a CORRUPT alarm is active.
 * podsNotSettled: desired members whose pod is missing, terminating or not ready.
 */
export function nextMaintenance(view: ClusterView, m: MaintenanceInput, podsNotSettled: readonly string[] = []): DefragStep {
  const leader = leaderOf(view.members);
  if (m.alarms.some((a) => a.alarm === 'CORRUPT')) {
    return { action: 'None', reason: 'DataCorrupt', message: 'a CORRUPT alarm is active: no defragmentation and no alarm disarm until a human has dealt with it' };
  }
  const noSpace = m.alarms.filter((a) => a.alarm === 'NOSPACE');
  if (noSpace.length > 0 && m.noSpaceRecovery) return noSpaceStep(view, m, noSpace, podsNotSettled);
  if (noSpace.length > 0) return { action: 'None', reason: 'NoSpace', message: 'a NOSPACE alarm is active and maintenance.noSpaceRecovery is off' };
  if (!m.rule.enabled) return { action: 'None', reason: 'DefragmentationDisabled', message: 'defragmentation is disabled' };

  const due = votersOf(view.members)
    .map((x) => ({ member: x, reason: defragReason(x, m.rule) }))
    .filter((x): x is { member: MemberHealth; reason: 'DatabaseNearQuota' | 'SpaceReclaimable' } => x.reason !== undefined);
  if (due.length === 0) return { action: 'None', reason: 'NothingToDefragment', message: 'no member database is over the defragmentation rule' };
  if (m.inFlight !== undefined) return { action: 'Wait', reason: 'DefragmentationInProgress', message: `waiting for the defragmentation of ${m.inFlight} to finish` };
  const rested = due.filter((x) => !(m.coolingDown ?? []).includes(x.member.name));
  if (rested.length === 0) {
    return { action: 'None', reason: 'DefragmentedRecently', message: `${listNames(due.map((x) => x.member.name))} ${due.length === 1 ? 'was' : 'were'} defragmented a short while ago` };
  }
  const ready = rested.filter((x) => !m.backingOff.includes(x.member.name));
  if (ready.length === 0) {
    return { action: 'None', reason: 'DefragmentationBackoff', message: `${listNames(rested.map((x) => x.member.name))} failed to defragment and ${rested.length === 1 ? 'is' : 'are'} left alone for a while` };
  }
  if (!m.rule.inWindow) return { action: 'None', reason: 'OutsideMaintenanceWindow', message: `${listNames(ready.map((x) => x.member.name))} will be defragmented in the next maintenance window` };
  if (leader === undefined) return { action: 'Wait', reason: 'NoLeader', message: 'defragmentation waits for a leader' };
  const notSettled = busy(view, podsNotSettled);
  if (notSettled !== undefined) {
    return { action: 'Wait', reason: 'WaitingForHealthyMembers', message: `${notSettled} must be running, healthy and caught up before a member is defragmented` };
  }
  const target = ready.sort((a, b) => order(a.member, b.member))[0]!;
  const free = target.member.dbSize - (target.member.dbSizeInUse ?? target.member.dbSize);
  const why =
    target.reason === 'DatabaseNearQuota'
      ? `its database is ${mib(target.member.dbSize)}, at least ${Math.round(m.rule.quotaUsageAbove * 100)}% of the ${mib(m.rule.quotaBackendBytes)} quota, with ${mib(free)} to reclaim`
      : `${mib(free)} of its ${mib(target.member.dbSize)} database is free, at least minReclaimBytes ${mib(m.rule.minReclaimBytes)}`;
  return disruptStep(target.member, view, target.reason, why);
}

function noSpaceStep(view: ClusterView, m: MaintenanceInput, alarms: readonly Alarm[], podsNotSettled: readonly string[]): DefragStep {
  const recovery = m.recovery ?? { compacted: false, defragmented: [] };
  if (recovery.retryAfter !== undefined) {
    return {
      action: 'Wait',
      reason: 'NoSpaceRecoveryBackoff',
      message: `the NOSPACE alarm came back after a recovery: the live data may exceed the quota; trying again after ${recovery.retryAfter} (delete data or raise members.quotaBackendBytes)`,
    };
  }
  if (m.inFlight !== undefined) return { action: 'Wait', reason: 'DefragmentationInProgress', message: `NOSPACE recovery: waiting for the defragmentation of ${m.inFlight} to finish` };
  const leader = leaderOf(view.members);
  if (leader === undefined) return { action: 'Wait', reason: 'NoLeader', message: 'NOSPACE recovery waits for a leader' };
  if (!recovery.compacted) {
    return { action: 'Compact', revision: leader.revision, reason: 'NoSpaceRecovery', message: `NOSPACE recovery: compacting the keyspace to the current revision ${leader.revision}` };
  }
  const left = votersOf(view.members).filter((x) => !recovery.defragmented.includes(x.name));
  // Defragmenting a member before its own compaction has freed the old revisions gains nothing, and
  // that member would raise NOSPACE again on the next write after the disarm.
  const compacting = left.filter((x) => x.dbSizeInUse !== undefined && x.dbSize - x.dbSizeInUse < DEFRAG_MIN_FREE_RATIO * x.dbSize);
  if (compacting.length > 0 && recovery.compactionSettled !== true) {
    return { action: 'Wait', reason: 'WaitingForCompaction', message: `NOSPACE recovery: waiting for ${listNames(compacting.map((x) => x.name))} to apply the compaction before defragmenting` };
  }
  if (left.length === 0) {
    return { action: 'DisarmAlarms', memberIds: alarms.map((a) => a.memberId), reason: 'NoSpaceRecovery', message: 'NOSPACE recovery: every member is compacted and defragmented; disarming the NOSPACE alarm' };
  }
  const ready = left.filter((x) => !m.backingOff.includes(x.name));
  if (ready.length === 0) return { action: 'Wait', reason: 'DefragmentationBackoff', message: `NOSPACE recovery: ${listNames(left.map((x) => x.name))} failed to defragment; trying again after a back-off` };
  const notSettled = busy(view, podsNotSettled);
  if (notSettled !== undefined) {
    return { action: 'Wait', reason: 'WaitingForHealthyMembers', message: `NOSPACE recovery: ${notSettled} must be running, healthy and caught up before the next member is defragmented` };
  }
  const target = ready.sort(order)[0]!;
  return disruptStep(target, view, 'NoSpaceRecovery', `NOSPACE recovery, ${left.length} of ${votersOf(view.members).length} members left`);
}
