import type { V1Service } from '@kubernetes/client-node';
import type { Component } from '../meta.ts';
import { objectMeta, selectorLabels } from '../meta.ts';
import { CLIENT_PORT, namesOf } from '../names.ts';

/**
 * The client Service in front of the members. Only ready members are endpoints, and a member is ready
 * only when its readiness gate says etcd counts it healthy, so clients never land on a lagging member.
 */
export const clientService: Component<V1Service> = {
  apiVersion: 'v1',
  kind: 'Service',
  names: (t) => [namesOf(t).clientService],
  desired: (t) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(t, namesOf(t).clientService, 'member'),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(t, 'member'),
      ports: [{ name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT, protocol: 'TCP' }],
    },
  }),
};
