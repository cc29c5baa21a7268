import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { etcdTopologySchema } from '../api/etcd-topology.ts';
import type { Step } from '../quorum/plan.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import type { EventRecorder } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { perform, type PerformDeps } from './perform.ts';

const log = createRootLogger({ name: 'test', level: 'silent' });
const topology = etcdTopologySchema.parse({
  apiVersion: 'etcdtopology.io/v1alpha1',
  kind: 'EtcdTopology',
  metadata: { name: 'm', namespace: 'ns' },
  spec: { members: { count: 3 } },
});
const target = { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', name: 'm', namespace: 'ns' };

/** Deps whose writer records, in order, every call the step makes to the API. */
function recordingDeps(claim: V1PersistentVolumeClaim | undefined): { deps: PerformDeps; calls: string[] } {
  const calls: string[] = [];
  const writer = {
    deletePod: (_ns: string, name: string) => Promise.resolve(void calls.push(`delete pod ${name}`)),
    retainVolume: (name: string) => Promise.resolve((calls.push(`retain ${name}`), 'changed' as const)),
    delete: (_v: string, kind: string, _ns: string, name: string) => Promise.resolve(void calls.push(`delete ${kind} ${name}`)),
  } as unknown as KubeWriter;
  const informers = { get: () => claim } as unknown as Informers;
  const events = { record: () => undefined } as unknown as EventRecorder;
  return { deps: { informers, writer, admin: undefined as never, events }, calls };
}

describe('perform DeletePod', () => {
  const replace: Step = { action: 'DeletePod', pod: 'm-member-1', releaseVolume: true, reason: 'StaleJoinPod', message: 'recreating m-member-1' };

  it('releases the claim before the pod is deleted, so no replacement pod can be bound to the old claim', async () => {
    const { deps, calls } = recordingDeps({ metadata: { name: 'data-m-member-1' }, spec: { volumeName: 'pv-1' } });
    expect(await perform(deps, replace, topology, [], new Map(), target, log)).toBe(true);
    expect(calls).toEqual(['retain pv-1', 'delete PersistentVolumeClaim data-m-member-1', 'delete pod m-member-1']);
  });

  it('deletes only the pod when the volume stays, and leaves a claim already being deleted alone', async () => {
    const keep = recordingDeps(undefined);
    await perform(keep.deps, { ...replace, releaseVolume: false, reason: 'RollingUpdate' }, topology, [], new Map(), target, log);
    expect(keep.calls).toEqual(['delete pod m-member-1']);
    const terminating = recordingDeps({ metadata: { name: 'data-m-member-1', deletionTimestamp: new Date() }, spec: { volumeName: 'pv-1' } });
    await perform(terminating.deps, replace, topology, [], new Map(), target, log);
    expect(terminating.calls).toEqual(['retain pv-1', 'delete pod m-member-1']);
  });
});
