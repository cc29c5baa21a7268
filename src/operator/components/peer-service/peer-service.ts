import type { V1Service } from '@kubernetes/client-node';
import type { Component } from '../meta.ts';
import { objectMeta, selectorLabels } from '../meta.ts';
import { CLIENT_PORT, namesOf, PEER_PORT } from '../names.ts';

/**
 * The headless Service that gives each member its stable DNS name (<pod>.<name>-peer.<ns>.svc). It
 * publishes members that are not ready, because members must find each other to become ready at all.
 */
export const peerService: Component<V1Service> = {
  apiVersion: 'v1',
  kind: 'Service',
  names: (t) => [namesOf(t).peerService],
  desired: (t) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: objectMeta(t, namesOf(t).peerService, 'member'),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selectorLabels(t, 'member'),
      ports: [
        { name: 'peer', port: PEER_PORT, targetPort: PEER_PORT, protocol: 'TCP' },
        { name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT, protocol: 'TCP' },
      ],
    },
  }),
};
