import { describe, expect, it } from 'vitest';
import { etcdTopologySchema } from '../api/etcd-topology.ts';
import type { MemberHealth } from '../quorum/members.ts';
import { computeStatus, decideConditions, type Observation } from './status.ts';

const topology = (count = 3) =>
  etcdTopologySchema.parse({ apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', metadata: { name: 'main', generation: 4 }, spec: { members: { count } } });
const member = (i: number, over: Partial<MemberHealth> = {}): MemberHealth => ({
  id: String(1000 + i),
  name: `main-member-${i}`,
  isLearner: false,
  healthy: true,
  isLeader: i === 0,
  raftIndex: 100,
  revision: 10,
  dbSize: 20480,
  ...over,
});
const pods = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `main-member-${i}`, node: `central-${i}`, running: true }));
const obs = (over: Partial<Observation> = {}): Observation => ({
  eligibleCentralNodes: 3,
  memberPods: pods(3),
  etcd: { members: [member(0), member(1), member(2)] },
  proxies: { desired: 2, ready: 2 },
  ...over,
});
const summary = (o: Observation, count = 3) => Object.fromEntries(decideConditions(topology(count), o).map((c) => [c.type, `${c.status}/${c.reason}`]));

describe('decideConditions', () => {
  it.each([
    ['a healthy cluster', obs(), { Available: 'True/QuorumHealthy', Progressing: 'False/ReconcileComplete', Degraded: 'False/AsExpected' }],
    ['members not started', obs({ memberPods: [], etcd: { error: 'no member pod has an IP yet' } }), { Available: 'False/MembersStarting', Progressing: 'True/WaitingForMembers', Degraded: 'False/AsExpected' }],
    ['no leader', obs({ etcd: { members: [member(0, { isLeader: false }), member(1), member(2)] } }), { Available: 'False/NoLeader' }],
    ['one member behind', obs({ etcd: { members: [member(0, { raftIndex: 5000 }), member(1, { raftIndex: 5000 }), member(2, { raftIndex: 10 })] } }), { Available: 'True/QuorumHealthy', Degraded: 'True/MemberUnhealthy', Progressing: 'True/WaitingForMembers' }],
    ['two members down', obs({ etcd: { members: [member(0), member(1, { healthy: false }), member(2, { healthy: false })] } }), { Available: 'False/QuorumLost' }],
    ['a learner joining', obs({ etcd: { members: [member(0), member(1), member(2), member(3, { isLearner: true })] } }), { Progressing: 'True/ScalingMembers' }],
    ['proxies starting', obs({ proxies: { desired: 2, ready: 1 } }), { Progressing: 'True/WaitingForProxies' }],
  ])('%s', (_what, o, expected) => {
    expect(summary(o)).toMatchObject(expected);
  });

  it('says how many central nodes exist against how many members were asked for', () => {
    const o = obs({ eligibleCentralNodes: 2, memberPods: pods(2), etcd: { error: 'no leader yet' } });
    const degraded = decideConditions(topology(3), o).find((c) => c.type === 'Degraded')!;
    expect(degraded).toMatchObject({ status: 'True', reason: 'InsufficientCentralNodes' });
    expect(degraded.message).toMatch(/^2 ready node\(s\) match etcdtopology.io\/role=central but members.count is 3: label 1 more node/);
    expect(summary(o).Progressing).toBe('False/InsufficientCentralNodes');
  });
});

describe('computeStatus', () => {
  const clock = { now: () => new Date('2026-01-01T00:00:00Z') };
  it('fills members, quorum and display fields from what etcd reports', () => {
    const status = computeStatus(topology(3), obs(), clock);
    expect(status).toMatchObject({
      observedGeneration: 4,
      membersReady: '3/3',
      leader: 'main-member-0',
      quorum: { size: 2, healthy: 3, faultTolerance: 1, disruptionsAllowed: 1 },
      proxies: { desired: 2, ready: 2 },
      proxiesReady: '2/2',
    });
    expect(status.members?.map((m) => [m.name, m.id, m.node, m.role, m.healthy])).toEqual([
      ['main-member-0', '3e8', 'central-0', 'leader', true],
      ['main-member-1', '3e9', 'central-1', 'follower', true],
      ['main-member-2', '3ea', 'central-2', 'follower', true],
    ]);
  });

  it('allows no disruption while a member is unhealthy', () => {
    const status = computeStatus(topology(3), obs({ etcd: { members: [member(0), member(1), member(2, { healthy: false })] } }), clock);
    expect(status.quorum).toEqual({ size: 2, healthy: 2, faultTolerance: 1, disruptionsAllowed: 0 });
  });
});
