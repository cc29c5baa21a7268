import { etcdTopologySchema, type EtcdTopology, type EtcdTopologySpecInput } from '../../api/etcd-topology.ts';

/** A parsed topology "main" in namespace "etcd" with the given spec, as the reconciler would hold it. */
export function topology(spec: EtcdTopologySpecInput = {}, name = 'main'): EtcdTopology {
  return etcdTopologySchema.parse({
    apiVersion: 'etcdtopology.io/v1alpha1',
    kind: 'EtcdTopology',
    metadata: { name, namespace: 'etcd', uid: 'uid-1', generation: 1 },
    spec,
  });
}

export const context = { proxyImage: 'registry.example/etcd-topology:1.2.3' };
