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
    ['members not started', obs({ memberPods: [], etcd: { error: 'no member pod is running with an IP yet' } }), { Available: 'False/MembersStarting', Progressing: 'True/WaitingForMembers', Degraded: 'False/AsExpected' }],
    ['no leader', obs({ etcd: { members: [member(0, { isLeader: false }), member(1), member(2)] } }), { Available: 'False/NoLeader' }],
    ['one member behind', obs({ etcd: { members: [member(0, { raftIndex: 5000 }), member(1, { raftIndex: 5000 }), member(2, { raftIndex: 10 })] } }), { Available: 'True/QuorumHealthy', Degraded: 'True/MemberUnhealthy', Progressing: 'True/WaitingForMembers' }],
    ['two members down', obs({ etcd: { members: [member(0), member(1, { healthy: false }), member(2, { healthy: false })] } }), { Available: 'False/QuorumLost' }],
    ['a learner joining', obs({ etcd: { members: [member(0), member(1), member(2), member(3, { isLearner: true })] } }), { Progressing: 'True/ScalingMembers' }],
    ['proxies starting', obs({ proxies: { desired: 2, ready: 1 } }), { Progressing: 'True/WaitingForProxies' }],
  ])('%s', (_what, o, expected) => {
    expect(summary(o)).toMatchObject(expected);
  });

  it('reports a formed cluster that no member answers for as Degraded, pointing to the quorum-loss runbook', () => {
    const formed = topology(3);
    formed.status = { conditions: [{ type: 'Available', status: 'True', reason: 'QuorumHealthy', message: '', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 4 }] };
    const o = obs({ etcd: { error: 'member list: timed out on every member' } });
    const conditions = decideConditions(formed, o);
    expect(Object.fromEntries(conditions.map((c) => [c.type, `${c.status}/${c.reason}`]))).toMatchObject({ Available: 'False/EtcdUnreachable', Degraded: 'True/EtcdUnreachable' });
    const degraded = conditions.find((c) => c.type === 'Degraded')!;
    expect(degraded.message).toMatch(/^no member answers \(member list: timed out on every member\) while 3 of 3 member pods run: quorum may be lost;/);
    expect(degraded.message).toContain('docs/runbooks/quorum-loss.md');
    // Pods that died do not make a formed cluster "starting" again.
    expect(summary(obs({ memberPods: pods(1), etcd: { error: 'timed out' } }))).toMatchObject({ Available: 'False/MembersStarting', Degraded: 'False/AsExpected' });
    expect(Object.fromEntries(decideConditions(formed, obs({ memberPods: pods(1), etcd: { error: 'timed out' } })).map((c) => [c.type, `${c.status}/${c.reason}`]))).toMatchObject({
      Available: 'False/EtcdUnreachable',
      Degraded: 'True/EtcdUnreachable',
    });
    // It stays Degraded on the next visit, when the previous status no longer lists members.
    const still = topology(3);
    still.status = { members: [], conditions: [{ type: 'Degraded', status: 'True', reason: 'EtcdUnreachable', message: '', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 4 }] };
    expect(decideConditions(still, o).find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'EtcdUnreachable' });
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

describe('alarms and defragmentation in status', () => {
  it.each([
    ['NOSPACE', [{ memberId: '1001', alarm: 'NOSPACE' as const }], 'True/NoSpace', 'docs/runbooks/nospace.md'],
    ['CORRUPT', [{ memberId: '1002', alarm: 'CORRUPT' as const }], 'True/DataCorrupt', 'docs/runbooks/data-corrupt.md'],
    ['CORRUPT outranks NOSPACE', [{ memberId: '1001', alarm: 'NOSPACE' as const }, { memberId: '1002', alarm: 'CORRUPT' as const }], 'True/DataCorrupt', 'never disarms it'],
  ])('%s: Degraded at once, naming the member and the runbook', (_what, alarms, degraded, text) => {
    const conditions = decideConditions(topology(), obs({ alarms }));
    const d = conditions.find((c) => c.type === 'Degraded')!;
    expect(`${d.status}/${d.reason}`).toBe(degraded);
    expect(d.message).toContain(text);
    expect(d.message).toMatch(/main-member-[12]/);
  });

  it('lists alarms with the member name and hex ID; an empty list once they are gone, the last known while etcd is unreadable', () => {
    const clock = { now: () => new Date('2026-01-01T00:00:00Z') };
    const s = computeStatus(topology(), obs({ alarms: [{ memberId: '1001', alarm: 'NOSPACE' }] }), clock);
    expect(s.alarms).toEqual([{ alarm: 'NOSPACE', memberId: (1001).toString(16), member: 'main-member-1' }]);
    // The status is merge-patched: an absent field would leave the old alarms in place.
    const t = topology();
    t.status = s;
    expect(computeStatus(t, obs({ alarms: [] }), clock).alarms).toEqual([]);
    expect(computeStatus(t, obs({ etcd: { error: 'timed out' } }), clock).alarms).toEqual(s.alarms);
  });

  it('a member being defragmented is not a fault', () => {
    const o = obs({ etcd: { members: [member(0), member(1, { healthy: false }), member(2)] }, defragmenting: 'main-member-1' });
    expect(summary(o)).toMatchObject({ Degraded: 'False/AsExpected' });
    expect(summary({ ...o, defragmenting: undefined })).toMatchObject({ Degraded: 'True/MemberUnhealthy' });
  });

  it('carries dbSizeInUse and lastDefragmentation, keeping the previous status when the operator has no newer one', () => {
    const t = topology();
    t.status = { members: [{ name: 'main-member-2', id: '3ea', role: 'follower', healthy: true, lastDefragmentation: { time: '2026-01-01T00:00:00Z', bytesFreed: 5 } }] };
    const o = obs({
      etcd: { members: [member(0, { dbSizeInUse: 100 }), member(1, { dbSizeInUse: 200 }), member(2, { dbSizeInUse: 300 })] },
      lastDefragmentations: new Map([['main-member-1', { time: '2026-01-02T00:00:00Z', bytesFreed: 9000 }]]),
    });
    const s = computeStatus(t, o, { now: () => new Date('2026-01-03T00:00:00Z') });
    expect(s.members?.map((m) => [m.name, m.dbSizeInUse, m.lastDefragmentation])).toEqual([
      ['main-member-0', 100, undefined],
      ['main-member-1', 200, { time: '2026-01-02T00:00:00Z', bytesFreed: 9000 }],
      ['main-member-2', 300, { time: '2026-01-01T00:00:00Z', bytesFreed: 5 }],
    ]);
  });
});
