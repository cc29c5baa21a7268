import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { memberSelectorOf, nodeLane, topologyLane, topologySeen } from './lanes.ts';

const topology = (over: { generation?: number; annotations?: Record<string, string>; deletionTimestamp?: string; nodeSelector?: Record<string, string> } = {}): KubernetesObject =>
  ({
    metadata: { name: 'main', namespace: 'etcd', generation: over.generation ?? 1, annotations: over.annotations, deletionTimestamp: over.deletionTimestamp },
    spec: over.nodeSelector ? { members: { nodeSelector: over.nodeSelector } } : {},
  }) as KubernetesObject;

describe('topologyLane', () => {
  it('puts a new topology and a new generation in the spec lane', () => {
    expect(topologyLane(undefined, topologySeen(topology()))).toBe('spec');
    expect(topologyLane(topologySeen(topology()), topologySeen(topology({ generation: 2 })))).toBe('spec');
  });

  it('makes an annotation (a CA rotation request) or a deletion news', () => {
    const before = topologySeen(topology());
    expect(topologyLane(before, topologySeen(topology({ annotations: { 'etcdtopology.io/rotate-ca': 'now' } })))).toBe('news');
    expect(topologyLane(before, topologySeen(topology({ deletionTimestamp: '2026-12-02T00:00:00Z' })))).toBe('news');
  });

  it('makes a status-only update (the operator writing status) a routine visit', () => {
    const withStatus = { ...topology(), status: { observedGeneration: 1 } } as KubernetesObject;
    expect(topologyLane(topologySeen(topology()), topologySeen(withStatus))).toBe('routine');
  });
});

describe('nodeLane', () => {
  const central = { 'etcdtopology.io/role': 'central' };
  const kwok = { type: 'kwok' };

  it('is news for a topology whose member selector matches the node now or matched it before', () => {
    expect(nodeLane(topology(), central, undefined, false)).toBe('news');
    expect(nodeLane(topology(), kwok, central, false)).toBe('news');
    expect(nodeLane(topology({ nodeSelector: kwok }), kwok, undefined, false)).toBe('news');
  });

  it('is news for a topology with a member pod on the node, whatever its labels', () => {
    expect(nodeLane(topology(), kwok, kwok, true)).toBe('news');
  });

  it('is a routine visit for every other topology (a proxy node joining)', () => {
    expect(nodeLane(topology(), kwok, undefined, false)).toBe('routine');
    expect(nodeLane(topology({ nodeSelector: { 'bench.etcdtopology.io/none': 'true' } }), central, central, false)).toBe('routine');
  });

  it("reads the schema's default member selector when the spec has none", () => {
    expect(memberSelectorOf(topology())).toEqual(central);
  });
});
