import { mayDisrupt, type ClusterView } from './disruption.ts';
import { DEFAULT_MAX_RAFT_LAG, healthyVotersOf, leaderOf } from './members.ts';

/** The answer to "which member should be defragmented now", one member at a time. */
export type DefragStep =
  | { action: 'None'; reason: 'NothingToDefragment'; message: string }
  | { action: 'Wait'; reason: string; message: string }
  | { action: 'MoveLeader'; from: string; to: string; toName: string; reason: 'DefragmentLeader'; message: string }
  | { action: 'Defragment'; member: string; id: string; reason: 'DatabaseNearQuota'; message: string };

/** Defragment when the database file reaches this share of the backend quota (the source documents' 80%). */
export const DEFRAG_QUOTA_RATIO = 0.8;
/** ...and only when at least this share of the file is free, so that defragmenting gains something. */
export const DEFRAG_MIN_FREE_RATIO = 0.1;

/**
 * Picks the next member to defragment: one whose database is near the quota and mostly reclaimable,
 * followers first, the leader only after leadership moved; never while a disruption would be refused,
 * since defragmentation blocks the member for its duration.
 */
export function nextDefragmentation(view: ClusterView, quotaBackendBytes: number): DefragStep {
  const leader = leaderOf(view.members);
  const due = healthyVotersOf(view.members, view.maxRaftLag ?? DEFAULT_MAX_RAFT_LAG)
    .filter((m) => m.dbSize >= DEFRAG_QUOTA_RATIO * quotaBackendBytes)
    .filter((m) => m.dbSizeInUse === undefined || m.dbSize - m.dbSizeInUse >= DEFRAG_MIN_FREE_RATIO * m.dbSize)
    .sort((a, b) => Number(a.isLeader) - Number(b.isLeader) || b.dbSize - a.dbSize);
  const target = due[0];
  if (target === undefined || leader === undefined) {
    return { action: 'None', reason: 'NothingToDefragment', message: `no healthy member's database has reached ${DEFRAG_QUOTA_RATIO * 100}% of the quota with space to reclaim` };
  }
  const decision = mayDisrupt(target.name, view);
  switch (decision.decision) {
    case 'Allow':
      return {
        action: 'Defragment',
        member: target.name,
        id: target.id,
        reason: 'DatabaseNearQuota',
        message: `defragmenting ${target.name}: its database is ${target.dbSize} bytes of a ${quotaBackendBytes}-byte quota`,
      };
    case 'MoveLeaderFirst':
      return {
        action: 'MoveLeader',
        from: target.id,
        to: decision.transferee.id,
        toName: decision.transferee.name,
        reason: 'DefragmentLeader',
        message: `moving leadership from ${target.name} to ${decision.transferee.name} before defragmenting ${target.name}`,
      };
    case 'Refuse':
      return { action: 'Wait', reason: decision.reason, message: `defragmentation of ${target.name} waits: ${decision.message}` };
  }
}
