import type { V1Service } from '@kubernetes/client-node';
import type { Component } from '../meta.ts';
import { objectMeta, selectorLabels } from '../meta.ts';
import { namesOf } from '../names.ts';

/**
 * The node-local Service: internalTrafficPolicy Local sends a pod's connection to the proxy on its own
 * node, never across nodes. Absent with the proxy disabled, and in host-network mode, where the proxy
 * listens on the node's 127.0.0.1 only and no Service could reach it.
 */
export const proxyNodeLocalService: Component<V1Service> = {
  apiVersion: 'v1',
  kind: 'Service',
  names: (t) => [namesOf(t).proxyService],
  desired: (t) => {
    const { proxy } = t.spec;
    if (!proxy.enabled || proxy.hostNetwork) return undefined;
    return {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: objectMeta(t, namesOf(t).proxyService, 'proxy'),
      spec: {
        type: 'ClusterIP',
        internalTrafficPolicy: 'Local',
        selector: selectorLabels(t, 'proxy'),
        ports: [{ name: 'client', port: proxy.port, targetPort: proxy.port, protocol: 'TCP' }],
      },
    };
  },
};
