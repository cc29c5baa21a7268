import { describe, expect, it } from 'vitest';
import { mayDisrupt } from './disruption.ts';
import { cluster } from './testing.ts';

describe('mayDisrupt', () => {
  const cases: { name: string; members: string; count: number; maxUnavailable?: number; target: string; decision: string; reason: string; message: string }[] = [
    { name: 'a follower of a healthy 3', members: 'L F F', count: 3, target: 'main-member-2', decision: 'Allow', reason: 'WithinBudget', message: 'leaves 2 of 3 voters healthy, at least the 2 required' },
    { name: 'the leader of a healthy 3', members: 'L F F', count: 3, target: 'main-member-0', decision: 'MoveLeaderFirst', reason: 'TargetIsLeader', message: 'move leadership to main-member-1 before disrupting it' },
    { name: 'a healthy follower while another is down', members: 'L F X', count: 3, target: 'main-member-1', decision: 'Refuse', reason: 'OtherMembersUnhealthy', message: 'because main-member-2 is not healthy; fix it first' },
    { name: 'a follower while another lags behind', members: 'L@5000 F@5000 F@10', count: 3, target: 'main-member-1', decision: 'Refuse', reason: 'OtherMembersUnhealthy', message: 'main-member-2 is not healthy' },
    { name: 'the unhealthy member itself', members: 'L F X', count: 3, target: 'main-member-2', decision: 'Allow', reason: 'NotHealthy', message: 'leaves the healthy count unchanged' },
    { name: 'a learner', members: 'L F F l', count: 3, target: 'main-member-3', decision: 'Allow', reason: 'Learner', message: 'does not vote' },
    { name: 'a pod that is no member', members: 'L F F', count: 3, target: 'main-member-5', decision: 'Allow', reason: 'NotAMember', message: 'not an etcd member' },
    { name: 'a follower when no one leads', members: 'F F F', count: 3, target: 'main-member-1', decision: 'Refuse', reason: 'NoLeader', message: 'no member reports a leader' },
    { name: 'the last healthy follower of a broken 3', members: 'L X X', count: 3, target: 'main-member-0', decision: 'Refuse', reason: 'QuorumLost', message: 'only 1 of 3 voters are healthy and quorum needs 2' },
    { name: 'the single member', members: 'L', count: 1, target: 'main-member-0', decision: 'Refuse', reason: 'BudgetExhausted', message: 'a single member tolerates no disruption: scale to 3 members first' },
    { name: 'a follower with maxUnavailable 0', members: 'L F F', count: 3, maxUnavailable: 0, target: 'main-member-1', decision: 'Refuse', reason: 'BudgetExhausted', message: 'fewer than the 3 required (members.count 3, maxUnavailable 0)' },
    { name: 'a second follower of 5 with maxUnavailable 2', members: 'L F F F X', count: 5, maxUnavailable: 2, target: 'main-member-1', decision: 'Allow', reason: 'WithinBudget', message: 'leaves 3 of 5 voters healthy' },
    { name: 'a second follower of 5 with the default budget', members: 'L F F F X', count: 5, target: 'main-member-1', decision: 'Refuse', reason: 'OtherMembersUnhealthy', message: 'fewer than the 4 required' },
    { name: 'the leader of 5 when two followers lag', members: 'L@9000 F@9000 F@9000 F@1 F@1', count: 5, maxUnavailable: 2, target: 'main-member-0', decision: 'Refuse', reason: 'OtherMembersUnhealthy', message: 'main-member-3 and main-member-4 are not healthy' },
  ];

  it.each(cases)('$name: $decision ($reason)', ({ members, count, maxUnavailable, target, decision, reason, message }) => {
    const d = mayDisrupt(target, { members: cluster(members), budget: { count, maxUnavailable } });
    expect(d.decision).toBe(decision);
    expect(d.reason).toBe(reason);
    expect(d.message).toContain(message);
  });

  it('hands leadership to the most caught-up follower', () => {
    const d = mayDisrupt('main-member-0', { members: cluster('L@100 F@90 F@99'), budget: { count: 3 } });
    expect(d.decision === 'MoveLeaderFirst' && d.transferee.name).toBe('main-member-2');
  });
});
