import { effectiveMaxUnavailable, minHealthyVoters, quorumSize, type Budget } from './math.ts';
import { bestTransferee, DEFAULT_MAX_RAFT_LAG, healthyVotersOf, leaderOf, listNames, votersOf, type MemberHealth } from './members.ts';

/** What the cluster looks like when a disruption is asked for. */
export interface ClusterView {
  members: readonly MemberHealth[];
  budget: Budget;
  maxRaftLag?: number;
}

/** The answer to "may this member be disrupted now", with the reason a human and a condition can use. */
export type DisruptionDecision =
  | { decision: 'Allow'; reason: 'NotAMember' | 'Learner' | 'NotHealthy' | 'WithinBudget'; message: string }
  | { decision: 'Refuse'; reason: 'NoLeader' | 'QuorumLost' | 'OtherMembersUnhealthy' | 'BudgetExhausted' | 'NoTransferee'; message: string }
  | { decision: 'MoveLeaderFirst'; reason: 'TargetIsLeader'; message: string; transferee: MemberHealth };

/**
 * Decides whether the named member may be disrupted now (evicted, restarted, defragmented). A
 * disruption that would leave fewer healthy voters than count - maxUnavailable, or fewer than quorum,
 * is refused; the leader is disrupted only after leadership has moved to a caught-up follower.
 */
export function mayDisrupt(name: string, view: ClusterView): DisruptionDecision {
  const maxLag = view.maxRaftLag ?? DEFAULT_MAX_RAFT_LAG;
  const target = view.members.find((m) => m.name === name);
  if (target === undefined) {
    return { decision: 'Allow', reason: 'NotAMember', message: `${name} is not an etcd member, so disrupting it changes no vote` };
  }
  if (target.isLearner) {
    return { decision: 'Allow', reason: 'Learner', message: `${name} is a learner and does not vote; disrupting it only delays its promotion` };
  }
  // Without a leader no member can be shown caught up; refuse rather than call every member unhealthy.
  if (leaderOf(view.members) === undefined) {
    return { decision: 'Refuse', reason: 'NoLeader', message: `no member reports a leader; no voter may be disrupted until etcd elects one` };
  }
  const healthy = healthyVotersOf(view.members, maxLag);
  if (!healthy.some((m) => m.name === name)) {
    return { decision: 'Allow', reason: 'NotHealthy', message: `${name} is not counted as a healthy voter, so disrupting it leaves the healthy count unchanged` };
  }
  const voters = votersOf(view.members).length;
  const quorum = quorumSize(voters);
  if (healthy.length < quorum) {
    return { decision: 'Refuse', reason: 'QuorumLost', message: `only ${healthy.length} of ${voters} voters are healthy and quorum needs ${quorum}` };
  }
  const floor = minHealthyVoters(view.budget, voters);
  if (healthy.length - 1 < floor) {
    const unhealthy = votersOf(view.members).filter((m) => !healthy.includes(m)).map((m) => m.name);
    if (unhealthy.length > 0) {
      return {
        decision: 'Refuse',
        reason: 'OtherMembersUnhealthy',
        message: `disrupting ${name} would leave ${healthy.length - 1} healthy voters, fewer than the ${floor} required, because ${listNames(unhealthy)} ${unhealthy.length === 1 ? 'is' : 'are'} not healthy; fix ${unhealthy.length === 1 ? 'it' : 'them'} first`,
      };
    }
    const single = view.budget.count === 1 ? '; a single member tolerates no disruption: scale to 3 members first' : '';
    return {
      decision: 'Refuse',
      reason: 'BudgetExhausted',
      message: `disrupting ${name} would leave ${healthy.length - 1} healthy voters, fewer than the ${floor} required (members.count ${view.budget.count}, maxUnavailable ${effectiveMaxUnavailable(view.budget)})${single}`,
    };
  }
  if (target.isLeader) {
    const transferee = bestTransferee(view.members, { exclude: [name], maxLag });
    if (transferee === undefined) {
      return { decision: 'Refuse', reason: 'NoTransferee', message: `${name} is the leader and no healthy, caught-up follower can take over` };
    }
    return {
      decision: 'MoveLeaderFirst',
      reason: 'TargetIsLeader',
      message: `${name} is the leader; move leadership to ${transferee.name} before disrupting it`,
      transferee,
    };
  }
  return {
    decision: 'Allow',
    reason: 'WithinBudget',
    message: `disrupting ${name} leaves ${healthy.length - 1} of ${voters} voters healthy, at least the ${floor} required`,
  };
}
