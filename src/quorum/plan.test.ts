import { describe, expect, it } from 'vitest';
import type { MemberHealth } from './members.ts';
import { memberReplicas, nextStep, type MemberPod, type PlanInput, type Step } from './plan.ts';
import { cluster, memberNames, podsFor } from './testing.ts';

interface Case {
  name: string;
  count: number;
  maxUnavailable?: number;
  members: string;
  pods?: Record<string, Partial<MemberPod>>;
  /** Pods absent although their member exists. */
  noPods?: number[];
  volumes?: number[];
  expect: Partial<Step>;
  message?: string;
}

const n = (i: number): string => `main-member-${i}`;

function run(c: Case): Step {
  const members = cluster(c.members);
  const podNames = members.map((m) => m.name).filter((name) => !(c.noPods ?? []).some((i) => n(i) === name));
  const extraPods = Object.keys(c.pods ?? {}).filter((name) => !podNames.includes(name));
  return nextStep({
    desired: memberNames(c.count),
    budget: { count: c.count, maxUnavailable: c.maxUnavailable },
    members,
    pods: podsFor([...podNames, ...extraPods], c.pods),
    volumes: (c.volumes ?? []).map(n),
  });
}

const steady: Case[] = [
  { name: 'a healthy, up-to-date 3 has nothing to do', count: 3, members: 'L F F', expect: { action: 'None', reason: 'Converged' } },
  { name: 'etcd unreadable: wait', count: 3, members: '', expect: { action: 'Wait', reason: 'EtcdUnreachable' } },
  {
    name: 'quorum lost: stop and say so',
    count: 3,
    members: 'F X X',
    expect: { action: 'Stop', reason: 'QuorumLost' },
    message: '1 of 3 voters are healthy and quorum needs 2 (not healthy: main-member-1 and main-member-2); the operator changes nothing',
  },
  {
    name: 'quorum lost even with an out-of-date pod: still stop',
    count: 3,
    members: 'X X F',
    pods: { [n(0)]: { upToDate: false } },
    expect: { action: 'Stop', reason: 'QuorumLost' },
  },
  { name: 'quorum but no leader yet: wait', count: 3, members: 'F F X', expect: { action: 'Wait', reason: 'NoLeader' } },
];

const scaling: Case[] = [
  { name: 'scale out 3 -> 5: add the first missing member as a learner', count: 5, members: 'L F F', expect: { action: 'AddLearner', member: n(3) } },
  { name: 'scale out: the learner has no pod yet', count: 5, members: 'L F F l@0', noPods: [3], expect: { action: 'Wait', reason: 'LearnerStarting' } },
  { name: 'scale out: the learner is behind', count: 5, members: 'L@5000 F@5000 F@5000 l@10', expect: { action: 'Wait', reason: 'LearnerCatchingUp' }, message: '4990 raft entries behind' },
  { name: 'scale out: the learner has not answered yet', count: 5, members: 'L F F lx', expect: { action: 'Wait', reason: 'LearnerCatchingUp' }, message: 'not answering yet' },
  { name: 'scale out: a caught-up learner is promoted', count: 5, members: 'L@5000 F F l@4990', expect: { action: 'PromoteLearner', member: n(3), id: '1003' } },
  { name: 'scale out: then the next member', count: 5, members: 'L F F F', expect: { action: 'AddLearner', member: n(4) } },
  { name: 'scale out into an ordinal whose old volume was kept: release the volume claim first', count: 5, members: 'L F F', volumes: [3], expect: { action: 'ReleaseVolume', pod: n(3), reason: 'StaleMemberVolume' } },
  { name: 'scale out never adds while quorum is lost', count: 5, members: 'L X X', expect: { action: 'Stop', reason: 'QuorumLost' } },
  { name: 'scale in 5 -> 3: remove the highest ordinal first', count: 3, members: 'L F F F F', expect: { action: 'RemoveMember', member: n(4), id: '1004', reason: 'ScaleIn' } },
  {
    name: 'scale in: move leadership off the member to remove, onto a member that stays',
    count: 3,
    members: 'F@100 F@100 F@100 F@200 L@200',
    expect: { action: 'MoveLeader', from: '1004', reason: 'ScaleIn' },
  },
  {
    name: 'scale in: a follower of the staying set receives leadership',
    count: 3,
    members: 'F@150 F@100 F@100 F@200 L@200',
    expect: { action: 'MoveLeader', from: '1004', to: '1000', toName: n(0) },
  },
  { name: 'scale in: wait while removal would leave too few healthy voters', count: 3, members: 'L F X X F', expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' } },
  { name: 'scale in: an unhealthy surplus member can go', count: 3, members: 'L F F F X', expect: { action: 'RemoveMember', member: n(4) } },
  { name: 'scale in: a learner beyond the count is removed', count: 3, members: 'L F F l', expect: { action: 'RemoveMember', member: n(3), reason: 'ScaleIn' } },
];

const replacement: Case[] = [
  {
    name: "a member whose node is gone is removed while the others keep quorum",
    count: 3,
    members: 'L F X',
    pods: { [n(2)]: { nodeGone: true, ready: false } },
    expect: { action: 'RemoveMember', member: n(2), reason: 'MemberFailed' },
    message: 'because its node is gone; 2 of the remaining 2 voters are healthy',
  },
  { name: 'a member whose data is lost is removed', count: 3, members: 'L X F', pods: { [n(1)]: { dataLost: true } }, expect: { action: 'RemoveMember', member: n(1) }, message: 'its data is lost' },
  { name: 'a member that etcd still counts healthy is never replaced', count: 3, members: 'L F F', pods: { [n(2)]: { nodeGone: true } }, expect: { action: 'None' } },
  {
    name: 'replacement never happens without quorum',
    count: 3,
    members: 'L X X',
    pods: { [n(2)]: { nodeGone: true } },
    expect: { action: 'Stop', reason: 'QuorumLost' },
  },
  {
    name: 'after removal, the stale pod goes with its volume',
    count: 3,
    members: 'L F',
    pods: { [n(2)]: { dataLost: true } },
    expect: { action: 'DeletePod', pod: n(2), releaseVolume: true, reason: 'StaleMemberPod' },
  },
  { name: 'after removal, with no stale pod, the member is added back as a learner', count: 3, members: 'L F', expect: { action: 'AddLearner', member: n(2) } },
  {
    name: 'a learner whose pod lingers on a gone node leaves etcd before its pod and volume go',
    count: 3,
    members: 'L F l',
    pods: { [n(2)]: { nodeGone: true } },
    expect: { action: 'RemoveMember', member: n(2), id: '1002', reason: 'LearnerFailed' },
  },
  {
    name: 'a learner whose data is lost leaves etcd first: never an empty volume under an ID the leader knows',
    count: 3,
    members: 'L F lx',
    pods: { [n(2)]: { dataLost: true, dataLostReason: 'etcd keeps exiting on its data directory (Was the raft log corrupted, truncated, or lost?, 5 restarts)' } },
    expect: { action: 'RemoveMember', member: n(2), reason: 'LearnerFailed' },
    message: 'its data is lost: etcd keeps exiting',
  },
  {
    name: 'a missing member whose pod has already run: that pod and its claim go before the learner is added',
    count: 3,
    members: 'L F',
    pods: { [n(2)]: { started: true, ready: false } },
    expect: { action: 'DeletePod', pod: n(2), releaseVolume: true, reason: 'StaleMemberPod' },
  },
  {
    name: 'a missing member whose fresh pod has not started yet: add the learner',
    count: 3,
    members: 'L F',
    pods: { [n(2)]: { started: false, ready: false } },
    expect: { action: 'AddLearner', member: n(2) },
  },
  { name: 'a replaced member in the middle is added back too', count: 3, members: 'L F', expect: { action: 'AddLearner', member: n(2) } },
];

const rolling: Case[] = [
  {
    name: 'a new CA bundle only: a trust rollout, followers first, one at a time like any rolling update',
    count: 3,
    members: 'L F F',
    pods: { [n(1)]: { upToDate: false, trustOnly: true }, [n(2)]: { upToDate: false, trustOnly: true } },
    expect: { action: 'DeletePod', pod: n(2), releaseVolume: false, reason: 'TrustRollout' },
    message: 'restarting main-member-2 onto the new CA bundle, which etcd reads only at start (2 left to update)',
  },
  {
    name: 'a new CA bundle on the leader: leadership moves first, as a trust rollout',
    count: 3,
    members: 'F@100 L@100 F@100',
    pods: { [n(1)]: { upToDate: false, trustOnly: true } },
    expect: { action: 'MoveLeader', from: '1001', reason: 'TrustRollout' },
  },
  {
    name: 'a trust rollout waits for the restarted member like any rolling update',
    count: 3,
    members: 'L@9000 F@9000 F@3',
    pods: { [n(0)]: { upToDate: false, trustOnly: true } },
    expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' },
  },
  {
    name: 'rolling update: followers first, highest ordinal first',
    count: 3,
    members: 'L F F',
    pods: { [n(0)]: { upToDate: false }, [n(1)]: { upToDate: false }, [n(2)]: { upToDate: false } },
    expect: { action: 'DeletePod', pod: n(2), releaseVolume: false, reason: 'RollingUpdate' },
    message: '3 left to update',
  },
  {
    name: 'rolling update: wait until the replaced member is healthy and caught up',
    count: 3,
    members: 'L@9000 F@9000 F@3',
    pods: { [n(0)]: { upToDate: false }, [n(1)]: { upToDate: false } },
    expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' },
    message: 'main-member-2 must be running, healthy and caught up',
  },
  {
    name: 'rolling update: wait while a pod is terminating',
    count: 3,
    members: 'L F F',
    pods: { [n(0)]: { upToDate: false }, [n(2)]: { terminating: true } },
    expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' },
  },
  {
    name: 'rolling update: the leader last, after moving leadership to an updated follower',
    count: 3,
    members: 'F@100 L@100 F@100',
    pods: { [n(1)]: { upToDate: false } },
    expect: { action: 'MoveLeader', from: '1001', reason: 'RollingUpdate' },
  },
  {
    name: 'rolling update: the leader is replaced once it has become a follower',
    count: 3,
    members: 'L F F',
    pods: { [n(1)]: { upToDate: false } },
    expect: { action: 'DeletePod', pod: n(1) },
  },
  {
    name: 'rolling update: an unhealthy member blocks the others',
    count: 5,
    maxUnavailable: 2,
    members: 'L F F F X',
    pods: { [n(3)]: { upToDate: false } },
    expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' },
    message: 'main-member-4 must be running',
  },
  {
    name: 'rolling update of a single member pauses with a way out',
    count: 1,
    members: 'L',
    pods: { [n(0)]: { upToDate: false } },
    expect: { action: 'Wait', reason: 'BudgetExhausted' },
    message: 'delete pod main-member-0 yourself',
  },
  {
    name: 'a trust rollout of a single member holds the CA rotation and says how to accept the outage',
    count: 1,
    members: 'L',
    pods: { [n(0)]: { upToDate: false, trustOnly: true } },
    expect: { action: 'Wait', reason: 'BudgetExhausted' },
    message: 'CA rotation paused: main-member-0 must restart onto the new CA bundle',
  },
  {
    name: 'a learner in flight comes before the rolling update',
    count: 5,
    members: 'L@5000 F@5000 F@5000 F@5000 l@0',
    pods: { [n(0)]: { upToDate: false } },
    expect: { action: 'Wait', reason: 'LearnerCatchingUp' },
  },
];

// The planner's first rule: a cordoned node announces a drain; its leader hands over before anything else.
const cordoned: Case[] = [
  {
    name: "the leader's node is cordoned: leadership moves to a follower on a schedulable node",
    count: 3,
    members: 'L F F@90',
    pods: { [n(0)]: { nodeCordoned: true } },
    expect: { action: 'MoveLeader', from: '1000', to: '1001', toName: n(1), reason: 'NodeCordoned' },
    message: 'moving leadership from main-member-0 to main-member-1: its node is cordoned',
  },
  {
    name: 'a follower on a cordoned node is passed over even with the longest log',
    count: 3,
    members: 'L F@200 F',
    pods: { [n(0)]: { nodeCordoned: true }, [n(1)]: { nodeCordoned: true } },
    expect: { action: 'MoveLeader', toName: n(2), reason: 'NodeCordoned' },
  },
  {
    name: 'it goes before a rolling update',
    count: 3,
    members: 'L F F',
    pods: { [n(0)]: { nodeCordoned: true }, [n(2)]: { upToDate: false } },
    expect: { action: 'MoveLeader', reason: 'NodeCordoned' },
  },
  {
    name: 'every node cordoned: nowhere better to go, the plan goes on',
    count: 3,
    members: 'L F F',
    pods: { [n(0)]: { nodeCordoned: true }, [n(1)]: { nodeCordoned: true }, [n(2)]: { nodeCordoned: true } },
    expect: { action: 'None', reason: 'Converged' },
  },
  {
    name: 'no caught-up follower to take over: the plan goes on',
    count: 3,
    members: 'L@5000 F@10 F@10',
    pods: { [n(0)]: { nodeCordoned: true } },
    expect: { action: 'None', reason: 'Converged' },
  },
  { name: 'quorum lost: stop comes first, the cordon waits', count: 3, members: 'L X X', pods: { [n(0)]: { nodeCordoned: true } }, expect: { action: 'Stop', reason: 'QuorumLost' } },
  { name: "a follower's node cordoned: nothing to move", count: 3, members: 'L F F', pods: { [n(1)]: { nodeCordoned: true } }, expect: { action: 'None', reason: 'Converged' } },
  { name: 'a single member has no one to hand over to', count: 1, members: 'L', pods: { [n(0)]: { nodeCordoned: true } }, expect: { action: 'None', reason: 'Converged' } },
];

describe.each([
  ['a cordoned leader', cordoned],
  ['steady state', steady],
  ['scaling', scaling],
  ['member replacement', replacement],
  ['rolling update', rolling],
])('nextStep: %s', (_, cases) => {
  it.each(cases)('$name', (c) => {
    const step = run(c);
    expect(step).toMatchObject(c.expect);
    if (c.message !== undefined) expect(step.message).toContain(c.message);
  });
});

describe('nextStep leader transfer in a rolling update', () => {
  it('prefers a follower that is already up to date', () => {
    const step = nextStep({
      desired: memberNames(3),
      budget: { count: 3 },
      members: cluster('F@100 L@100 F@100'),
      pods: podsFor(memberNames(3), { [n(1)]: { upToDate: false }, [n(0)]: { upToDate: false } }),
      volumes: [],
    });
    // main-member-0 is a follower and out of date: it goes first.
    expect(step).toMatchObject({ action: 'DeletePod', pod: n(0) });
  });
});

describe('memberReplicas', () => {
  it.each([
    [[], 0],
    [['main-member-0', 'main-member-1', 'main-member-2'], 3],
    [['main-member-0', 'main-member-2'], 3],
    [['main-member-0', 'main-member-1', 'main-member-2', 'main-member-3'], 4],
    [['main-member-0', 'foreign'], 1],
  ])('%j -> %d', (names, replicas) => {
    expect(memberReplicas(names)).toBe(replicas);
  });
});

describe('nextStep: a learner whose pod predates its addition', () => {
  it('recreates the pod and its empty volume when its member list lacks itself, and waits otherwise', () => {
    const member = (name: string, over: Partial<MemberHealth> = {}): MemberHealth => ({
      id: `id-${name}`,
      name,
      isLearner: false,
      healthy: true,
      isLeader: name === 'm-member-1',
      raftIndex: 100,
      revision: 1,
      dbSize: 1,
      ...over,
    });
    const pod = (name: string, over: Partial<MemberPod> = {}): MemberPod => ({ name, ready: true, terminating: false, upToDate: true, nodeGone: false, dataLost: false, ...over });
    const input = (staleJoin: boolean): PlanInput => ({
      desired: ['m-member-0', 'm-member-1', 'm-member-2'],
      budget: { count: 3 },
      members: [member('m-member-0', { isLearner: true, healthy: false, raftIndex: 0 }), member('m-member-1'), member('m-member-2')],
      pods: [pod('m-member-0', { ready: false, staleJoin }), pod('m-member-1'), pod('m-member-2')],
      volumes: ['m-member-0', 'm-member-1', 'm-member-2'],
    });
    expect(nextStep(input(true))).toMatchObject({ action: 'DeletePod', pod: 'm-member-0', releaseVolume: true, reason: 'StaleJoinPod' });
    expect(nextStep(input(false))).toMatchObject({ action: 'Wait', reason: 'LearnerCatchingUp' });
  });
});

describe('nextStep: upkeep goes through the planner', () => {
  const MiB = 2 ** 20;
  const fragmented = (spec: string): MemberHealth[] => cluster(spec).map((m) => ({ ...m, dbSize: 90 * MiB, dbSizeInUse: 20 * MiB }));
  const maintenance = (alarms: { memberId: string; alarm: 'NOSPACE' | 'CORRUPT' }[] = []) => ({
    rule: { enabled: true, quotaBackendBytes: 100 * MiB, quotaUsageAbove: 0.8, minReclaimBytes: 64 * MiB, inWindow: true },
    noSpaceRecovery: true,
    alarms,
    backingOff: [],
  });
  const plan = (spec: string, pods: Record<string, Partial<MemberPod>> = {}, alarms: { memberId: string; alarm: 'NOSPACE' | 'CORRUPT' }[] = [], count = 3): Step => {
    const members = fragmented(spec);
    return nextStep({
      desired: memberNames(count),
      budget: { count },
      members,
      pods: podsFor(members.map((m) => m.name), pods),
      volumes: [],
      maintenance: maintenance(alarms),
    });
  };

  it.each([
    { name: 'converged: a fragmented follower is defragmented', spec: 'L F F', expect: { action: 'Defragment', member: n(1) } },
    { name: 'followers first, then the leader after MoveLeader', spec: 'F F L', expect: { action: 'Defragment', member: n(0) } },
    { name: 'never during a rolling update: the update goes on', spec: 'L F F', pods: { [n(2)]: { upToDate: false } }, expect: { action: 'DeletePod', pod: n(2), reason: 'RollingUpdate' } },
    { name: 'never while the replaced pod is coming back', spec: 'L F F', pods: { [n(0)]: { upToDate: false }, [n(2)]: { ready: false } }, expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' } },
    { name: 'never while a learner is in flight', spec: 'L@5000 F@5000 F@5000 l@10', count: 5, expect: { action: 'Wait', reason: 'LearnerCatchingUp' } },
    { name: 'never while a member is being replaced', spec: 'L F X', pods: { [n(2)]: { nodeGone: true } }, expect: { action: 'RemoveMember', member: n(2), reason: 'MemberFailed' } },
    { name: 'never while a scale-out adds a member', spec: 'L F F', count: 5, expect: { action: 'AddLearner', member: n(3) } },
    { name: 'never beyond the budget: another member unhealthy', spec: 'L F X', expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' } },
    { name: 'NOSPACE recovery before the next pod of a rolling update', spec: 'L F F', pods: { [n(2)]: { upToDate: false } }, alarms: [{ memberId: '1001', alarm: 'NOSPACE' as const }], expect: { action: 'Compact' } },
    { name: 'NOSPACE recovery compacts while a pod is replaced (compaction disrupts no member)', spec: 'L F F', pods: { [n(2)]: { terminating: true } }, alarms: [{ memberId: '1001', alarm: 'NOSPACE' as const }], expect: { action: 'Compact' } },
    { name: 'CORRUPT: the rolling update proceeds, upkeep never', spec: 'L F F', pods: { [n(2)]: { upToDate: false } }, alarms: [{ memberId: '1001', alarm: 'CORRUPT' as const }], expect: { action: 'DeletePod', pod: n(2) } },
    { name: 'CORRUPT when converged: nothing', spec: 'L F F', alarms: [{ memberId: '1001', alarm: 'CORRUPT' as const }], expect: { action: 'None', reason: 'DataCorrupt' } },
  ])('$name', ({ spec, pods, alarms, count, expect: want }) => {
    expect(plan(spec, pods, alarms, count)).toMatchObject(want);
  });

  it('defragments the leader last: after both followers, leadership moves first', () => {
    const members = fragmented('L F F').map((m) => (m.isLeader ? m : { ...m, dbSize: 20 * MiB, dbSizeInUse: 19 * MiB }));
    const step = nextStep({ desired: memberNames(3), budget: { count: 3 }, members, pods: podsFor(memberNames(3)), volumes: [], maintenance: maintenance() });
    expect(step).toMatchObject({ action: 'MoveLeader', from: '1000', reason: 'DefragmentLeader' });
  });

  it('without maintenance input the planner does no upkeep', () => {
    const members = fragmented('L F F');
    expect(nextStep({ desired: memberNames(3), budget: { count: 3 }, members, pods: podsFor(memberNames(3)), volumes: [] })).toMatchObject({ action: 'None', reason: 'Converged' });
  });
});
