import { describe, expect, it } from 'vitest';
import { clientService } from '../client-service/client-service.ts';
import { context, topology } from '../testing.ts';
import { peerService } from './peer-service.ts';

const selector = { 'app.kubernetes.io/name': 'etcd-topology', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'member' };

describe('member Services', () => {
  it('the peer Service is headless and publishes members that are not ready yet', () => {
    const s = peerService.desired(topology(), context)!;
    expect(s.metadata?.name).toBe('main-peer');
    expect(s.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector });
    expect(s.spec?.ports?.map((p) => `${p.name}:${p.port}`)).toEqual(['peer:2380', 'client:2379']);
    expect(peerService.names(topology())).toEqual(['main-peer']);
  });

  it('the client Service selects members and serves only ready ones', () => {
    const s = clientService.desired(topology(), context)!;
    expect(s.metadata?.name).toBe('main-client');
    expect(s.spec).toMatchObject({ type: 'ClusterIP', selector });
    expect(s.spec?.publishNotReadyAddresses).toBeUndefined();
    expect(s.spec?.ports?.map((p) => `${p.name}:${p.port}`)).toEqual(['client:2379']);
  });
});
