import { compareText } from '../text-order.ts';
/** One etcd member as the operator saw it: the member list joined with that member's status. */
export interface MemberHealth {
  /** etcd's member ID (uint64, kept as a decimal string). */
  id: string;
  /** The member's (and its pod's) name; for a learner that has not started yet, derived from its peer URL. */
  name: string;
  isLearner: boolean;
  /** The member answered status without errors and knows a leader. */
  healthy: boolean;
  isLeader: boolean;
  raftIndex: number;
  revision: number;
  dbSize: number;
  /** Bytes of the database actually in use; dbSize minus this is what defragmentation frees. */
  dbSizeInUse?: number;
  /**
   * Set when the process at this member's pod answers as another member or another cluster (a data
   * directory from elsewhere, a restored wrong backup): what it said. Such a member is never healthy.
   */
  identityMismatch?: string;
}

/** How far behind the leader's raft index a member may be and still count as caught up. */
export const DEFAULT_MAX_RAFT_LAG = 1000;

/** The member that reports itself leader, if any. */
export function leaderOf(members: readonly MemberHealth[]): MemberHealth | undefined {
  return members.find((m) => m.isLeader && m.healthy);
}

/** Voting members (learners excluded). */
export function votersOf(members: readonly MemberHealth[]): MemberHealth[] {
  return members.filter((m) => !m.isLearner);
}

/** Whether the member's raft log is within maxLag entries of the leader's. */
export function isCaughtUp(m: MemberHealth, leader: MemberHealth | undefined, maxLag = DEFAULT_MAX_RAFT_LAG): boolean {
  return leader !== undefined && m.healthy && m.raftIndex + maxLag >= leader.raftIndex;
}

/** Voters that etcd counts healthy and that have caught up with the leader: what the readiness gate reports. */
export function healthyVotersOf(members: readonly MemberHealth[], maxLag = DEFAULT_MAX_RAFT_LAG): MemberHealth[] {
  const leader = leaderOf(members);
  return votersOf(members).filter((m) => isCaughtUp(m, leader, maxLag));
}

/** The best member to take over leadership: a healthy, caught-up follower with the longest log, then by name. */
export function bestTransferee(
  members: readonly MemberHealth[],
  { exclude = [], prefer = () => true, maxLag = DEFAULT_MAX_RAFT_LAG }: { exclude?: readonly string[]; prefer?: (m: MemberHealth) => boolean; maxLag?: number } = {},
): MemberHealth | undefined {
  const candidates = healthyVotersOf(members, maxLag).filter((m) => !m.isLeader && !exclude.includes(m.name));
  const rank = (m: MemberHealth): number => (prefer(m) ? 1 : 0);
  return candidates.sort((a, b) => rank(b) - rank(a) || b.raftIndex - a.raftIndex || compareText(a.name, b.name))[0];
}

/** The ordinal at the end of a member name ("main-member-2" is 2), or undefined for a foreign name. */
export function ordinalOf(name: string): number | undefined {
  const m = /-(\d+)$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** "a, b and c" for messages. */
export function listNames(names: readonly string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}
