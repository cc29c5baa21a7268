import { describe, expect, it } from 'vitest';
import { context, topology } from '../testing.ts';
import { proxyNodeLocalService } from './proxy-node-local-service.ts';

describe('proxy node-local Service', () => {
  it.each([
    { name: 'default port', spec: {}, port: 2379 },
    { name: 'custom port', spec: { proxy: { port: 12379 } }, port: 12379 },
  ])('keeps traffic on the node ($name)', ({ spec, port }) => {
    const s = proxyNodeLocalService.desired(topology(spec), context)!;
    expect(s.metadata?.name).toBe('main-proxy');
    expect(s.spec).toMatchObject({ internalTrafficPolicy: 'Local', selector: { 'app.kubernetes.io/component': 'proxy', 'app.kubernetes.io/instance': 'main' } });
    expect(s.spec?.ports).toEqual([{ name: 'client', port, targetPort: port, protocol: 'TCP' }]);
  });

  it.each([
    ['the proxy is disabled', { proxy: { enabled: false } }],
    ['the proxy listens on the host loopback', { proxy: { hostNetwork: true } }],
  ])('does not exist when %s', (_, spec) => {
    expect(proxyNodeLocalService.desired(topology(spec), context)).toBeUndefined();
  });
});
