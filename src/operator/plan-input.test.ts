import type { V1ContainerStatus, V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { etcdTopologySchema, type EtcdTopology } from '../api/etcd-topology.ts';
import type { MemberHealth } from '../quorum/members.ts';
import { claimOf, corruptDataOf, planInput } from './plan-input.ts';

const topology: EtcdTopology = etcdTopologySchema.parse({
  apiVersion: 'etcdtopology.io/v1alpha1',
  kind: 'EtcdTopology',
  metadata: { name: 'm', namespace: 'ns' },
  spec: { members: { count: 3 } },
});

const member = (name: string, over: Partial<MemberHealth> = {}): MemberHealth => ({
  id: String(name.length),
  name,
  isLearner: false,
  healthy: true,
  isLeader: false,
  raftIndex: 10,
  revision: 1,
  dbSize: 1,
  ...over,
});
const claim = (pod: string, over: Partial<V1PersistentVolumeClaim['metadata']> = {}): V1PersistentVolumeClaim => ({
  metadata: { name: claimOf(pod), annotations: { 'volume.kubernetes.io/selected-node': 'node-a' }, ...over },
});
const node = (name: string): V1Node => ({ metadata: { name } });

/** The etcd container of a member pod, crash-looping on what its last run printed (or running). */
function etcdStatus(over: Partial<V1ContainerStatus> = {}): V1ContainerStatus {
  return { name: 'etcd', image: 'etcd', imageID: '', ready: false, restartCount: 0, ...over };
}
const crashing = (message: string, restartCount = 3, exitCode = 2): V1ContainerStatus =>
  etcdStatus({ restartCount, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode, message } } });
const pod = (name: string, status?: V1ContainerStatus): V1Pod => ({
  metadata: { name },
  spec: { nodeName: 'node-a', containers: [{ name: 'etcd' }] },
  status: { containerStatuses: status ? [status] : [] },
});

const PANIC = '{"level":"panic","msg":"failed to open database","error":"invalid database"}\npanic: failed to open database\n\ngoroutine 112 [running]:';

describe('corruptDataOf', () => {
  it.each([
    ['a bbolt database etcd cannot open', PANIC, 'failed to open database'],
    ['a WAL record whose checksum fails', '{"level":"fatal","msg":"discovery failed","error":"walpb: crc mismatch"}', 'crc mismatch'],
    ['a WAL that points at a snapshot that is not there', '{"msg":"failed to find database snapshot file (snap: snapshot file doesn\'t exist)"}', 'failed to find database snapshot file'],
    ['a member ID the leader knows further along than its (lost) log', '{"level":"panic","logger":"raft","msg":"tocommit(2609) is out of range [lastIndex(0)]. Was the raft log corrupted, truncated, or lost?"}', 'Was the raft log corrupted, truncated, or lost?'],
    ['a wiped directory bootstrapping a member that exists', '{"level":"fatal","msg":"discovery failed","error":"member 8e9e05c52164694d has already been bootstrapped"}', 'has already been bootstrapped'],
  ])('names %s', (_, message, failure) => {
    expect(corruptDataOf(pod('m-member-1', crashing(message)))).toBe(`etcd keeps exiting on its data directory (${failure}, 3 restarts)`);
  });

  it.each([
    ['a crash loop for another reason (a bad flag, a port in use)', pod('m-member-1', crashing('{"level":"fatal","msg":"listener failed","error":"listen tcp: address already in use"}'))],
    ['a single failed run: one crash is not a loop', pod('m-member-1', crashing(PANIC, 1))],
    ['a container running again (it recovered, or is mid-loop and gets another look)', pod('m-member-1', { ...crashing(PANIC), state: { running: {} } })],
    ['a clean exit', pod('m-member-1', crashing(PANIC, 3, 0))],
    ['a pod without container statuses yet', pod('m-member-1')],
  ])('says nothing of %s', (_, p) => {
    expect(corruptDataOf(p)).toBeUndefined();
  });
});

describe('planInput', () => {
  const names = ['m-member-0', 'm-member-1', 'm-member-2'];
  const members = names.map((n) => member(n));
  const nodes = [node('node-a')];
  const input = (pods: V1Pod[], claims = names.map((n) => claim(n)), etcd = members) => planInput(topology, etcd, pods, claims, nodes);

  it('a member whose claim is gone has lost its data; a pod with no member yet has not', () => {
    const { pods } = input(
      [pod('m-member-1'), pod('m-member-2')],
      [claim('m-member-0')],
      members.filter((m) => m.name !== 'm-member-2'),
    );
    expect(pods.find((p) => p.name === 'm-member-1')).toMatchObject({ dataLost: true, dataLostReason: 'its volume claim data-m-member-1 is gone' });
    expect(pods.find((p) => p.name === 'm-member-2')).toMatchObject({ dataLost: false });
  });

  it("a learner's claim that is not there yet loses nothing until its pod has run on one", () => {
    const etcd = members.map((m) => (m.name === 'm-member-1' ? { ...m, isLearner: true, healthy: false } : m));
    const claims = [claim('m-member-0'), claim('m-member-2')];
    expect(input([pod('m-member-1', etcdStatus({ state: { waiting: { reason: 'ContainerCreating' } } }))], claims, etcd).pods[0]).toMatchObject({ dataLost: false });
    expect(input([pod('m-member-1', etcdStatus({ state: { running: {} } }))], claims, etcd).pods[0]).toMatchObject({ dataLost: true });
  });

  it('a claim being deleted counts as gone, and no longer pins the pod to its node', () => {
    const { pods } = input([pod('m-member-1')], [claim('m-member-1', { deletionTimestamp: new Date() })], members);
    expect(pods[0]).toMatchObject({ dataLost: true, nodeGone: false });
  });

  it('a crash loop on a corrupt data directory loses the data, listed in etcd or not', () => {
    const looping = pod('m-member-1', crashing(PANIC));
    expect(input([looping]).pods[0]?.dataLostReason).toBe('etcd keeps exiting on its data directory (failed to open database, 3 restarts)');
    expect(input([looping], undefined, members.filter((m) => m.name !== 'm-member-1')).pods[0]).toMatchObject({ dataLost: true });
  });

  it("a pod that answers as another member has lost this member's data", () => {
    const etcd = members.map((m) => (m.name === 'm-member-2' ? { ...m, healthy: false, identityMismatch: 'its pod answers as member 63, but etcd lists m-member-2 as a' } : m));
    expect(input([pod('m-member-2', etcdStatus({ state: { running: {} } }))], undefined, etcd).pods[0]).toMatchObject({
      dataLost: true,
      dataLostReason: 'its pod answers as member 63, but etcd lists m-member-2 as a',
    });
  });

  it('a pod has started once its etcd container ran; a pod still waiting for its container has not', () => {
    const { pods } = input([
      pod('m-member-0', etcdStatus({ state: { running: {} } })),
      pod('m-member-1', etcdStatus({ state: { waiting: { reason: 'ContainerCreating' } } })),
      pod('m-member-2', crashing('exit', 1, 0)),
    ]);
    expect(pods.map((p) => [p.name, p.started])).toEqual([
      ['m-member-0', true],
      ['m-member-1', false],
      ['m-member-2', true],
    ]);
  });

  it("a pod on an unschedulable node is on a cordoned node; one on a schedulable node or not bound yet is not", () => {
    const nodes = [node('node-a'), { metadata: { name: 'node-b' }, spec: { unschedulable: true } }];
    const on = (name: string, nodeName: string | undefined): V1Pod => ({ ...pod(name), spec: { containers: [{ name: 'etcd' }], ...(nodeName ? { nodeName } : {}) } });
    const { pods } = planInput(topology, members, [on('m-member-0', 'node-b'), on('m-member-1', 'node-a'), on('m-member-2', undefined)], names.map((n) => claim(n)), nodes);
    expect(pods.map((p) => [p.name, p.nodeCordoned])).toEqual([
      ['m-member-0', true],
      ['m-member-1', false],
      ['m-member-2', false],
    ]);
  });

  it('a healthy pod on its claim has lost nothing', () => {
    expect(input([pod('m-member-0', etcdStatus({ ready: true, state: { running: {} } }))]).pods[0]).toMatchObject({ dataLost: false, nodeGone: false, ready: true });
  });
});
